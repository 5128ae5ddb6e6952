"""`bertkit vocab extend --model M --words FILE --output-dir OUT`: add domain words as whole tokens."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vocab", help="vocabulary tools: extend a model's vocabulary with domain words")
    actions = p.add_subparsers(dest="vocab_command", metavar="ACTION", required=True)
    e = actions.add_parser("extend", help="add words: [unusedN] slots first, then new rows",
                           description="Each word becomes one token. Its embedding row (and MLM bias) starts as the "
                           "mean of the pieces the old vocabulary split it into; every other row stays as it was. "
                           "OUT is a model folder; OUT/extended_vocab.json lists the added words and ids.")  # fmt: skip
    e.add_argument("--model", default="minilm", help="model folder, alias or hub id (default minilm)")
    e.add_argument("--words", help="file with one word per line ('#' starts a comment)")
    e.add_argument("--word", action="append", default=[], help="a word to add (repeatable)")
    e.add_argument("--output-dir", required=True)


def run(args: argparse.Namespace) -> int:
    from bertkit.weights.vocab_extend import extend_model_folder, read_words

    words = (read_words(args.words) if args.words else []) + list(args.word)
    if not words:
        raise ValueError("no words to add: give --words FILE or --word WORD")
    ext = extend_model_folder(args.model, words, args.output_dir)
    print(f"added {len(ext.added)} word(s): {ext.filled_slots} into [unusedN] slots, {ext.appended} appended; "
          f"vocab size {ext.vocab_size}")  # fmt: skip
    for word, pieces in ext.pieces.items():
        print(f"  {word} -> id {ext.added[word]} (was {' '.join(pieces)})")
    if ext.already_known:
        print(f"already single tokens: {', '.join(ext.already_known)}")
    print(f"model folder: {args.output_dir}")
    return 0
