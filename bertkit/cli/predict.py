"""`bertkit predict --model OUT --input FILE.jsonl`: one JSON prediction per input line (stdout or --output)."""

from __future__ import annotations

import argparse

from bertkit.inference.predict_file import CHUNK_SIZE


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict with a fine-tuned model folder; JSON lines in, JSON lines out",
                       description="Each input line is a JSON object such as {\"text\": ...} or "
                       "{\"text\": ..., \"text_pair\": ...}; each output line is the prediction for it "
                       "(classification: label and probabilities).")  # fmt: skip
    p.add_argument("--model", required=True, help="a folder written by bertkit train")
    p.add_argument("--input", required=True, help="JSON lines file ('-' reads standard input)")
    p.add_argument("--output", help="write here instead of standard output")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=CHUNK_SIZE,
                   help=f"lines read, predicted and written at a time (default {CHUNK_SIZE}): memory holds one "
                   "chunk, whatever the size of the input")  # fmt: skip
    p.add_argument("--max-seq-length", type=int, help="default: the length the model was trained with")
    p.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="fp32 (default); bf16: bf16 weights where the CPU has native bf16, else "
                   "autocast; fp16: CUDA")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder first (tens of seconds, needs a "
                   "C++ compiler): about 2x faster on CPU for large inputs")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from bertkit import runtime as rt_mod
    from bertkit.inference.predict_file import predict_file
    from bertkit.inference.predictor import Predictor

    runtime = rt_mod.start(args.device)  # under torchrun: every rank predicts its share of each chunk
    try:
        device = str(runtime.device) if runtime.distributed else args.device
        predictor = Predictor.from_pretrained(args.model, batch_size=args.batch_size, device=device,
                                              max_seq_length=args.max_seq_length, compile=args.compile,
                                              precision=args.precision)  # fmt: skip
        predict_file(predictor, args.input, args.output, runtime, args.chunk_size)
    finally:
        rt_mod.stop(runtime)
    return 0
