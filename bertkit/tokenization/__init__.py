"""Tokenizers with offsets: Google-exact WordPiece on the Rust ``tokenizers`` engine (BERT, DistilBERT, ELECTRA,
ERNIE, Chinese ALBERT), and byte-level BPE / SentencePiece / ``tokenizer.json`` pipelines (RoBERTa, ALBERT, XLM-R)."""

from bertkit.tokenization.encoding import BatchEncoding, Encoding, google_pair_lengths, window_spans
from bertkit.tokenization.pipelines import TOKENIZER_FILES
from bertkit.tokenization.subword import SubwordTokenizer
from bertkit.tokenization.tokenizer import Tokenizer
from bertkit.tokenization.vocab import load_vocab

__all__ = [
    "BatchEncoding",
    "Encoding",
    "SubwordTokenizer",
    "TOKENIZER_FILES",
    "Tokenizer",
    "google_pair_lengths",
    "load_vocab",
    "window_spans",
]
