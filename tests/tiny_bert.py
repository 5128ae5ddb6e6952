"""A tiny random BERT folder with a small real-word vocab, and a toy sentiment set it can learn in seconds.
Shared by tests/training, tests/inference, tests/cli and tests/data: `import tiny_bert` (tests/ is on pytest's
pythonpath)."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from bertkit.data.examples import TextExample
from bertkit.model.config import BertConfig
from bertkit.model.heads import BertForPreTraining
from bertkit.tokenization import Tokenizer

WORDS = [
    "the",
    "a",
    "movie",
    "film",
    "plot",
    "was",
    "is",
    "very",
    "quite",
    "story",
    "actor",
    "and",
    "it",
    "this",
]
POSITIVE = ["good", "great", "fine", "lovely"]
NEGATIVE = ["bad", "awful", "dull", "poor"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tiny_model(folder: Path, dropout: float = 0.1, seed: int = 0) -> Path:
    """Random 2-layer BERT (hidden 32) with BertForPreTraining heads, saved as an HF folder with its vocab."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS + POSITIVE + NEGATIVE + [".", "!"]) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab.read_text().split()), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)  # fmt: skip
    BertForPreTraining(config).save_pretrained(folder)
    Tokenizer.from_vocab(vocab, do_lower_case=True).save_pretrained(folder)
    return folder


def toy_examples(n: int, seed: int, pair: bool = False) -> list[TextExample]:
    """Sentences with one sentiment word among fillers; label 'pos'/'neg' follows that word."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive = rng.random() < 0.5
        words = rng.choices(WORDS, k=rng.randint(2, 12))
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if positive else NEGATIVE))
        text = " ".join(words)
        other = " ".join(rng.choices(WORDS, k=3)) if pair else None
        out.append(TextExample(text, other, "pos" if positive else "neg", f"toy:{i + 1}"))
    return out
