"""Engine: texts -> WordPiece tokens without special tokens, exactly as Google's FullTokenizer.

Most texts go through one Rust ``tokenizers`` pipeline configured by rules.py. The few that it cannot
follow (``rules.needs_python``) go through Google's BasicTokenizer in Python and then Rust WordPiece on
its words; their offsets are mapped back through the character alignment the Python step keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tokenizers
from tokenizers.models import WordPiece

from bertkit.tokenization import rules
from bertkit.tokenization.encoding import TokenizedText

Text = str | list[str]  # a text, or its words when is_split_into_words


@dataclass(frozen=True)
class _WordsEncoding:
    """A Python-path result: Rust WordPiece over basic-tokenizer words, and where each word came from."""

    rust: tokenizers.Encoding
    words: list[rules.Word]
    sources: list[int] | None  # input word of each basic word, when the input was split into words

    @property
    def ids(self) -> list[int]:
        return self.rust.ids


class Engine:
    """Google's BasicTokenizer + WordPiece over a vocab, batched in Rust."""

    def __init__(self, vocab: dict[str, int], unk_token: str, lower: bool):
        self.lower = lower
        self._unk = unk_token
        self._tokens = sorted(vocab, key=vocab.__getitem__)
        model = WordPiece(vocab, unk_token=unk_token, max_input_chars_per_word=rules.MAX_INPUT_CHARS_PER_WORD)
        self._rust = tokenizers.Tokenizer(model)
        self._rust.normalizer = rules.google_normalizer(lower)
        self._rust.pre_tokenizer = rules.google_pre_tokenizer()
        self._wordpiece = tokenizers.Tokenizer(model)  # WordPiece only, for the Python path's words

    def ids(self, inputs: Sequence[Text], split: bool) -> list[list[int]]:
        """Token ids of each input."""
        return [r.ids for r in self._encode(inputs, split)]

    def tokenized(self, inputs: Sequence[Text], split: bool) -> list[TokenizedText]:
        """Ids, tokens, offsets into each original input, and word ids."""
        out, vocab = [], self._tokens
        for r in self._encode(inputs, split):
            if isinstance(r, _WordsEncoding):
                rust = r.rust
                offsets = [
                    (r.words[w].starts[s], r.words[w].ends[e - 1])
                    for (s, e), w in zip(rust.offsets, rust.word_ids, strict=True)
                ]
                word_ids = rust.word_ids if r.sources is None else [r.sources[w] for w in rust.word_ids]
                out.append(TokenizedText(rust.ids, [vocab[i] for i in rust.ids], offsets, word_ids))
            else:
                ids = r.ids
                # tokens by lookup: reuses the vocab's str objects, cheaper than Encoding.tokens
                out.append(TokenizedText(ids, [vocab[i] for i in ids], r.offsets, r.word_ids))
        return out

    def _encode(self, inputs: Sequence[Text], split: bool) -> list[tokenizers.Encoding | _WordsEncoding]:
        """The Rust pipeline for most inputs, the Python path for the rest; order kept."""
        out: list[Any] = [None] * len(inputs)
        fast_index, fast_inputs, slow_index = [], [], []
        for i, x in enumerate(inputs):
            if split:
                if isinstance(x, str) or not all(isinstance(w, str) for w in x):
                    raise TypeError(f"input {i}: with is_split_into_words each input is a list of str")
                needs = any(rules.needs_python(w, self.lower) for w in x)
            elif isinstance(x, str):
                needs = rules.needs_python(x, self.lower)
            else:
                raise TypeError(
                    f"input {i} is {type(x).__name__}, not str (lists of words need is_split_into_words=True)"
                )
            if needs:
                slow_index.append(i)
            else:
                fast_index.append(i)
                fast_inputs.append(x)
        encodings = self._rust.encode_batch(fast_inputs, is_pretokenized=split, add_special_tokens=False)
        for i, enc in zip(fast_index, encodings, strict=True):
            out[i] = enc
        if slow_index:
            words, sources = zip(*(self._basic_words(inputs[i], split) for i in slow_index), strict=True)
            texts = [[w.text for w in ws] for ws in words]
            encodings = self._wordpiece.encode_batch(texts, is_pretokenized=True, add_special_tokens=False)
            for i, enc, ws, src in zip(slow_index, encodings, words, sources, strict=True):
                out[i] = _WordsEncoding(enc, ws, src)
        return out

    def _basic_words(self, x: Text, split: bool) -> tuple[list[rules.Word], list[int] | None]:
        """Google's basic tokenizer on a text (or on each input word), ready for Rust WordPiece."""
        if not split:
            return [self._safe(w) for w in rules.basic_tokenize(x, self.lower)], None
        words, sources = [], []
        for k, text in enumerate(x):
            for w in rules.basic_tokenize(text, self.lower):
                words.append(self._safe(w))
                sources.append(k)
        return words, sources

    def _safe(self, word: rules.Word) -> rules.Word:
        """A word with a lone surrogate cannot reach Rust; it is [UNK] for Google (no vocab entry has one)."""
        if not any("\ud800" <= c <= "\udfff" for c in word.text):
            return word
        n = len(self._unk)
        return rules.Word(self._unk, (word.starts[0],) * n, (word.ends[-1],) * n)
