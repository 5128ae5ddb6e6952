"""`bertkit pretrain-data` (text -> masked shards) and `bertkit pretrain` (MLM + NSP training on the shards)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from bertkit.training.config import TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    if "pretrain" in sub.choices:  # COMMANDS lists this module for both of its commands
        return
    d = sub.add_parser("pretrain-data", help="raw text to masked-LM / next-sentence shards (Google's semantics)",
                       description="Input: one sentence per line, a blank line between documents. Output: DIR with "
                       "shard-*.npz and meta.json, as Google's create_pretraining_data.py makes instances.")  # fmt: skip
    d.add_argument("--input", required=True, nargs="+", help="text file(s)")
    d.add_argument("--output-dir", required=True)
    d.add_argument("--model", help="model folder whose vocab.txt and casing to use (or --vocab)")
    d.add_argument("--vocab", help="a vocab.txt (needs --lower or --cased)")
    case = d.add_mutually_exclusive_group()
    case.add_argument("--lower", dest="do_lower_case", action="store_const", const=True, default=None)
    case.add_argument("--cased", dest="do_lower_case", action="store_const", const=False)
    d.add_argument("--max-seq-length", type=int, default=128)
    d.add_argument("--max-predictions-per-seq", type=int, default=20)
    d.add_argument("--masked-lm-prob", type=float, default=0.15)
    d.add_argument("--dupe-factor", type=int, default=10, help="passes over the data, each with new masks")
    d.add_argument("--short-seq-prob", type=float, default=0.1)
    d.add_argument(
        "--whole-word-mask", action="store_true",
        help="mask whole words (## pieces stay together); on by itself with --zh-segmenter or --word-ref",
    )
    d.add_argument("--zh-segmenter", choices=["jieba"], help="Chinese word boundaries for whole-word masking")
    d.add_argument("--word-ref", help="word reference file (transformers run_chinese_ref.py format)")
    d.add_argument("--seed", type=int, default=12345)
    d.add_argument("--instances-per-shard", type=int, default=100_000)

    p = sub.add_parser("pretrain", help="masked-LM (+ next-sentence) pretraining, continued or from scratch",
                       description="Train on shards from `bertkit pretrain-data`, from a checkpoint (--model) or from "
                       "scratch (--model-config + --vocab); reports held-out MLM accuracy and perplexity.")  # fmt: skip
    p.add_argument("--data", required=True, help="shard folder")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--model", default=None, help="checkpoint to continue from (default minilm)")
    p.add_argument("--model-config", help="config.json / bert_config.json: train a fresh model from scratch")
    p.add_argument("--vocab", help="vocab.txt or a folder with one (from scratch)")
    case = p.add_mutually_exclusive_group()
    case.add_argument("--lower", dest="do_lower_case", action="store_const", const=True, default=None)
    case.add_argument("--cased", dest="do_lower_case", action="store_const", const=False)
    p.add_argument("--dev-data", help="held-out shard folder")
    p.add_argument(
        "--dev-fraction", type=float, default=0.05, help="else hold out this fraction of documents"
    )
    p.add_argument(
        "--nsp", action=argparse.BooleanOptionalAction, default=True, help="next-sentence prediction"
    )
    p.add_argument("--new-tokens-only", action="store_true",
                   help="train only the rows added by `bertkit vocab extend` (and the heads)")  # fmt: skip
    p.add_argument("--max-train-instances", type=int)
    p.add_argument("--max-dev-instances", type=int)
    t = p.add_argument_group("training (TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            t.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float, "int | None": int, "float | None": float}.get(
                str(f.type), str
            )
            t.add_argument(flag, dest=f.name, type=kind, default=None)


def run(args: argparse.Namespace) -> int:
    return run_data(args) if args.command == "pretrain-data" else run_pretrain(args)


def run_data(args: argparse.Namespace) -> int:
    from bertkit.data.corpus import PretrainingDataConfig, create_pretraining_data
    from bertkit.tokenization import Tokenizer

    if bool(args.model) == bool(args.vocab):
        raise ValueError(
            "give --model (a folder with vocab.txt) or --vocab (with --lower/--cased), one of them"
        )
    if args.vocab:
        if args.do_lower_case is None:
            raise ValueError(f"--vocab {args.vocab} does not record its casing: add --lower or --cased")
        tokenizer = Tokenizer.from_vocab(args.vocab, args.do_lower_case)
    else:
        tokenizer = Tokenizer.from_pretrained(args.model, do_lower_case=args.do_lower_case)
    config = PretrainingDataConfig(
        max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob, dupe_factor=args.dupe_factor, short_seq_prob=args.short_seq_prob,
        whole_word_mask=args.whole_word_mask or None,
        segmenter=args.zh_segmenter, seed=args.seed, instances_per_shard=args.instances_per_shard,
    )  # fmt: skip
    meta = create_pretraining_data(
        args.input, args.output_dir, tokenizer, config, args.word_ref, show_progress=True
    )
    print(f"{meta['num_instances']} instances from {meta['num_documents']} documents in {len(meta['shards'])} "
          f"shard(s): {args.output_dir}")  # fmt: skip
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from bertkit.training.pretrain import PretrainSpec, pretrain, pretrain_config

    if args.model_config and args.model:
        raise ValueError("give --model (continue a checkpoint) or --model-config (from scratch), not both")
    spec = PretrainSpec(
        data=args.data, model=None if args.model_config else (args.model or "minilm"), model_config=args.model_config,
        vocab=args.vocab, do_lower_case=args.do_lower_case, dev_data=args.dev_data,
        dev_fraction=None if args.dev_data else args.dev_fraction, next_sentence=args.nsp,
        max_train_instances=args.max_train_instances, max_dev_instances=args.max_dev_instances,
        new_tokens_only=args.new_tokens_only,
    )  # fmt: skip
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    options = {k: v for k, v in vars(args).items() if k in names and v is not None}
    config = pretrain_config(options, "bertkit pretrain")
    report = pretrain(spec, config, args.output_dir)
    print(json.dumps(report, indent=2))
    print(f"model folder: {args.output_dir}")
    return 0
