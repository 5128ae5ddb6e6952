"""`bertkit predict --model OUT --input FILE.jsonl`: one JSON prediction per input line (stdout or --output)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict with a fine-tuned model folder; JSON lines in, JSON lines out",
                       description="Each input line is a JSON object such as {\"text\": ...} or "
                       "{\"text\": ..., \"text_pair\": ...}; each output line is the prediction for it "
                       "(classification: label and probabilities).")  # fmt: skip
    p.add_argument("--model", required=True, help="a folder written by bertkit train")
    p.add_argument("--input", required=True, help="JSON lines file ('-' reads standard input)")
    p.add_argument("--output", help="write here instead of standard output")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-seq-length", type=int, help="default: the length the model was trained with")
    p.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="fp32 (default); bf16: bf16 weights where the CPU has native bf16, else "
                   "autocast; fp16: CUDA")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder first (tens of seconds, needs a "
                   "C++ compiler): about 2x faster on CPU for large inputs")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from bertkit import runtime as rt_mod
    from bertkit.inference.predictor import Predictor, read_inputs
    from bertkit.inference.ranks import predict_ranked

    runtime = rt_mod.start(args.device)  # under torchrun: every rank predicts its share of the lines
    try:
        device = str(runtime.device) if runtime.distributed else args.device
        predictor = Predictor.from_pretrained(args.model, batch_size=args.batch_size, device=device,
                                              max_seq_length=args.max_seq_length, compile=args.compile,
                                              precision=args.precision)  # fmt: skip
        inputs = read_inputs(args.input)
        examples = [predictor.examples([obj], source)[0] for source, obj in inputs]
        predictions = predict_ranked(predictor, examples, runtime)
    finally:
        rt_mod.stop(runtime)
    if predictions is None:  # not rank 0: rank 0 writes every prediction
        return 0
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        for prediction in predictions:
            out.write(json.dumps(prediction, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()
    return 0
