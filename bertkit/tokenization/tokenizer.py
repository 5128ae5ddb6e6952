"""Tokenizer: Google's WordPiece tokenization at Rust speed, with offsets.

:class:`~bertkit.tokenization.engine.Engine` tokenizes texts exactly as Google's ``tokenization.py`` (the Rust
``tokenizers`` library, configured by rules.py). Here: the vocabulary, loading and saving, and the
assembly of encodings and batches. Special tokens are added here, not by the engine, so a literal
``[CLS]`` in a text is plain text, as in Google's code; pairs are truncated by Google's rule.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Literal

from bertkit.hub import model_folder, resolve_model_path
from bertkit.tokenization import rules
from bertkit.tokenization.encoding import (
    BatchEncoding,
    Encoding,
    Template,
    as_list,
    assemble,
    pad_batch,
    pad_length,
    plan_spans,
)
from bertkit.tokenization.engine import Engine, Text
from bertkit.tokenization.pipelines import (
    TOKENIZER_JSON,
    read_pipeline,
    subword_files,
    wordpiece_in_tokenizer_json,
)
from bertkit.tokenization.vocab import (
    CONFIG_FILE,
    VOCAB_FILE,
    SpecialTokens,
    TokenizerSettings,
    load_vocab,
    max_positions,
    read_config,
    read_settings,
    unused_slots,
    write_settings,
    write_vocab,
)

logger = logging.getLogger(__name__)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch's many small lists are built (they form no cycles).

    Otherwise their allocation triggers full collections over every object in the process, which
    costs as much as the Rust tokenization itself on large batches.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Tokenizer:
    """BERT's WordPiece tokenizer, exactly as Google's ``FullTokenizer``, on the Rust ``tokenizers`` engine."""

    def __init__(
        self,
        vocab: dict[str, int],
        do_lower_case: bool,
        specials: SpecialTokens | None = None,
        model_max_length: int = 512,
    ):
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("vocab ids must be 0..len(vocab)-1, one per token")
        self._specials = specials or SpecialTokens()
        self._tokens = sorted(vocab, key=vocab.__getitem__)
        self.do_lower_case = do_lower_case
        self.model_max_length = model_max_length
        self._build()

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def from_vocab(cls, vocab_file: str | Path, do_lower_case: bool) -> Tokenizer:
        """A tokenizer from a ``vocab.txt``; the casing must be given, since a vocab file does not record it."""
        return cls(load_vocab(vocab_file), do_lower_case=do_lower_case)

    @classmethod
    def from_pretrained(cls, path: str | Path, do_lower_case: bool | None = None) -> Tokenizer:
        """A tokenizer from a model folder (Google or transformers): ``vocab.txt`` plus ``tokenizer_config.json``.

        The casing is read from ``tokenizer_config.json``; ``do_lower_case`` only fills in for folders
        without one (Google checkpoints), and contradicting the file raises ValueError. A folder without
        ``vocab.txt`` but with ``tokenizer.json``, ``vocab.json`` + ``merges.txt`` (RoBERTa) or a SentencePiece
        ``.model`` (ALBERT, XLM-R) gives a :class:`~bertkit.tokenization.subword.SubwordTokenizer`
        (a ``tokenizer.json`` holding a WordPiece model gives this class, on Google's rules).
        """
        folder = model_folder(resolve_model_path(path))
        if not folder.is_dir():
            hint = (
                "use Tokenizer.from_vocab(file, do_lower_case=...) for a vocab file"
                if folder.is_file()
                else "check the path"
            )
            raise FileNotFoundError(f"{folder} is not a model folder ({hint})")
        vocab_file = folder / VOCAB_FILE
        if not vocab_file.is_file() and subword_files(folder):
            return _subword(folder, do_lower_case)
        settings = read_settings(folder, do_lower_case)
        if not vocab_file.is_file():
            raise FileNotFoundError(
                f"{vocab_file} not found: a model folder needs the vocab.txt of its checkpoint; copy it there, "
                "or use Tokenizer.from_vocab(path_to_vocab, do_lower_case=...)"
            )
        return cls(
            load_vocab(vocab_file), settings.do_lower_case, settings.specials, settings.model_max_length
        )

    def _build(self) -> None:
        vocab = {t: i for i, t in enumerate(self._tokens)}
        s = self._specials
        missing = [t for t in (s.pad, s.unk, s.cls, s.sep) if t not in vocab]
        if missing:
            raise ValueError(f"the vocab lacks the special tokens {missing}")
        self._vocab = vocab
        self.pad_token_id, self.unk_token_id = vocab[s.pad], vocab[s.unk]
        self.cls_token_id, self.sep_token_id = vocab[s.cls], vocab[s.sep]
        self.mask_token_id: int | None = vocab.get(s.mask)
        self._template = Template((self.cls_token_id, s.cls), (self.sep_token_id, s.sep))
        self._engine = Engine(vocab, s.unk, self.do_lower_case)

    # --- vocabulary ------------------------------------------------------------------------------

    @property
    def vocab(self) -> dict[str, int]:
        """Token -> id (a copy)."""
        return dict(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Ids of tokens (``[UNK]``'s id for unknown ones); a single token gives a single id."""
        if isinstance(tokens, str):
            return self._vocab.get(tokens, self.unk_token_id)
        return [self._vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str]:
        """Tokens of ids; a single id gives a single token."""
        if isinstance(ids, int):
            return self._token(ids)
        return [self._token(i) for i in as_list(ids)]

    def _token(self, i: int) -> str:
        if not 0 <= i < len(self._tokens):
            raise ValueError(f"token id {i} is outside the vocab (size {len(self._tokens)})")
        return self._tokens[i]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """WordPiece join: tokens separated by spaces, ``##`` pieces glued to the previous one.

        Example: ``decode(ids of ["[CLS]", "una", "##ffa", "##ble", "[SEP]"]) -> "unaffable"``
        """
        specials = {self.pad_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id}
        tokens = [self._token(i) for i in as_list(ids) if not (skip_special_tokens and i in specials)]
        return " ".join(tokens).replace(" ##", "").strip()

    @property
    def word_aware(self) -> bool:
        """Do the pieces mark word continuations (WordPiece's ``##``)? transformers' token-classification
        pipeline then tells a subword by its length against its text, else by the characters around it."""
        return True

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Tokens -> text as transformers' fast tokenizer joins them (its decoder): WordPiece glues ``##``
        pieces and removes the space before punctuation. Example: ["una", "##ffa", "##ble", "!"] -> "unaffable!"
        """
        from tokenizers import decoders

        return decoders.WordPiece(prefix="##", cleanup=True).decode(list(tokens))

    def add_tokens(self, words: Iterable[str]) -> int:
        """Add words to the vocab, each into the next ``[unusedN]`` slot, else at the end; returns how many were new.

        A word must be one word after Google's basic tokenizer (no spaces or punctuation, already
        lowercased and accent-free for an uncased vocab), so that it comes out as one token. Entries
        appended past the original size need a larger embedding matrix in the model.
        """
        new = [w for w in dict.fromkeys(words) if w not in self._vocab]
        for word in new:
            piece = word[2:] if word.startswith("##") else word
            basic = [w.text for w in rules.basic_tokenize(piece, self.do_lower_case)]
            if basic != [piece]:
                raise ValueError(f"{word!r} cannot be one token: Google's basic tokenizer makes it {basic}")
        slots = unused_slots(self._tokens)
        for word in new:
            if slots:
                self._tokens[slots.pop(0)] = word
            else:
                self._tokens.append(word)
        if len(self._tokens) > len(self._vocab):
            logger.warning(
                "vocab grew to %d tokens: resize the model's word embeddings to match", len(self._tokens)
            )
        self._build()
        return len(new)

    def save_pretrained(self, folder: str | Path) -> list[Path]:
        """Write ``vocab.txt`` and ``tokenizer_config.json`` (casing included); transformers' AutoTokenizer reads them."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_vocab(self._tokens, folder / VOCAB_FILE)
        settings = TokenizerSettings(self.do_lower_case, self._specials, self.model_max_length)
        return [folder / VOCAB_FILE, write_settings(settings, folder)]

    # --- encoding --------------------------------------------------------------------------------

    def num_special_tokens(self, pair: bool = False) -> int:
        """Special tokens around one text (2) or a pair (3; 4 in RoBERTa's ``<s> A </s></s> B </s>``)."""
        return self._template.specials(pair)

    def with_specials(self, ids_a: list[int], ids_b: list[int] | None = None) -> tuple[list[int], list[int]]:
        """(input_ids, token_type_ids) of ``[CLS] A [SEP] (B [SEP])`` in this tokenizer's family template.

        Example (BERT): ``with_specials([7, 8], [9]) -> ([101, 7, 8, 102, 9, 102], [0, 0, 0, 0, 1, 1])``
        """
        t = self._template
        ids = [t.cls[0], *ids_a, t.sep[0]]
        if ids_b is None:
            return ids, [0] * len(ids)
        ids += [t.sep[0]] * (t.pair_seps - 1)
        first = len(ids)
        ids += [*ids_b, t.sep[0]]
        return ids, [0] * first + [t.type_b] * (len(ids) - first)

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of one text, without special tokens (Google's ``FullTokenizer.tokenize``)."""
        return self._engine.tokenized([text], False)[0].tokens

    def encode(
        self,
        text: Text,
        text_pair: Text | None = None,
        max_length: int | None = None,
        *,
        is_split_into_words: bool = False,
        stride: int | None = None,
    ) -> Encoding:
        """``[CLS] text [SEP] (text_pair [SEP])`` as an :class:`Encoding`; see :meth:`encode_batch`."""
        pairs = None if text_pair is None else [text_pair]
        return self.encode_batch(
            [text], pairs, max_length, is_split_into_words=is_split_into_words, stride=stride
        )[0]

    def encode_batch(
        self,
        texts: Sequence[Text],
        pairs: Sequence[Text] | None = None,
        max_length: int | None = None,
        *,
        is_split_into_words: bool = False,
        stride: int | None = None,
    ) -> list[Encoding]:
        """Encode a batch of texts (and pairs) in one Rust call.

        ``max_length`` truncates: a single text keeps its first ``max_length - 2`` tokens; a pair loses
        tokens by Google's rule (the last token of the longer side, B on a tie). With ``stride``, nothing
        is dropped: the text (or, for a pair, only ``text_pair``, e.g. a QA context) is cut into windows
        that share ``stride`` tokens, returned as ``encoding.overflowing`` after the first.
        ``is_split_into_words``: each text is a list of words (NER); offsets are then within each word
        and ``word_ids`` index the input words.
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a list of texts; use encode() for one text")
        with _gc_paused():
            a = self._engine.tokenized(texts, is_split_into_words)
            b = (
                None
                if pairs is None
                else self._engine.tokenized(self._check_pairs(texts, pairs), is_split_into_words)
            )
            template, out = self._template, []
            for i, seq_a in enumerate(a):
                seq_b = None if b is None else b[i]
                spans = plan_spans(
                    len(seq_a.ids),
                    None if seq_b is None else len(seq_b.ids),
                    max_length,
                    stride,
                    template.specials(pair=True),
                )
                windows = [assemble(seq_a, sa, seq_b, sb, template) for sa, sb in spans]
                out.append(
                    replace(windows[0], overflowing=tuple(windows[1:])) if len(windows) > 1 else windows[0]
                )
        return out

    def __call__(
        self,
        texts: Text | Sequence[Text],
        text_pairs: Text | Sequence[Text] | None = None,
        max_length: int | None = None,
        padding: bool | Literal["longest", "max_length"] = True,
        return_tensors: Literal["pt"] | None = "pt",
        *,
        is_split_into_words: bool = False,
    ) -> BatchEncoding:
        """A padded batch: ``input_ids``, ``token_type_ids``, ``attention_mask`` as (B, T) long tensors.

        A single text is a batch of one. ``padding``: True/"longest" pads to the longest row,
        "max_length" to ``max_length`` (Google's fixed-length features), False not at all.
        """
        single = isinstance(texts, str) or (is_split_into_words and bool(texts) and isinstance(texts[0], str))
        if single:
            texts = [texts]
            text_pairs = None if text_pairs is None else [text_pairs]
        with _gc_paused():
            ids_a = self._engine.ids(texts, is_split_into_words)
            ids_b = None
            if text_pairs is not None:
                ids_b = self._engine.ids(self._check_pairs(texts, text_pairs), is_split_into_words)
            template = self._template
            cls, sep = [template.cls[0]], [template.sep[0]]
            middle = sep * template.pair_seps
            n_pair = template.specials(pair=True)
            rows, first = [], []
            for i, a in enumerate(ids_a):
                b = None if ids_b is None else ids_b[i]
                if max_length is not None:
                    (_, la), (_, lb) = plan_spans(
                        len(a), None if b is None else len(b), max_length, None, n_pair
                    )[0]
                    a, b = a[:la], None if b is None else b[:lb]
                rows.append(cls + a + sep if b is None else cls + a + middle + b + sep)
                first.append(len(a) + 1 + (1 if b is None else template.pair_seps))
            length = pad_length(rows, padding, max_length, return_tensors)
            return pad_batch(rows, first, self.pad_token_id, length, return_tensors, template.type_b)

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _check_pairs(texts: Sequence[Text], pairs: Sequence[Text]) -> Sequence[Text]:
        if isinstance(pairs, str) or len(pairs) != len(texts):
            raise ValueError(f"text_pairs must be a list as long as texts ({len(texts)})")
        return pairs

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case})"


def _subword(folder: Path, do_lower_case: bool | None) -> Tokenizer:
    """The tokenizer of a folder without vocab.txt: WordPiece from its tokenizer.json, else a subword pipeline."""
    from bertkit.tokenization.subword import SubwordTokenizer  # a subclass of Tokenizer: imported on use

    wordpiece = (
        wordpiece_in_tokenizer_json(folder / TOKENIZER_JSON) if (folder / TOKENIZER_JSON).is_file() else None
    )
    if wordpiece is not None:
        vocab, lower = wordpiece
        if do_lower_case is None and not (folder / CONFIG_FILE).is_file():
            do_lower_case = lower  # the tokenizer.json's normalizer says the casing
        settings = read_settings(folder, do_lower_case)
        return Tokenizer(vocab, settings.do_lower_case, settings.specials, settings.model_max_length)
    config = read_config(folder)
    pipeline = read_pipeline(folder, config)
    limit = config.get("model_max_length")
    if not isinstance(limit, int) or limit > 1_000_000:  # transformers writes 1e30 for "no limit"
        limit = max_positions(folder)
        if pipeline.template.pair_seps == 2 and (folder / "config.json").is_file():
            limit -= 2  # RoBERTa's positions start after padding_idx: 514 position embeddings hold 512 tokens
    return SubwordTokenizer(pipeline, limit)
