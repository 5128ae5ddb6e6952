"""Inference preparation: a loaded model's linear weights laid out once for the CPU's GEMM.

prepare_for_inference swaps every nn.Linear for a PreparedLinear (same parameters, same state_dict) that also
keeps its weight packed for oneDNN, and uses it where a rule per ISA (FP32_PACKED_ROWS) says the packed GEMM
is faster; unprepare swaps them back. Nothing here touches global process state (bertkit.runtime does that,
torch.compile's settings and the malloc thresholds included).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bertkit import runtime

logger = logging.getLogger(__name__)

# Packed layouts, per precision. The rule (measured with bench/bench_infer.py; see prepare_for_inference):
#   fp32 -> "mkldnn": oneDNN's blocked fp32 weights (same size as the weights); "none" where torch lacks oneDNN
#   bf16 -> "mkldnn-bf16": bf16 weights in oneDNN's layout, used by AMX / AVX-512-BF16 kernels, where the CPU
#           has native bf16; elsewhere "none" and the caller keeps autocast.
PACKINGS = ("none", "mkldnn", "mkldnn-bf16")
# Activations a PreparedLinear can apply inside oneDNN's GEMM (a post-op: the output is written once, not
# written, read and written again); name -> (_linear_pointwise attr, algorithm, the same activation off it).
POST_OPS = {"none": ("none", "", None), "gelu": ("gelu", "none", F.gelu)}


@dataclass(frozen=True)
class PackedRows:
    """The row (token) counts, inclusive, for which an fp32 PreparedLinear uses oneDNN's packed GEMM (`gemm`),
    and for which a linear with an activation applies it inside that GEMM (`post_op`). Elsewhere: F.linear
    (MKL), then the activation on its own."""

    gemm: tuple[int, float]
    post_op: tuple[int, float]


# The rule, per the CPU's vector ISA (torch.backends.cpu.get_cpu_capability()), from the probe in
# bench/bench_infer.py --gemm (2 threads, wall time, packed / plain per row count):
# - AVX-512 (Xeon, AMX): packed 0.58-0.94 at 4-256 rows, 1.2-1.7 at 1 row (a GEMV), 1.0-1.1 at 512+; the GELU
#   post-op 85 vs 97 ms at 8192 rows for MiniLM's 384 -> 1536, 5.9 vs 8.5 ms at 800, equal at 16.
# - AVX2 (AMD EPYC, Zen 3; 2026-12-04, bench/results/gemm-avx2.log): packed 0.4-0.9 at 2-32 rows, 0.7-1.0 at
#   64, 0.8-1.2 from 128 up, by shape and by run (MiniLM and BERT-base shapes); the GELU post-op costs more
#   there: fused / plain + GELU 0.3-0.6 at 2-8 rows, 0.6-0.9 at 16-32, 0.8-1.2 at 64-1024, while the packed
#   GEMM and then F.gelu is ahead of fused from 8 rows up. End to end (one process, rules alternating,
#   5 passes): +3-4 % at batch 32 and +1-2 % at batch 1 over the AVX-512 windows, for MiniLM and BERT-base.
# Any other ISA takes the AVX2 windows, the narrower pair. Outside the windows bertkit runs what it ran before
# packing existed. End to end the rule was never slower than that on the two CPUs it was measured on; one
# linear is (MiniLM's 384 x 384 on AVX2: 1.04-1.19x packed at every row count, inside a faster forward).
FP32_PACKED_ROWS = {
    "AVX512": PackedRows(gemm=(2, 256), post_op=(2, float("inf"))),
    "AVX2": PackedRows(gemm=(2, 64), post_op=(2, 8)),
}


@functools.cache  # PreparedLinear asks on every call
def fp32_packed_rows(capability: str | None = None) -> PackedRows:
    """The PackedRows rule for this CPU, or for a torch.backends.cpu.get_cpu_capability() name."""
    capability = capability or torch.backends.cpu.get_cpu_capability()
    return FP32_PACKED_ROWS["AVX512" if capability.startswith("AVX512") else "AVX2"]


class PreparedLinear(nn.Linear):
    """An nn.Linear whose weight is also kept packed for oneDNN; same parameters, same state_dict.

    Eval forwards under no_grad / inference_mode on the CPU use the packed copy; training, autograd, tracing,
    export and torch.compile (which packs by itself) use the plain F.linear. The copy is repacked when the
    weight changes in place (load_state_dict, an optimizer step), so it is never stale.
    Shapes: (..., in_features) -> (..., out_features); bf16 packing returns bf16, like autocast.
    """

    packing: str
    activation: str  # a POST_OPS name: applied after the linear on every path (packed or not)
    _packed: torch.Tensor | None
    _packed_bias: torch.Tensor | None
    _packed_version: int

    @classmethod
    def from_linear(cls, linear: nn.Linear, packing: str, activation: str = "none") -> PreparedLinear:
        if packing not in PACKINGS[1:]:
            raise ValueError(f"packing must be one of {PACKINGS[1:]}, got {packing!r}")
        if activation not in POST_OPS:
            raise ValueError(f"activation must be one of {tuple(POST_OPS)}, got {activation!r}")
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight, new.bias = linear.weight, linear.bias  # shared: the state_dict is unchanged
        new.packing = packing
        new.activation = activation
        new.training = linear.training
        new._packed = new._packed_bias = None
        new._packed_version = -1
        new.repack()
        return new

    def repack(self) -> None:
        with torch.no_grad():
            weight, bias = self.weight.detach(), None if self.bias is None else self.bias.detach()
            if self.packing == "mkldnn-bf16":
                weight = weight.bfloat16()
                bias = None if bias is None else bias.bfloat16()
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())
            self._packed_bias = bias
        self._packed_version = self._weight_version()

    def _weight_version(self) -> int:
        """The weight's in-place write counter; an inference tensor (made under inference_mode) has none and
        counts as 0: it cannot be written in place outside inference_mode."""
        return 0 if self.weight.is_inference() else self.weight._version

    def _use_packed(self, x: torch.Tensor) -> bool:
        if self.training or x.device.type != "cpu" or self.weight.device.type != "cpu":
            return False
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return False
        return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export())

    def path(self, x: torch.Tensor) -> str:
        """How forward computes x: "fused" (the packed GEMM with the activation as its post-op), "packed" (the
        packed GEMM, then the activation), or "plain" (F.linear, then the activation)."""
        if not self._use_packed(x):
            return "plain"
        if self.packing == "mkldnn-bf16":
            return "fused"
        if x.dtype != torch.float32:
            return "plain"
        rows = x.numel() // self.in_features
        window = fp32_packed_rows()
        if self.activation != "none" and window.post_op[0] <= rows <= window.post_op[1]:
            return "fused"
        return "packed" if window.gemm[0] <= rows <= window.gemm[1] else "plain"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self.path(x)
        if path == "plain":
            return self._activate(F.linear(x, self.weight, self.bias))
        if self._packed is None or self._weight_version() != self._packed_version:
            self.repack()
        if self.packing == "mkldnn-bf16":
            x = x.bfloat16()
        attr, algorithm, _ = POST_OPS[self.activation if path == "fused" else "none"]
        out = torch.ops.mkldnn._linear_pointwise(x, self._packed, self._packed_bias, attr, [], algorithm)
        return out if path == "fused" else self._activate(out)

    def _activate(self, out: torch.Tensor) -> torch.Tensor:
        """The activation, where the GEMM did not apply it."""
        activation = POST_OPS[self.activation][2]
        return out if activation is None else activation(out)

    def extra_repr(self) -> str:
        extra = "" if self.activation == "none" else f", activation={self.activation}"
        return f"{super().extra_repr()}, packing={self.packing}{extra}"

    def __getstate__(self) -> dict:
        """A copy leaves the packed weight behind (oneDNN's opaque tensor has no storage to copy); it is
        packed again at the first forward."""
        state = dict(super().__getstate__())
        state.update(_packed=None, _packed_bias=None, _packed_version=-1)
        return state


def inference_packing(device: torch.device, precision: str) -> str:
    """The weight layout prepare_for_inference chooses for this device and precision (one of PACKINGS).

    CPU fp32: oneDNN blocked weights whenever torch has oneDNN. Packing once saves the per-call re-layout
    that the default MKL sgemm does: 1.3-2x per GEMM at 16-128 rows, equal beyond ~500 rows (bench_infer).
    CPU bf16: bf16 weights in oneDNN's layout where the CPU is native bf16 (no per-call cast of every
    weight, which autocast pays: 40-56% of batch-1 time); elsewhere nothing, and the caller keeps autocast.
    CUDA, MPS: nothing (cuBLAS needs no packing; autocast's weight cache already casts once per forward).
    """
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return "none"
    if precision == "fp32":
        return "mkldnn"
    if precision == "bf16" and runtime.native_bf16():
        return "mkldnn-bf16"
    return "none"


_BF16_HINTED = False  # prepare_for_inference names --precision bf16 once per process where it is native


def prepare_for_inference(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """Ready a loaded model for eval-only use, in place: eval mode, every nn.Linear packed once for the CPU's
    GEMM (inference_packing), and on the CPU freed memory kept for reuse (runtime.keep_freed_memory). Outputs
    match the unprepared model (fp32: within 1e-4); training, autograd and torch.compile still see plain
    linears. Returns the model.

    Call it where a model is loaded for inference (Predictor, FeatureExtractor, the server), after .to(device)
    and before any torch.compile. A bf16 model prepared here needs no autocast (bf16_weights_prepared says).
    """
    model.eval()
    params = list(model.parameters())
    if not params:
        return model
    runtime.check_precision(precision, params[0].device)
    if params[0].device.type == "cpu":
        runtime.keep_freed_memory()
    packing = inference_packing(params[0].device, precision)
    if packing == "none":
        return model
    for parent in list(model.modules()):
        # a block may name the activation that follows one of its linears (model.bert.Layer: ffn_in, exact
        # GELU); the prepared linear applies it in its GEMM and the block skips its own
        fusable = getattr(parent, "fusable_activation", None)
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.weight.dtype == torch.float32:
                activation = fusable[1] if fusable and fusable[0] == name else "none"
                setattr(parent, name, PreparedLinear.from_linear(child, packing, activation))
    logger.info("prepared for inference: linear weights packed (%s)", packing)
    global _BF16_HINTED
    if packing == "mkldnn" and not _BF16_HINTED and runtime.native_bf16():
        _BF16_HINTED = True
        logger.info(
            "this CPU computes bf16 natively (AMX / AVX-512-BF16): --precision bf16 keeps bf16 weights and "
            "runs their GEMMs natively, often several times faster than fp32, with logits moving by ~1e-2 "
            "(the README's export table); fp32 stays the default"
        )
    return model


def unprepare(model: nn.Module) -> nn.Module:
    """Undo prepare_for_inference in place: every PreparedLinear becomes a plain nn.Linear with the same
    parameters (for rewrites that match nn.Linear by type, e.g. dynamic quantization). Returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PreparedLinear):
                plain = nn.Linear.__new__(nn.Linear)
                nn.Module.__init__(plain)
                plain.in_features, plain.out_features = child.in_features, child.out_features
                plain.weight, plain.bias = child.weight, child.bias
                plain.training = child.training
                setattr(parent, name, plain)
    return model


def bf16_weights_prepared(model: nn.Module) -> bool:
    """True when prepare_for_inference gave this model bf16 weights (autocast would only add casts)."""
    return any(isinstance(m, PreparedLinear) and m.packing == "mkldnn-bf16" for m in model.modules())
