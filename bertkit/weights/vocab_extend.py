"""Vocabulary extension: add domain words to the tokenizer and the model, each new row the mean of its old pieces.

Words go into `[unusedN]` slots first (the embedding matrix keeps its size), then past the end (the word
embeddings and the MLM output bias grow). A new word's embedding row, and its MLM bias, start as the mean of
those of the WordPiece pieces the old vocabulary split it into, so the model sees roughly what it saw before.
Text without the new words gives exactly the same encoder outputs: no old row changes.
Shapes: V old vocab size, V' new vocab size, H hidden.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.textfile import load_json_object, text_lines
from bertkit.tokenization import Tokenizer
from bertkit.tokenization.rules import basic_tokenize
from bertkit.weights.hf import copy_other_files, save_hf
from bertkit.weights.load import load_every_head, model_folder, resolve_model_path

logger = logging.getLogger(__name__)

ADDED_FILE = "extended_vocab.json"  # {word: id} of every word added by extend_vocabulary, kept across runs
_ADDED_EXPECTED = "a JSON object {word: id} of the words bertkit vocab extend added; restore the file"


@dataclass(frozen=True)
class VocabExtension:
    """What extend_vocabulary did."""

    added: dict[str, int]  # word -> new id
    pieces: dict[str, list[str]]  # word -> the old pieces its row was initialised from
    filled_slots: int  # words that took an [unusedN] slot
    appended: int  # words appended past the old vocab size
    already_known: tuple[str, ...]  # words that were already single tokens
    vocab_size: int  # the new size


def normalize_word(word: str, tokenizer: Tokenizer) -> str:
    """The form the tokenizer will see (lowercased, accents stripped for uncased vocabs); one word only."""
    words = [w.text for w in basic_tokenize(word.strip(), tokenizer.do_lower_case)]
    if len(words) != 1:
        raise ValueError(
            f"{word!r} is {len(words)} words to BERT's basic tokenizer ({words}): a vocabulary entry must be one "
            "word without spaces or punctuation; add its parts separately"
        )
    return words[0]


def word_embeddings(model: PretrainedBert) -> nn.Embedding:
    encoder = model if isinstance(model, BertModel) else getattr(model, "bert", None)
    if not isinstance(encoder, BertModel):
        raise TypeError(f"{type(model).__name__} has no BERT encoder to extend")
    return encoder.embeddings.word_embeddings


def resize_token_embeddings(model: PretrainedBert, vocab_size: int) -> None:
    """Grow the word embeddings (and the MLM output bias) to vocab_size rows; new rows are zero until set."""
    old = word_embeddings(model)
    if vocab_size < old.num_embeddings:
        raise ValueError(f"cannot shrink the vocabulary from {old.num_embeddings} to {vocab_size}")
    if vocab_size == old.num_embeddings:
        return
    new = nn.Embedding(vocab_size, old.embedding_dim, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[: old.num_embeddings] = old.weight
    encoder = model if isinstance(model, BertModel) else model.bert  # type: ignore[attr-defined]
    encoder.embeddings.word_embeddings = new
    mlm = getattr(model, "mlm", None)
    if mlm is not None:
        bias = torch.zeros(vocab_size, device=mlm.bias.device, dtype=mlm.bias.dtype)
        bias[: mlm.bias.shape[0]] = mlm.bias.detach()
        mlm.bias = nn.Parameter(bias)
    model.config = model.config.replace(vocab_size=vocab_size)
    if encoder is not model:
        encoder.config = model.config


def extend_vocabulary(model: PretrainedBert, tokenizer: Tokenizer, words: Iterable[str]) -> VocabExtension:
    """Add words to tokenizer and model in place (see the module docstring); returns what was done."""
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model {model.config.vocab_size}; "
            "extend a model together with its own vocab.txt"
        )
    normalized = list(dict.fromkeys(normalize_word(w, tokenizer) for w in words if w.strip()))
    vocab = tokenizer.vocab
    known = tuple(w for w in normalized if w in vocab)
    new = [w for w in normalized if w not in vocab]
    pieces = {w: tokenizer.tokenize(w) for w in new}  # with the old vocabulary
    piece_ids = {w: tokenizer.convert_tokens_to_ids(p) for w, p in pieces.items()}
    old_size = tokenizer.vocab_size
    tokenizer.add_tokens(new)
    ids = {w: tokenizer.convert_tokens_to_ids(w) for w in new}
    resize_token_embeddings(model, tokenizer.vocab_size)
    table = word_embeddings(model).weight
    mlm = getattr(model, "mlm", None)
    with torch.no_grad():
        for word in new:
            rows = torch.tensor(piece_ids[word], device=table.device)
            table[ids[word]] = table[rows].mean(0)
            if mlm is not None:
                mlm.bias[ids[word]] = mlm.bias[rows].mean()
    appended = sum(1 for i in ids.values() if i >= old_size)
    if known:
        logger.info("already single tokens, left as they are: %s", ", ".join(known))
    return VocabExtension(ids, pieces, len(new) - appended, appended, known, tokenizer.vocab_size)


def read_words(path: str | Path) -> list[str]:
    """One word per line (the file may be gzipped); blank lines and lines starting with '#' are skipped."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"word list {path} does not exist (one word per line)")
    words = []
    for _, text in text_lines(path, "word list"):
        if (word := text.strip()) and not word.startswith("#"):
            words.append(word)
    return words


def save_extension(folder: str | Path, extension: VocabExtension) -> Path:
    """Merge the added words into folder/extended_vocab.json (kept across several extensions)."""
    path = Path(folder) / ADDED_FILE
    added = load_json_object(path, _ADDED_EXPECTED) if path.is_file() else {}
    added.update(extension.added)
    path.write_text(json.dumps(added, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_added_ids(folder: str | Path) -> list[int]:
    """Ids of the words added to a model folder by `bertkit vocab extend` (empty when none)."""
    path = Path(folder) / ADDED_FILE
    if not path.is_file():
        return []
    return sorted(load_json_object(path, _ADDED_EXPECTED).values())


def extend_model_folder(model: str | Path, words: Iterable[str], output_dir: str | Path) -> VocabExtension:
    """`bertkit vocab extend`: load a folder with all its heads, extend it, save the result (and the folder's
    other files: bertkit.json, labels, pooling) to output_dir."""
    folder = model_folder(resolve_model_path(model))
    net, _ = load_every_head(folder)
    tokenizer = Tokenizer.from_pretrained(folder)
    extension = extend_vocabulary(net, tokenizer, words)
    out = Path(output_dir)
    save_hf(net, out)
    tokenizer.save_pretrained(out)
    copy_other_files(folder, out)
    save_extension(out, extension)
    return extension
