"""`bertkit export --format onnx`: a model folder to ONNX (dynamic axes), checked against PyTorch; optional int8."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX (checked against PyTorch), optionally int8-quantized",
        description="Export MODEL to OUTPUT_DIR/model.onnx with dynamic batch and sequence axes, check its outputs "
        "against PyTorch on real sentences (padded batches) and, for a fine-tuned folder, the decoded task outputs "
        "(labels, entities, answers) on real inputs, and copy the tokenizer, config and task files beside "
        "it so `bertkit serve --model OUTPUT_DIR --backend onnx` runs from the folder alone. Needs the 'export' extra.",
    )
    p.add_argument("--model", required=True, help="model folder (fine-tuned or encoder) or alias")
    p.add_argument(
        "--output-dir", required=True, help="folder to write model.onnx (and model.int8.onnx) into"
    )
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (default: onnx)")
    p.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="also write model.int8.onnx (onnxruntime dynamic int8 quantization of the MatMul weights)",
    )
    p.add_argument(
        "--check-inputs",
        help="JSON lines of task inputs (as `bertkit predict --input` reads them; with gold labels the task's "
        "metric is reported too) for the check on decoded outputs; default: built-in real sentences",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    p.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="largest allowed |onnx - torch| on any output (default: 1e-4); larger fails the export",
    )


def run(args: argparse.Namespace) -> int:
    from bertkit.export.onnx import export_onnx
    from bertkit.inference.predictor import read_inputs

    inputs = dict(read_inputs(args.check_inputs)) if args.check_inputs else None
    report = export_onnx(
        args.model,
        args.output_dir,
        quantize=args.quantize,
        opset=args.opset,
        atol=args.atol,
        check_inputs=inputs,
    )
    print(report)
    return 0
