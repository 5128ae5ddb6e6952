"""The model side of the server: load a folder once; tokenize on the event loop; run batches in the worker.

A plain encoder serves /encode and /tokenize; a fine-tuned folder (bertkit.json) also /predict, through the
Predictor's task code. The engine is PyTorch (optionally dynamic int8) or onnxruntime on an exported graph
(bertkit.export.runtime.OnnxModel returns the PyTorch model's types, so the task code runs unchanged).
Shapes: B batch, T length, H hidden.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit import runtime
from bertkit.inference.predictor import MODEL_INFO, Predictor, featurize, run_model
from bertkit.model.bert import BertModel
from bertkit.serving.config import ServeConfig
from bertkit.serving.embed import Embedder
from bertkit.tasks import build_task
from bertkit.tasks.base import Feature
from bertkit.tokenization import Tokenizer
from bertkit.tokenization.encoding import Encoding
from bertkit.weights.hf import find_weights
from bertkit.weights.load import model_folder, resolve_model_path

logger = logging.getLogger(__name__)

# /predict's `texts` / `text_pairs` become these input fields, per task family.
TEXT_FIELDS: dict[str, tuple[str, str]] = {"qa": ("question", "context")}
DEFAULT_TEXT_FIELDS = ("text", "text_pair")


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


class Backend:
    """Everything the routes need from the model: names, tokenizer, and the two batch functions."""

    def __init__(self, config: ServeConfig):
        runtime.set_threads(config.threads)
        self.config = config
        self.device = runtime.pick_device(config.device) if config.backend == "torch" else torch.device("cpu")
        if config.quantize and self.device.type != "cpu":
            raise ValueError("--quantize int8 runs on the CPU; drop it to serve on the GPU")
        self.folder = model_folder(resolve_model_path(config.model))
        self.name = config.model
        if (
            config.backend == "torch"
            and find_weights(self.folder) is None
            and (self.folder / config.onnx_file).is_file()
        ):
            raise FileNotFoundError(
                f"{self.folder} holds an ONNX export ({config.onnx_file}) and no PyTorch weights; "
                "serve it with --backend onnx"
            )
        self.tokenizer = Tokenizer.from_pretrained(self.folder)
        self.predictor: Predictor | None = None
        self.task_name: str | None = None
        info = self.folder / MODEL_INFO
        encoder = None
        if config.backend == "onnx":
            from bertkit.export.runtime import OnnxModel

            model: nn.Module = OnnxModel(self.folder / config.onnx_file, threads=config.threads)
            encoder = model.encode if model.has_hidden_state else None
            if info.is_file():
                self.predictor = self._onnx_predictor(info, model)
        elif info.is_file():
            self.predictor = Predictor.from_pretrained(self.folder, device=str(self.device))
            model = self.predictor.model
            encoder = getattr(model, "bert", None)
        else:
            model = BertModel.from_pretrained(self.folder).to(self.device).eval()
            encoder = model
        if config.quantize == "int8":
            from bertkit.export.quantize import quantize_torch

            model = quantize_torch(model)
            encoder = model if isinstance(model, BertModel) else getattr(model, "bert", None)
            if self.predictor is not None:
                self.predictor.model = model
        if config.compile:
            started = time.perf_counter()
            if isinstance(model, BertModel):
                model = encoder = runtime.compile_encoder(model)
            else:  # a head model: its encoder is compiled in place, the Embedder shares it
                runtime.compile_encoder(model)
                encoder = getattr(model, "bert", None)
            logger.info("compiled the encoder in %.0f s", time.perf_counter() - started)
        if self.predictor is not None:
            self.task_name = self.predictor.task.name
        model_config = model.config
        self.embedder: Embedder | None = None
        if encoder is not None:
            self.embedder = Embedder(
                encoder,
                model_config,
                self.folder,
                pooling=config.pooling,
                normalize=config.normalize,
                last_layer_only=config.backend == "onnx",
                pad_token_id=self.tokenizer.pad_token_id,
                device=self.device,
            )
        self.max_length = self._max_length(model_config)
        if self.predictor is not None:
            self.predictor.max_seq_length = self.max_length
        # MKL's CPU GEMMs slow down past ~512 rows (tokens) on some CPUs (measured: 110 -> 45 GFLOPS on this
        # AMD EPYC), so CPU batches stay small; GPUs want large ones.
        self.max_batch_tokens = config.max_batch_tokens or (512 if self.device.type == "cpu" else 16384)
        logger.info(
            "serving %s (%s backend on %s, task %s, pooling %s, max_length %d)",
            self.folder,
            config.backend,
            self.device,
            self.task_name or "none",
            self.pooling,
            self.max_length,
        )

    def _onnx_predictor(self, info: Path, model: nn.Module) -> Predictor:
        data = json.loads(info.read_text(encoding="utf-8"))
        task = build_task(data["task"], data.get("options") or {})
        return Predictor(task, model, self.tokenizer, int(data.get("max_seq_length", 128)), device="cpu")

    def _max_length(self, model_config: Any) -> int:
        if self.config.max_length:
            return self.config.max_length
        if self.predictor is not None:
            return self.predictor.max_seq_length
        if self.embedder is not None and self.embedder.max_length:
            return int(self.embedder.max_length)
        limit = getattr(model_config, "max_position_embeddings", 512) if model_config is not None else 512
        return int(min(limit, self.tokenizer.model_max_length or 512, 512))

    # ---- what the server offers -------------------------------------------------------------------
    @property
    def labels(self) -> list[str] | None:
        labels = getattr(self.predictor.task, "labels", None) if self.predictor is not None else None
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
        return self.predictor is not None

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
        assert self.predictor is not None
        examples = self.predictor.examples(inputs, source="inputs")
        features = featurize(self.predictor.task, examples, self.tokenizer, self.max_length)
        grouped: list[list[Feature]] = [[] for _ in examples]
        for f in features:
            grouped[f["example_index"]].append(f)
        return [PredictItem(e, fs) for e, fs in zip(examples, grouped, strict=True)]

    # ---- worker thread side: one call per model batch ---------------------------------------------
    def embed(self, encodings: list[Encoding]) -> list[np.ndarray]:
        """Sentence vectors (D,) for a batch of encodings, before per-request normalisation."""
        assert self.embedder is not None
        return self.embedder.embed(encodings)

    def predict(self, items: list[PredictItem]) -> list[dict]:
        """Task predictions for a batch of prepared inputs, in order."""
        assert self.predictor is not None
        features = [{**f, "example_index": i} for i, item in enumerate(items) for f in item.features]
        task = self.predictor.task
        outputs, order = run_model(
            task, self.predictor.model, features, self.config.max_batch_size, self.device
        )
        return task.decode(outputs, order, [item.example for item in items])
