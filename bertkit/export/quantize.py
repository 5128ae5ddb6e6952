"""Dynamic int8 quantization: weights of the linear layers stored as int8, activations quantized per batch.

Two routes, same idea: onnxruntime's quantize_dynamic on an exported graph (MatMul -> MatMulInteger), and
PyTorch's quantize_dynamic on nn.Linear for the torch backend. Embeddings and LayerNorm stay float.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)


class _DropInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and "pre-processing" not in record.getMessage()


def quantize_onnx(onnx_path: str | Path, output_path: str | Path, per_channel: bool = True) -> Path:
    """Write an int8 copy of an ONNX graph (dynamic quantization of its MatMul weights); returns its path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    output_path = Path(output_path)
    root = logging.getLogger()
    quiet = _DropInfo()
    root.addFilter(quiet)  # onnxruntime logs one INFO line per tensor on the root logger; keep its warnings
    try:
        quantize_dynamic(
            str(onnx_path),
            str(output_path),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
    finally:
        root.removeFilter(quiet)
    logger.info("wrote int8 graph %s", output_path)
    return output_path


def quantize_torch(model: nn.Module) -> nn.Module:
    """A copy of the model whose nn.Linear layers run int8 (dynamic quantization, per-channel weights, CPU only).

    Per-channel weight scales lose less accuracy than PyTorch's per-tensor default (measured on SST-2 in
    bench/bench_export.py). A model prepared for inference (prepare.prepare_for_inference) is quantized
    too: its copy goes back to plain nn.Linear first, which is the type the quantizer looks for.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from bertkit import prepare

    model = prepare.unprepare(copy.deepcopy(model))
    with warnings.catch_warnings():  # PyTorch marks its eager quantization APIs deprecated; they still work
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
