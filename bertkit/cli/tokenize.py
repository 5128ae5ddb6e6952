"""``bertkit tokenize``: JSONL texts on stdin -> tokens, ids and offsets as JSONL on stdout.

    echo '{"text": "Hello, world!", "text_pair": "Hi."}' | bertkit tokenize --model DIR --max-seq-length 128

Each input line is an object with ``text`` and, optionally, ``text_pair``. Each output line has
``tokens`` (with [CLS]/[SEP]), ``input_ids``, ``token_type_ids`` and ``offsets`` (character offsets
into ``text`` for type id 0 and into ``text_pair`` for type id 1; [0, 0] for special tokens).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bertkit.tokenization import Encoding, Tokenizer

_CHUNK = 1000  # lines per encode_batch call


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``tokenize`` on the subparsers of ``bertkit``."""
    parser = subparsers.add_parser(
        "tokenize",
        help="tokenize JSONL texts from stdin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model", type=Path, help="model folder: vocab.txt, casing from tokenizer_config.json"
    )
    source.add_argument("--vocab", type=Path, help="a vocab.txt; give its casing with --lower or --cased")
    casing = parser.add_mutually_exclusive_group()
    casing.add_argument(
        "--lower", dest="do_lower_case", action="store_const", const=True, help="uncased vocab"
    )
    casing.add_argument(
        "--cased", dest="do_lower_case", action="store_const", const=False, help="cased vocab"
    )
    parser.add_argument(
        "--max-seq-length", type=int, default=None, help="truncate to N tokens (pairs by Google's rule)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Tokenize stdin to stdout; 0 on success, 1 on bad input, 2 on bad arguments."""
    if args.vocab is not None and args.do_lower_case is None:
        return _fail("--vocab needs --lower or --cased: a vocab file does not record its casing", 2)
    if args.model is not None and args.do_lower_case is not None:
        return _fail("--lower/--cased go with --vocab; a model folder records its casing", 2)
    if args.max_seq_length is not None and args.max_seq_length < 3:
        return _fail(f"--max-seq-length must be at least 3, got {args.max_seq_length}", 2)
    try:
        if args.model is not None:
            tokenizer = Tokenizer.from_pretrained(args.model)
        else:
            tokenizer = Tokenizer.from_vocab(args.vocab, do_lower_case=args.do_lower_case)
    except (FileNotFoundError, ValueError) as e:
        return _fail(str(e), 1)
    return _stream(tokenizer, args.max_seq_length, sys.stdin, sys.stdout)


def _stream(tokenizer: Tokenizer, max_length: int | None, stdin: TextIO, stdout: TextIO) -> int:
    pending: list[tuple[str, str | None]] = []
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            pending.append(_parse(line))
        except ValueError as e:
            _write(tokenizer, pending, max_length, stdout)
            return _fail(f"stdin line {number}: {e}", 1)
        if len(pending) >= _CHUNK:
            _write(tokenizer, pending, max_length, stdout)
            pending = []
    _write(tokenizer, pending, max_length, stdout)
    return 0


def _parse(line: str) -> tuple[str, str | None]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError('expected an object with a string "text"')
    pair = obj.get("text_pair")
    if pair is not None and not isinstance(pair, str):
        raise ValueError('"text_pair" must be a string')
    return obj["text"], pair


def _write(
    tokenizer: Tokenizer, items: list[tuple[str, str | None]], max_length: int | None, out: TextIO
) -> None:
    """Encode singles and pairs in one batch each, then write in input order."""
    singles = [i for i, (_, pair) in enumerate(items) if pair is None]
    pairs = [i for i, (_, pair) in enumerate(items) if pair is not None]
    encodings: dict[int, Encoding] = {}
    if singles:
        batch = tokenizer.encode_batch([items[i][0] for i in singles], max_length=max_length)
        encodings.update(zip(singles, batch, strict=True))
    if pairs:
        texts, text_pairs = [items[i][0] for i in pairs], [items[i][1] for i in pairs]
        encodings.update(zip(pairs, tokenizer.encode_batch(texts, text_pairs, max_length), strict=True))
    for i in range(len(items)):
        e = encodings[i]
        record = {"tokens": e.tokens, "input_ids": e.ids, "token_type_ids": e.type_ids, "offsets": e.offsets}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _fail(message: str, code: int) -> int:
    print(f"bertkit tokenize: error: {message}", file=sys.stderr)
    return code
