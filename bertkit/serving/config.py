"""ServeConfig: every server option, each with one doc line and an environment-variable twin (BERTKIT_<NAME>).

The CLI builds its flags from these fields, so a flag, its help text and its env var never drift apart.
Precedence: command-line flag > environment variable > default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "BERTKIT_"


def _opt(default: Any, doc: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "choices": choices})


@dataclass(frozen=True)
class ServeConfig:
    model: str = _opt("minilm", "model folder (fine-tuned or plain encoder), exported ONNX folder, or alias")
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
    port: int = _opt(8080, "TCP port to listen on")
    api_key: str | None = _opt(
        None, "if set, every route but /health needs 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
    )
    backend: str = _opt(
        "torch", "inference engine: torch, or onnx (onnxruntime on the folder's ONNX file)", ("torch", "onnx")
    )
    onnx_file: str = _opt(
        "model.onnx", "ONNX graph inside the model folder for --backend onnx (e.g. model.int8.onnx)"
    )
    device: str | None = _opt(
        None, "torch backend: cpu, cuda or cuda:N (default: cuda when available, else cpu)"
    )
    quantize: str | None = _opt(
        None, "torch backend only: int8 runs the linear layers with dynamic int8 quantization", ("int8",)
    )
    precision: str = _opt(
        "fp32",
        "torch backend: fp32, or bf16 (bf16 weights where the CPU has native bf16, else autocast), or fp16 (CUDA)",
        ("fp32", "bf16", "fp16"),
    )
    compile: bool = _opt(
        False,
        "torch backend on CPU or GPU: torch.compile the encoder at start-up (tens of seconds; needs a C++ compiler); "
        "about 2x faster per batch on CPU",
    )
    pooling: str | None = _opt(
        None,
        "/encode pooling as in `bertkit encode` (cls, mean, max, ...); default: the folder's saved choice, else mean",
    )
    normalize: bool | None = _opt(
        None,
        "L2-normalise /encode vectors unless a request says otherwise; default: the folder's saved choice, else no",
    )
    max_length: int | None = _opt(
        None, "tokens per text the model reads (default: the folder's max_seq_length, else 512)"
    )
    max_batch_tokens: int | None = _opt(
        None,
        "token budget of one model batch: its real tokens (texts x longest text for --backend onnx or "
        "--compile, which run the padding); default: 16384 on GPU, on CPU 512, 1024 or 2048 from a start-up "
        "probe",
    )
    max_batch_size: int = _opt(256, "most texts in one model batch")
    max_wait_ms: float = _opt(1.0, "how long the oldest queued text waits for more to fill a batch (ms)")
    inline_max_tokens: int = _opt(
        128,
        "a lone request of at most this many tokens runs on the event loop thread while the model is idle "
        "and no other request is in flight (no hop to the model thread and back); 0: never",
    )
    max_queue: int = _opt(
        2048, "most texts waiting for the model; beyond it requests get 503 with Retry-After"
    )
    max_texts: int = _opt(256, "most texts in one request (more is a 413)")
    max_text_chars: int = _opt(50000, "longest text accepted, in characters (longer is a 413)")
    max_client_batch_size: int = _opt(
        2048,
        "most inputs in one OpenAI or TEI request (/v1/embeddings, /embed, ...); the server splits them into "
        "batches itself (more is a 413)",
    )
    served_model_name: str | None = _opt(
        None, "model name in /v1/models, /info and OpenAI responses (default: the --model value)"
    )
    accept_token_ids: bool = _opt(
        False,
        "/v1/embeddings: read token-id arrays as ids of this model's own vocabulary (range-checked); by default "
        "they are refused with a 422, since clients such as LangChain send another tokenizer's (tiktoken) ids",
    )
    long_inputs: str = _opt(
        "windows",
        "/predict for a classifier saved without windows: windows reads a long text in overlapping windows "
        "(logits pooled), truncate cuts it at --max-length",
        ("windows", "truncate"),
    )
    playground: bool = _opt(True, "serve the playground page at / (--no-playground: GET / is a health check)")
    threads: int | None = _opt(None, "CPU threads for the model (default: PyTorch / onnxruntime default)")
    graceful_timeout: float = _opt(
        30.0, "on SIGTERM, seconds to let in-flight requests finish before exiting"
    )
    log_level: str = _opt("info", "server log level", ("debug", "info", "warning", "error"))
    access_log: bool = _opt(False, "log one line per request")

    def __post_init__(self) -> None:
        positive = (
            "port",
            "max_batch_tokens",
            "max_batch_size",
            "max_queue",
            "max_texts",
            "max_text_chars",
            "max_client_batch_size",
        )
        for name in positive:
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.inline_max_tokens < 0:
            raise ValueError(f"inline_max_tokens must be >= 0 (0 turns it off), got {self.inline_max_tokens}")
        if self.max_texts > self.max_queue:
            raise ValueError(
                f"max_texts ({self.max_texts}) exceeds max_queue ({self.max_queue}): a full-size request could "
                "never be queued; raise max_queue or lower max_texts"
            )
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}, not {value!r}")
        if self.compile and (self.backend != "torch" or self.quantize):
            raise ValueError(
                "compile applies to the torch backend in full precision: drop --quantize int8 or --compile"
            )
        if self.precision != "fp32" and (self.backend != "torch" or self.quantize or self.compile):
            raise ValueError(
                f"precision {self.precision} applies to the eager torch backend: drop --quantize / --compile, "
                "or serve fp32"
            )
        if self.quantize and self.backend != "torch":
            raise ValueError(
                "quantize applies to the torch backend; for onnx export with --quantize int8 and "
                "serve with --onnx-file model.int8.onnx"
            )

    @staticmethod
    def env_name(name: str) -> str:
        return ENV_PREFIX + name.upper()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServeConfig:
        """Defaults, replaced by BERTKIT_* variables, replaced by explicit (non-None) overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(cls.env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = parse_value(f, raw, cls.env_name(f.name))
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown server options: {', '.join(sorted(unknown))}")
        return cls(**values)


def field_type(f: dataclasses.Field) -> type:
    """int, float, bool or str for a ServeConfig field (Optional unwrapped)."""
    text = str(f.type)
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if text.startswith(name):
            return kind
    return str


def parse_value(f: dataclasses.Field, raw: str, source: str) -> Any:
    kind = field_type(f)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{source}={raw!r}: expected true/false (1/0, yes/no, on/off)")
    try:
        return kind(raw)
    except ValueError as err:
        raise ValueError(f"{source}={raw!r}: expected {kind.__name__}") from err
