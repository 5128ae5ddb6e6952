"""SubwordTokenizer: the Tokenizer API over byte-level BPE, SentencePiece or any ``tokenizer.json`` pipeline.

Same encodings as the WordPiece :class:`~bertkit.tokenization.tokenizer.Tokenizer` (ids, type_ids, offsets into
the original text, word_ids, sequence_ids, windows, pair truncation by Google's rule); the family's own special
tokens and pair template (pipelines.py). Tokens, ids and offsets are those of transformers' fast tokenizer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tokenizers

from bertkit.tokenization.encoding import TokenizedText, as_list
from bertkit.tokenization.engine import Text
from bertkit.tokenization.pipelines import TOKENIZER_JSON, Pipeline
from bertkit.tokenization.tokenizer import Tokenizer
from bertkit.tokenization.vocab import CONFIG_FILE

_SURROGATE = re.compile("[\ud800-\udfff]")


class SubwordEngine:
    """Texts -> subword tokens without special tokens, with offsets into the original text (the Rust pipeline)."""

    def __init__(self, rust: tokenizers.Tokenizer):
        self.lower = False
        self._rust = rust
        self._words = _with_prefix_space(rust)

    def ids(self, inputs: Sequence[Text], split: bool) -> list[list[int]]:
        """Token ids of each input."""
        return [e.ids for e in self._encode(inputs, split)[1]]

    def tokenized(self, inputs: Sequence[Text], split: bool) -> list[TokenizedText]:
        """Ids, tokens, offsets into each original input, and word ids."""
        out = []
        for x, e in zip(*self._encode(inputs, split), strict=True):
            offsets = e.offsets
            if not split:
                offsets = self._cover(x, offsets)  # type: ignore[arg-type]
            out.append(TokenizedText(e.ids, e.tokens, offsets, e.word_ids))
        return out

    def _cover(self, text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Give characters that a many-to-one normalizer step left to no token to the token they went into.

        transformers' offsets leave them out too: ALBERT's normalizer turns two backticks into one ``"``
        whose offsets cover only the second; XLM-R's NFKC composes ``e`` and a combining accent into ``é``
        whose offsets cover only the ``e``. A combining mark joins the token before it, other characters
        the token right after them; spaces, and characters the normalizer deletes, stay uncovered.
        """
        reach, fixed = 0, list(offsets)
        changed = False
        for i, (start, end) in enumerate([*offsets, (len(text), len(text))]):
            if start > reach and not text[reach:start].isspace():
                gap = text[reach:start]
                marks = next(
                    (k for k, c in enumerate(gap) if not unicodedata.category(c).startswith("M")), len(gap)
                )
                j = i - 1
                while marks and j >= 0 and offsets[j][1] == reach:  # the token(s) the marks combine with
                    fixed[j], j, changed = (fixed[j][0], reach + marks), j - 1, True
                tail = gap[marks:].split()[-1] if gap[marks:].strip() and not gap[-1].isspace() else ""
                normalizer = self._rust.normalizer
                if tail and (normalizer is None or normalizer.normalize_str(tail).strip()):
                    j = i
                    while j < len(offsets) and offsets[j][0] == start:
                        fixed[j], j, changed = (start - len(tail), fixed[j][1]), j + 1, True
            reach = max(reach, end)
        return fixed if changed else offsets

    def _encode(self, inputs: Sequence[Text], split: bool) -> tuple[list[Any], list[tokenizers.Encoding]]:
        """The inputs as given to Rust (lone surrogates replaced) and their encodings."""
        clean: list[Any] = []
        for i, x in enumerate(inputs):
            if split:
                if isinstance(x, str) or not all(isinstance(w, str) for w in x):
                    raise TypeError(f"input {i}: with is_split_into_words each input is a list of str")
                clean.append([_no_surrogates(w) for w in x])
            elif isinstance(x, str):
                clean.append(_no_surrogates(x))
            else:
                raise TypeError(
                    f"input {i} is {type(x).__name__}, not str (lists of words need is_split_into_words=True)"
                )
        # words (NER) are tokenized as if a space came before each, as transformers' add_prefix_space=True
        rust = self._words if split else self._rust
        return clean, rust.encode_batch(clean, is_pretokenized=split, add_special_tokens=False)


class SubwordTokenizer(Tokenizer):
    """A byte-level BPE (RoBERTa), SentencePiece (ALBERT, XLM-R) or ``tokenizer.json`` tokenizer."""

    def __init__(self, pipeline: Pipeline, model_max_length: int = 512):
        self._pipeline = pipeline
        self._specials = pipeline.specials
        self.do_lower_case = pipeline.do_lower_case
        self.model_max_length = model_max_length
        vocab = pipeline.rust.get_vocab(with_added_tokens=True)
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("the tokenizer's ids must be 0..len(vocab)-1, one per token")
        self._vocab = vocab
        self._tokens = sorted(vocab, key=vocab.__getitem__)
        s = self._specials
        if s.pad not in vocab:
            raise ValueError(
                f"the tokenizer has no padding token {s.pad!r}; set pad_token in tokenizer_config.json "
                "to one its vocab has"
            )
        self.pad_token_id = vocab[s.pad]
        self.unk_token_id = vocab.get(s.unk)  # None: byte-level BPE needs none
        self.cls_token_id, self.sep_token_id = pipeline.template.cls[0], pipeline.template.sep[0]
        self.mask_token_id = vocab.get(s.mask)
        self._template = pipeline.template
        self._engine = SubwordEngine(pipeline.rust)

    @property
    def kind(self) -> str:
        """The subword model: "BPE" or "Unigram" (WordPiece tokenizers say "WordPiece")."""
        return type(self._pipeline.rust.model).__name__

    def tokenize(self, text: str) -> list[str]:
        """Subword tokens of one text, without special tokens."""
        return self._engine.tokenized([text], False)[0].tokens

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ids through the pipeline's decoder (byte-level or SentencePiece's ``▁`` spaces)."""
        return self._pipeline.rust.decode(as_list(ids), skip_special_tokens=skip_special_tokens)

    @property
    def word_aware(self) -> bool:
        """Only a model with a continuing-subword prefix marks continuations (byte-level BPE and
        SentencePiece mark word starts instead), as transformers' pipeline asks it."""
        return bool(getattr(self._pipeline.rust.model, "continuing_subword_prefix", None))

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Tokens -> text through the pipeline's decoder (``Ġ`` / ``▁`` become spaces), as transformers does."""
        decoder = self._pipeline.rust.decoder
        return decoder.decode(list(tokens)) if decoder is not None else " ".join(tokens)

    def add_tokens(self, words: Iterable[str]) -> int:
        raise ValueError(
            f"vocabulary extension needs a WordPiece vocab (vocab.txt); this tokenizer is {self.kind}"
        )

    def save_pretrained(self, folder: str | Path) -> list[Path]:
        """Write ``tokenizer.json``, the source files (vocab.json + merges.txt, or the .model) and
        ``tokenizer_config.json``; transformers' AutoTokenizer reads the folder back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / TOKENIZER_JSON]
        self._pipeline.rust.save(str(written[0]))
        for name, data in self._pipeline.files.items():
            (folder / name).write_bytes(data)
            written.append(folder / name)
        s = self._specials
        config = {
            **self._pipeline.config,
            **{f"{n}_token": getattr(s, n) for n in ("pad", "unk", "cls", "sep", "mask")},
            "bos_token": s.cls,
            "eos_token": s.sep,
            "model_max_length": self.model_max_length,
        }
        path = folder / CONFIG_FILE
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return [*written, path]

    def __repr__(self) -> str:
        return f"SubwordTokenizer({self.kind}, vocab_size={self.vocab_size})"


def _no_surrogates(text: str) -> str:
    """Lone surrogates cannot reach Rust; U+FFFD keeps every offset in place."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _with_prefix_space(rust: tokenizers.Tokenizer) -> tokenizers.Tokenizer:
    """The same pipeline, with a space (``Ġ`` / ``▁``) before every pre-tokenized word."""
    data = json.loads(rust.to_str())
    changed = False

    def visit(node: Any) -> None:
        nonlocal changed
        if isinstance(node, dict):
            if (
                node.get("type") in ("ByteLevel", "RobertaProcessing")
                and node.get("add_prefix_space") is False
            ):
                node["add_prefix_space"] = changed = True
            if node.get("type") == "Metaspace" and node.get("prepend_scheme") not in (None, "always"):
                node["prepend_scheme"], changed = "always", True
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(data.get("pre_tokenizer"))
    visit(data.get("post_processor"))
    return tokenizers.Tokenizer.from_str(json.dumps(data)) if changed else rust
