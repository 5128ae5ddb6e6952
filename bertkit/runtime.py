"""Runtime: device and precision, seeds and RNG state, distributed start-up, torch.compile, CPU memory reuse.

The only module that touches global process state (seeds, RNG, process groups, inductor settings, glibc's
malloc thresholds), and only when called.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
_BF16_EMULATION_WARNED = False  # check_precision warns once per process where the CPU emulates bf16

# Freed CPU memory kept for reuse (keep_freed_memory). glibc's malloc gives a freed block above its mmap
# threshold back to the kernel at once and trims the heap's free top past its trim threshold; the mmap threshold
# adapts at run time, up to 32 MiB. A larger activation (MiniLM's FFN for a batch of 8,192 tokens: 48 MiB) is
# then new memory on every forward, each page faulted in and zeroed by the kernel: on the AVX2 VM of 2026-12-04,
# ~2 us per 4 KiB page, ~350,000 faults per encode of SST-2 dev at the default token budget, and encode ran
# 1.16x faster with the blocks kept (bench/bench_encode.py, bench/results/encode-avx2-malloc.log). Training
# steps too (a dense embedding gradient alone is 47 MB for MiniLM): 1.07x MiniLM, 1.09x BERT-base at batch
# 32 x 128, at the cost of a higher peak RSS over a long run (bench/bench_train_malloc.py, README).
KEEP_FREED_BYTES = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_FREED_MEMORY_KEPT: bool | None = None  # keep_freed_memory decides once per process


@dataclass(frozen=True)
class Runtime:
    """Where and how a process computes: device, autocast dtype, and its place in a distributed group."""

    device: torch.device
    precision: str = "fp32"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for forward passes (a no-op for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def pick_device(name: str | None = None) -> torch.device:
    """'cuda', 'cpu', 'mps', 'cuda:1' or None (CUDA when available, else CPU)."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available here; use --device cpu")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    """Raise for a precision the device cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            "precision fp16 needs a CUDA device (it trains with a gradient scaler); use bf16 on CPU"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bf16; use --precision fp16")
    global _BF16_EMULATION_WARNED
    if precision == "bf16" and device.type == "cpu" and not _BF16_EMULATION_WARNED and not native_bf16():
        _BF16_EMULATION_WARNED = True
        logger.warning(
            "--precision bf16: this CPU (%s) has no native bf16 (AMX / AVX-512-BF16), so torch emulates it "
            "(measured on an AVX2 CPU: a training step ~20x slower than in fp32, a forward ~6x); "
            "use --precision fp32 here",
            torch.backends.cpu.get_cpu_capability(),
        )


def start(device: str | None = None, precision: str = "fp32") -> Runtime:
    """Pick the device and, under torchrun (RANK/WORLD_SIZE set), join the process group.

    CUDA ranks use NCCL on cuda:LOCAL_RANK; CPU ranks use gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if world_size > 1:
        import torch.distributed as dist

        if dev.type == "cuda":
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        logger.info("distributed: rank %d of %d on %s", rank, world_size, dev)
    check_precision(precision, dev)
    if dev.type == "cpu":
        keep_freed_memory()
    return Runtime(dev, precision, rank, world_size, local_rank)


def setup(
    device: str | None = None, precision: str = "fp32", seed: int | None = None, num_threads: int | None = None
) -> Runtime:
    """The one set-up of a run, before anything random is built: CPU threads, seeds, then start().

    Every rank seeds the same value, so the ranks of a distributed run build identical models.
    """
    set_threads(num_threads)
    if seed is not None:
        seed_everything(seed)
    return start(device, precision)


def stop(runtime: Runtime) -> None:
    """Leave the process group if this process joined one."""
    if runtime.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(runtime: Runtime, obj: Any) -> Any:
    """Rank 0's value of obj on every rank."""
    if not runtime.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG state a training step consumes, for exact resume."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def set_threads(num_threads: int | None) -> None:
    """Intra-op CPU threads (None leaves torch's default)."""
    if num_threads:
        torch.set_num_threads(num_threads)


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to KEEP_FREED_BYTES for reuse instead of returning them to
    the kernel (mallopt M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), so that large activations reuse memory that
    is already mapped; the process's RSS then stays near its peak, as with a caching allocator. Called by
    start() and prepare_for_inference() for CPU work; decided once per process. True when in force.

    Left alone: other C libraries (macOS, musl), an environment that sets glibc's malloc itself (MALLOC_*_
    variables, GLIBC_TUNABLES with glibc.malloc), and BERTKIT_KEEP_FREED_MEMORY=0.
    """
    global _FREED_MEMORY_KEPT
    if _FREED_MEMORY_KEPT is None:
        _FREED_MEMORY_KEPT = _set_malloc_thresholds()
    return _FREED_MEMORY_KEPT


def _set_malloc_thresholds() -> bool:
    if os.environ.get("BERTKIT_KEEP_FREED_MEMORY", "1") == "0":
        return False
    chosen = [name for name in _MALLOC_ENV if name in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        logger.info("malloc left as set by %s", ", ".join(chosen))
        return False
    kept = set_malloc_thresholds(KEEP_FREED_BYTES, KEEP_FREED_BYTES)
    if kept:
        logger.debug("glibc malloc keeps freed blocks up to %d MiB for reuse", KEEP_FREED_BYTES >> 20)
    return kept


def set_malloc_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (mallopt), now; False where the C library is not glibc
    or refuses a value. keep_freed_memory uses it; bench/bench_encode.py also sets glibc's defaults with it."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(option, value) == 1
               for option, value in ((_M_MMAP_THRESHOLD, mmap_bytes), (_M_TRIM_THRESHOLD, trim_bytes)))  # fmt: skip


def compile_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile (inductor, weights frozen) for eval-only use; returns the compiled module.

    On CPU this fuses the GELU and the residual adds into the matmuls and removes the Python overhead: about
    2x faster at batch 1 (bench/bench_infer.py). The first call of each new shape family compiles (tens of
    seconds), and inductor needs a C++ compiler on the machine. Freezing is a global inductor setting, which
    is why it lives here.
    """
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    model.eval()
    return torch.compile(model, dynamic=True)


def compile_encoder(model: torch.nn.Module, warm_up: bool = True) -> torch.nn.Module:
    """compile_for_inference for a BertModel, then (warm_up) one call per shape family so that no caller pays
    the compile time later: batch 1 and batch 2 (dynamic shapes specialise size 1), each unpadded and padded.

    Build inputs under torch.inference_mode, as the warm-up does; inputs made outside it compile once more.
    A head model (BertFor*) keeps its head eager and gets its `bert` encoder compiled in place; the same
    module is returned. Needs a C++ compiler on the machine (inductor) and takes tens of seconds.
    """
    encoder = getattr(model, "bert", model)
    compiled = compile_for_inference(encoder)
    if warm_up:
        device = next(encoder.parameters()).device
        # dynamo also guards on how inputs were made: every bertkit caller (FeatureExtractor, Predictor, the
        # server's Embedder) builds them under inference_mode, so the warm-up does too
        with torch.inference_mode():
            ids = torch.arange(1, 17, device=device).remainder(encoder.config.vocab_size).view(2, 8)
            types = torch.zeros_like(ids)
            full = torch.ones_like(ids)
            padded = full.clone()
            padded[0, 6:] = 0
            padded[1, 5:] = 0
            for rows in (1, 2):
                for mask in (full, padded):
                    compiled(ids[:rows], types[:rows], mask[:rows])
    if encoder is model:
        return compiled
    model.bert = compiled
    return model


def native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX-512-BF16 or AMX), so bf16 weights beat fp32 ones."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
