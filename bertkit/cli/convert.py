"""`bertkit convert SRC DST`: any supported checkpoint to a Hugging Face-compatible folder."""

from __future__ import annotations

import argparse

from bertkit.weights.convert import convert


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a Google TF or HF checkpoint into a Hugging Face folder",
                       description="Convert SRC (Google TF checkpoint folder, HF folder, alias or hub id) into DST, "
                       "a folder with config.json, model.safetensors, vocab.txt and tokenizer_config.json.")
    p.add_argument("src", help="model folder, TF checkpoint prefix, alias or hub id")
    p.add_argument("dst", help="output folder (created)")
    p.add_argument("--architecture", default=None,
                   help="transformers class to write (default: keep every head the checkpoint has)")
    case = p.add_mutually_exclusive_group()
    case.add_argument("--lower", dest="do_lower_case", action="store_const", const=True, default=None,
                      help="the vocab is uncased (default for Google folders: guessed from the folder name)")
    case.add_argument("--cased", dest="do_lower_case", action="store_const", const=False)


def run(args: argparse.Namespace) -> int:
    report = convert(args.src, args.dst, architecture=args.architecture, do_lower_case=args.do_lower_case)
    print(report)
    print(f"wrote {args.dst}")
    return 0
