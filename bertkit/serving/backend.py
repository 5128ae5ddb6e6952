"""The model side of the server: one small class per engine behind one interface (TEI's backend trait).

`Backend(config)` opens the folder with the engine config.backend names (BACKENDS: torch, onnx). Every backend
offers the same methods: health(), embed() and predict() run in the worker thread; tokenize(), predict_inputs()
and prepare() are cheap and run on the event loop; labels, can_encode, can_predict, dimensions, max_length,
pooling, normalize and task_name describe it. A subclass only loads its model: load() -> Loaded. The routes never
branch on the engine.
A plain encoder serves /encode and /tokenize; a task folder (bertkit.json) also /predict, through the engine's
task code (bertkit.engine). Shapes: B batch, T length, H hidden.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bertkit import folder as folder_format
from bertkit import prepare, runtime
from bertkit.data.collate import encoder_inputs
from bertkit.engine import Engine, load_task
from bertkit.model.bert import BertModel
from bertkit.serving.config import ServeConfig
from bertkit.serving.embed import Embedder
from bertkit.tasks.base import Feature
from bertkit.tokenization import Tokenizer
from bertkit.tokenization.encoding import Encoding
from bertkit.weights.hf import find_weights
from bertkit.weights.load import model_folder, resolve_model_path

logger = logging.getLogger(__name__)

# /predict's `texts` / `text_pairs` become these input fields, per task family.
TEXT_FIELDS: dict[str, tuple[str, str]] = {"qa": ("question", "context")}
DEFAULT_TEXT_FIELDS = ("text", "text_pair")


# The CPU batch-budget probe (Backend._default_batch_tokens): budgets tried in order, rows of PROBE_WIDTH tokens,
# how much slower than the fastest a larger budget may be and still be kept, the warm-up time after which no
# larger budget is tried, and the timed rounds (each runs every budget once, alternating).
PROBE_BUDGETS = (512, 1024, 2048)
PROBE_WIDTH = 32
PROBE_MARGIN = 0.03
PROBE_SECONDS = 3.0
PROBE_ROUNDS = 3
_PROBED: dict[tuple, int] = {}  # one probe per model and settings in a process


def _timed(run: Callable[[Any], Any], arg: Any) -> float:
    started = time.perf_counter()
    run(arg)
    return time.perf_counter() - started


class TooLong(ValueError):
    """A text exceeds a limit the client asked to enforce (the route answers 413)."""


@dataclass(frozen=True)
class PredictItem:
    """One task input, featurized on the event loop: its example and its windows."""

    example: Any
    features: list[Feature]

    @property
    def tokens(self) -> int:
        return sum(len(f["input_ids"]) for f in self.features)


@dataclass
class Loaded:
    """What a backend's load() gives: the task engine (task folders), the encoder for /encode, the model config."""

    engine: Engine | None
    encoder: Callable | None  # (input_ids, token_type_ids, attention_mask) -> EncoderOutput
    model_config: Any
    last_layer_only: bool = False  # the encoder returns only the last layer (no output_hidden_states)
    first_token_only: bool = False  # the encoder takes first_token_only (an eager BertModel: not compiled)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext  # around forwards


class Backend:
    """Everything the routes need from the model. Backend(config) returns the class BACKENDS[config.backend]."""

    kind: ClassVar[str] = ""

    def __new__(cls, config: ServeConfig) -> Backend:  # noqa: PYI034 - returns a subclass
        if cls is Backend:
            if config.backend not in BACKENDS:
                raise ValueError(f"unknown backend {config.backend!r}; backends: {', '.join(BACKENDS)}")
            cls = BACKENDS[config.backend]
        return super().__new__(cls)

    def __init__(self, config: ServeConfig):
        runtime.set_threads(config.threads)
        self.config = config
        self.name = config.model
        self.folder = model_folder(resolve_model_path(config.model))
        self.device = self.pick_device()
        self.tokenizer = Tokenizer.from_pretrained(self.folder)
        loaded = self.load()
        self.engine = loaded.engine
        self.task_name: str | None = self.engine.task.name if self.engine is not None else None
        self.embedder: Embedder | None = None
        if loaded.encoder is not None:
            self.embedder = Embedder(
                loaded.encoder,
                loaded.model_config,
                self.folder,
                pooling=config.pooling,
                normalize=config.normalize,
                last_layer_only=loaded.last_layer_only,
                first_token_only=loaded.first_token_only,
                pad_token_id=self.tokenizer.pad_token_id,
                device=self.device,
                autocast=loaded.autocast,
            )
        self.max_length = self._max_length(loaded.model_config)
        if self.engine is not None:
            self.engine.max_seq_length = self.max_length
            task = self.engine.task
            if config.long_inputs == "windows" and getattr(task, "window_stride", 0) is None:
                # a classifier saved without windows would cut a long text silently; read it in windows instead
                task.window_stride = max(1, (self.max_length - 2) // 4)
        self.max_batch_tokens = config.max_batch_tokens or self._default_batch_tokens()
        logger.info(
            "serving %s (%s backend on %s, task %s, pooling %s, max_length %d)",
            self.folder,
            config.backend,
            self.device,
            self.task_name or "none",
            self.pooling,
            self.max_length,
        )

    # ---- what a backend supplies ------------------------------------------------------------------
    def pick_device(self) -> torch.device:
        return torch.device("cpu")

    def load(self) -> Loaded:
        raise NotImplementedError

    @property
    def padded_batches(self) -> bool:
        """True when a batch costs its padded shape (texts x longest text): the batcher's budget counts it
        so. False when the model runs the real tokens only, so a batch of mixed lengths costs its tokens."""
        return True

    # ---- shared ----------------------------------------------------------------------------------------
    def _max_length(self, model_config: Any) -> int:
        if self.config.max_length:
            return self.config.max_length
        if self.engine is not None:
            return self.engine.max_seq_length
        if self.embedder is not None and self.embedder.max_length:
            return int(self.embedder.max_length)
        limit = getattr(model_config, "max_position_embeddings", 512) if model_config is not None else 512
        return int(min(limit, self.tokenizer.model_max_length or 512, 512))

    def _default_batch_tokens(self) -> int:
        """GPUs want large batches (16384 tokens). On a CPU the best budget depends on the CPU: its GEMMs
        slowed down past ~512 rows on an AMD EPYC (110 -> 45 GFLOPS), while a Xeon with AMX served 10 % more
        texts/s at 2048. So a short probe at start-up times the model at each of PROBE_BUDGETS, in alternating
        rounds, and keeps the largest budget within PROBE_MARGIN of the fastest: the probe times the forward
        only, and outside it every batch costs the server the same (the batcher, the hand-offs between the event
        loop and the model thread), so where the forward runs as fast, fewer and larger batches serve more
        (measured on the Xeon, three alternating rounds: 188 against 165 texts/s, median). Its figures go to
        the log."""
        if self.device.type != "cpu":
            return 16384
        key = (str(self.folder), self.kind, self.config.precision, self.config.quantize, self.config.compile,
               torch.get_num_threads())  # fmt: skip
        if key not in _PROBED:
            _PROBED[key] = self._probe_batch_tokens()
        return _PROBED[key]

    def _probe_batch_tokens(self) -> int:
        if self.embedder is not None:
            run: Callable[[list[Encoding]], Any] = self.embed
        elif self.engine is not None and self.task_name in ("classification", "tagging"):
            run = self.head_outputs
        else:
            return PROBE_BUDGETS[0]
        width = min(PROBE_WIDTH, self.max_length)
        text = " ".join(["probe"] * (2 * width))
        batches: dict[int, list[Encoding]] = {}
        spent = time.perf_counter()
        for budget in PROBE_BUDGETS:
            batches[budget] = self.tokenizer.encode_batch([text] * (budget // width), None, width)
            run(batches[budget])  # warm-up: first-call allocations and weight packing
            if time.perf_counter() - spent > PROBE_SECONDS:  # a large model: no larger budget
                break
        # the budgets alternate round by round (the order reversed each round), so a moment when the machine
        # is slow hits every budget alike; each keeps its fastest run
        times: dict[int, list[float]] = {budget: [] for budget in batches}
        for round_ in range(PROBE_ROUNDS):
            for budget in list(batches) if round_ % 2 == 0 else list(batches)[::-1]:
                times[budget].append(_timed(run, batches[budget]))
        rates = {budget: budget // width * width / min(t) for budget, t in times.items()}
        fastest = max(rates.values())
        chosen = max(budget for budget, rate in rates.items() if rate * (1 + PROBE_MARGIN) >= fastest)
        logger.info(
            "max_batch_tokens %d from a start-up probe (%s tokens/s; pass --max-batch-tokens to set it)",
            chosen,
            ", ".join(f"{b}: {r:.0f}" for b, r in rates.items()),
        )
        return chosen

    # ---- what the server offers -------------------------------------------------------------------
    @property
    def labels(self) -> list[str] | None:
        labels = self.engine.task.labels if self.engine is not None else None
        return list(labels) if labels else None

    @property
    def can_encode(self) -> bool:
        return self.embedder is not None

    @property
    def pooling(self) -> str:
        return self.embedder.pooling.value if self.embedder is not None else "none"

    @property
    def normalize(self) -> bool:
        return bool(self.embedder and self.embedder.normalize)

    @property
    def dimensions(self) -> int:
        return self.embedder.dim if self.embedder is not None else 0

    @property
    def can_predict(self) -> bool:
        return self.engine is not None

    @property
    def problem_type(self) -> str | None:
        """A classifier's HF problem_type (single_label_classification, multi_label_classification,
        regression); None for other tasks."""
        task = self.engine.task if self.engine is not None else None
        if task is None or self.task_name != "classification":
            return None
        if getattr(task, "regression", False):
            return "regression"
        return (
            "multi_label_classification"
            if getattr(task, "multi_label", False)
            else "single_label_classification"
        )

    @property
    def window_pooling(self) -> str:
        """How a classifier merges the logits of a long text's windows: mean or max."""
        task = self.engine.task if self.engine is not None else None
        return getattr(task, "pooling", "mean") or "mean"

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    # ---- event loop side: cheap, per request ------------------------------------------------------
    def tokenize(
        self, texts: Sequence[str], pairs: Sequence[str] | None, truncate: bool = True
    ) -> list[Encoding]:
        """Encodings cut to max_length; with truncate=False a longer text raises TooLong."""
        if not truncate:
            full = self.tokenizer.encode_batch(list(texts), None if pairs is None else list(pairs))
            for i, enc in enumerate(full):
                if len(enc.ids) > self.max_length:
                    raise TooLong(
                        f"texts[{i}] has {len(enc.ids)} tokens; this model reads at most {self.max_length}. "
                        "Shorten it, or send truncate=true to cut it"
                    )
            return full
        return self.tokenizer.encode_batch(
            list(texts), None if pairs is None else list(pairs), self.max_length
        )

    def predict_inputs(self, texts: Sequence[str], pairs: Sequence[str] | None) -> list[dict[str, Any]]:
        """/predict's texts and text_pairs as the task's input dicts."""
        first, second = TEXT_FIELDS.get(self.task_name or "", DEFAULT_TEXT_FIELDS)
        if pairs is None:
            return [{first: t} for t in texts]
        return [{first: t, second: p} for t, p in zip(texts, pairs, strict=True)]

    def prepare(self, inputs: Sequence[Mapping[str, Any]]) -> list[PredictItem]:
        """Task inputs -> examples and their windows; a bad input raises ValueError naming inputs[i]."""
        assert self.engine is not None
        examples = self.engine.examples(inputs, source="inputs")
        grouped: list[list[Feature]] = [[] for _ in examples]
        for f in self.engine.featurize(examples):
            grouped[f["example_index"]].append(f)
        return [PredictItem(e, fs) for e, fs in zip(examples, grouped, strict=True)]

    # ---- worker thread side: one call per model batch ---------------------------------------------
    def health(self) -> None:
        """Run the encoder on one short input; raises if the model cannot answer (a graph without an encoder
        output has nothing cheap to run and passes)."""
        if self.embedder is not None:
            self.embed(self.tokenize(["health"], None))

    def embed(self, encodings: list[Encoding]) -> list[np.ndarray]:
        """Sentence vectors (D,) for a batch of encodings, before per-request normalisation."""
        assert self.embedder is not None
        return self.embedder.embed(encodings)

    def embed_tokens(self, encodings: list[Encoding]) -> list[np.ndarray]:
        """The last layer's vector of every token, (T, H) per encoding (TEI's /embed_all)."""
        assert self.embedder is not None
        return self.embedder.embed_tokens(encodings)

    def head_outputs(self, encodings: list[Encoding]) -> list[np.ndarray]:
        """The head's raw scores per window: (L,) logits for a classifier, (T, L) tag scores for a tagger."""
        assert self.engine is not None
        rows = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encodings]
        with torch.inference_mode():
            batch = {
                k: v.to(self.device) for k, v in encoder_inputs(rows, self.tokenizer.pad_token_id).items()
            }
            out = self.engine.model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
            scores = out.float().cpu().numpy()
        if scores.ndim == 3:
            return [scores[i, : len(e.ids)] for i, e in enumerate(encodings)]
        return list(scores)

    def predict(self, items: list[PredictItem]) -> list[dict]:
        """Task predictions for a batch of prepared inputs, in order."""
        assert self.engine is not None
        features = [{**f, "example_index": i} for i, item in enumerate(items) for f in item.features]
        examples = [item.example for item in items]
        return self.engine.predict_features(examples, features, self.config.max_batch_size)


class TorchBackend(Backend):
    """PyTorch on CPU or GPU; optionally dynamic int8 (CPU) or a compiled encoder."""

    kind = "torch"

    @property
    def padded_batches(self) -> bool:
        # bertkit's encoder drops the padding before its first layer (bertkit.model.padding); compiled, it
        # keeps the (B, T) layout so that the graph has no data-dependent shapes
        return bool(self.config.compile)

    def pick_device(self) -> torch.device:
        device = runtime.pick_device(self.config.device)
        if self.config.quantize and device.type != "cpu":
            raise ValueError("--quantize int8 runs on the CPU; drop it to serve on the GPU")
        return device

    def load(self) -> Loaded:
        config = self.config
        if find_weights(self.folder) is None and (self.folder / config.onnx_file).is_file():
            raise FileNotFoundError(
                f"{self.folder} holds an ONNX export ({config.onnx_file}) and no PyTorch weights; "
                "serve it with --backend onnx"
            )
        engine = None
        if folder_format.has_info(self.folder):
            engine = Engine.from_folder(self.folder, device=self.device)
            model: nn.Module = engine.model
        else:
            model = BertModel.from_pretrained(self.folder).to(self.device).eval()
        if not (config.quantize or config.compile):  # those two rewrite the plain model below
            prepare.prepare_for_inference(model, config.precision)
        autocast = contextlib.nullcontext
        if config.precision != "fp32" and not prepare.bf16_weights_prepared(model):
            autocast = runtime.Runtime(self.device, config.precision).autocast
        if config.quantize == "int8":
            from bertkit.export.quantize import quantize_torch

            model = quantize_torch(model)
        if config.compile:
            started = time.perf_counter()
            if isinstance(model, BertModel):
                model = runtime.compile_encoder(model)
            else:  # a head model: its encoder is compiled in place, the Embedder shares it
                runtime.compile_encoder(model)
            logger.info("compiled the encoder in %.0f s", time.perf_counter() - started)
        if engine is not None:
            engine.model = model
            engine.autocast = autocast
        encoder = model if engine is None else getattr(model, "bert", None)
        first_token_only = not config.compile  # a compiled graph is traced without it
        return Loaded(engine, encoder, model.config, first_token_only=first_token_only, autocast=autocast)


class OnnxBackend(Backend):
    """onnxruntime on the CPU, on a graph from `bertkit export` (export.runtime.OnnxModel carries the head)."""

    kind = "onnx"

    def load(self) -> Loaded:
        from bertkit.export.runtime import OnnxModel

        model = OnnxModel(self.folder / self.config.onnx_file, threads=self.config.threads)
        engine = None
        if folder_format.has_info(self.folder):
            task, info = load_task(self.folder)
            engine = Engine(task, model, self.tokenizer, info.max_seq_length, device=self.device)
        encoder = model.encode if model.has_hidden_state else None
        return Loaded(engine, encoder, model.config, last_layer_only=True)


BACKENDS: dict[str, type[Backend]] = {"torch": TorchBackend, "onnx": OnnxBackend}
