"""`bertkit <command>`: a dispatch table of subcommands; each lives in its own module with add_parser/run."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> module under bertkit.cli; imported only when that command runs, so `bertkit --help` stays fast.
COMMANDS: dict[str, str] = {
    "train": "train",
    "distill": "distill",
    "eval": "eval",
    "predict": "predict",
    "convert": "convert",
    "tokenize": "tokenize",
    "serve": "serve",
    "export": "export",
    "encode": "encode",
    "pretrain-data": "pretrain",
    "pretrain": "pretrain",
    "vocab": "vocab",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertkit", description="BERT end to end: fine-tune, extract, pretrain, serve.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f"bertkit.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    module = importlib.import_module(f"bertkit.cli.{COMMANDS[args.command]}")
    try:
        return int(module.run(args) or 0)
    except (FileNotFoundError, ValueError) as err:  # user errors: one clear line, no traceback
        print(f"bertkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
