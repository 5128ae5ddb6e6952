"""Google-exact WordPiece tokenization on the Rust ``tokenizers`` engine, with offsets."""

from bertkit.tokenization.encoding import BatchEncoding, Encoding, google_pair_lengths, window_spans
from bertkit.tokenization.tokenizer import Tokenizer
from bertkit.tokenization.vocab import load_vocab

__all__ = ["BatchEncoding", "Encoding", "Tokenizer", "google_pair_lengths", "load_vocab", "window_spans"]
