"""Feature extraction: texts (or pairs) -> sentence vectors, or per-token vectors of chosen layers.

Shapes: N texts, B batch, T padded length, H hidden, K chosen layers, D sentence-vector length.
Texts are tokenized a chunk at a time, sorted by token length (longest first) so that each batch holds
texts of nearly equal length, run under inference_mode, and written back in input order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from bertkit.inference.batching import check_texts, plan_batches, text_chunks
from bertkit.inference.pooling import (
    FeatureSettings,
    Pooling,
    pool,
    pooled_dim,
    read_feature_settings,
    reads_first_token_only,
    resolve_layers,
    write_feature_settings,
)
from bertkit.inference.whitening import Whitening, fit_whitening, fit_whitening_chunks
from bertkit.model.bert import BertModel
from bertkit.prepare import bf16_weights_prepared, prepare_for_inference
from bertkit.runtime import Runtime, compile_encoder, pick_device
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_pretrained, model_folder, resolve_model_path

logger = logging.getLogger(__name__)

WHITENING_FILE = "whitening.npz"
# Padded tokens per batch. Short texts then go in large batches: on CPU this halves the time per text
# compared with 32-text batches (bench/bench_encode.py). A batch_size argument caps the rows as well.
DEFAULT_MAX_BATCH_TOKENS = 8192


@dataclass(frozen=True)
class TokenFeatures:
    """Per-token vectors of one text (Google's extract_features.py output for one line)."""

    tokens: list[str]
    offsets: list[tuple[int, int]]  # character offsets into the text (or its pair, see sequence_ids)
    sequence_ids: list[int | None]  # 0 text, 1 text_pair, None special tokens
    layers: tuple[int, ...]
    values: np.ndarray  # (T, K, H) float32


def _pad(rows: list[list[int]], value: int) -> Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


class FeatureExtractor:
    """A loaded encoder plus a pooling choice: `encode(texts) -> (N, D)` float32 vectors in input order."""

    def __init__(
        self,
        model: BertModel,
        tokenizer: Tokenizer,
        pooling: Pooling | str = Pooling.MEAN,
        *,
        layers: Sequence[int] | None = None,
        normalize: bool = False,
        whitening: Whitening | None = None,
        max_length: int = 512,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        compile: bool = False,  # noqa: A002 - torch.compile's own name
    ):
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {model.config.vocab_size}; "
                "resize the model's embeddings (bertkit vocab extend) or use the model's own vocab.txt"
            )
        self.pooling = Pooling.parse(pooling)
        self.layers = resolve_layers(self.pooling, layers, model.config.num_hidden_layers)
        self.normalize = normalize
        self.max_length = min(max_length, model.config.max_position_embeddings)
        self.device = pick_device(None if device is None else str(device))
        self.model = model.to(self.device, dtype=dtype).eval()
        # compile=True: torch.compile (runtime.compile_encoder) now, with its warm-up, so encode() never waits
        self._net = compile_encoder(self.model) if compile else self.model
        self._eager = not compile  # a compiled graph is traced without first_token_only: never passed to it
        self.autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        self.tokenizer = tokenizer
        self.max_batch_tokens = max_batch_tokens
        self.whitening: Whitening | None = None
        if whitening is not None:
            self.set_whitening(whitening)

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path = "minilm",
        *,
        pooling: Pooling | str | None = None,
        layers: Sequence[int] | None = None,
        normalize: bool | None = None,
        whitening: Whitening | str | Path | None = None,
        max_length: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        compile: bool = False,  # noqa: A002 - torch.compile's own name
        precision: str = "fp32",
    ) -> FeatureExtractor:
        """Load a model folder (or alias). Unset options come from the folder's saved choice.

        The saved choice is bertkit's features.json, else sentence-transformers' modules.json and
        1_Pooling/config.json (pooling, Normalize) and sentence_bert_config.json (max_seq_length);
        without either: mean pooling, no normalisation, 512 tokens. The model is prepared for inference
        once (prepare.prepare_for_inference; precision bf16: bf16 weights where the CPU is native bf16, else
        autocast) unless compile=True, which compiles it instead.
        """
        folder = model_folder(resolve_model_path(model))
        saved = read_feature_settings(folder) if folder.is_dir() else FeatureSettings()
        if saved.sources:
            logger.info("feature settings from %s", ", ".join(saved.sources))
        net, _ = load_pretrained(folder, BertModel)
        tokenizer = Tokenizer.from_pretrained(folder if folder.is_dir() else folder.parent)
        chosen = Pooling.parse(pooling) if pooling is not None else (saved.pooling or Pooling.MEAN)
        chosen_layers = tuple(layers) if layers else saved.layers
        if whitening is None and saved.whitening:
            if chosen == saved.pooling and chosen_layers == saved.layers:
                whitening = folder / saved.whitening
            else:
                logger.warning(
                    "%s was fitted for pooling %s: not applied to %s", saved.whitening, saved.pooling, chosen
                )
        extractor = cls(
            net,  # type: ignore[arg-type]
            tokenizer,
            chosen,
            layers=chosen_layers,
            normalize=bool(saved.normalize) if normalize is None else normalize,
            whitening=None if whitening is None else whitening,  # type: ignore[arg-type]
            max_length=max_length or saved.max_length or tokenizer.model_max_length,
            device=device,
            dtype=dtype,
            max_batch_tokens=max_batch_tokens,
            compile=compile,
        )
        if not compile:
            prepare_for_inference(extractor.model, precision)
        if precision != "fp32" and not bf16_weights_prepared(extractor.model):
            extractor.autocast = Runtime(extractor.device, precision).autocast
        return extractor

    # --- properties and settings -----------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Length of the vectors encode() returns."""
        if self.whitening is not None:
            return self.whitening.dim
        return pooled_dim(self.pooling, self.layers, self.model.config.hidden_size)

    def set_whitening(self, whitening: Whitening | str | Path | None) -> None:
        """Apply a fitted whitening (object or saved file) to every later encode(); None removes it."""
        if whitening is not None and not isinstance(whitening, Whitening):
            whitening = Whitening.load(whitening)
        raw_dim = pooled_dim(self.pooling, self.layers, self.model.config.hidden_size)
        if whitening is not None and whitening.input_dim != raw_dim:
            raise ValueError(
                f"the whitening expects {whitening.input_dim}-dimensional vectors but pooling {self.pooling.value} "
                f"with layers {list(self.layers)} gives {raw_dim}; fit it with the same model and pooling"
            )
        self.whitening = whitening

    def fit_whitening(
        self,
        texts: Iterable[str],
        dim: int | None = None,
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        total: int | None = None,
    ) -> Whitening:
        """Fit whitening on the raw pooled vectors of a corpus, apply it from now on, and return it."""
        raw = self._iter(texts, None, batch_size, 10_000, show_progress, False, total)  # one chunk at a time
        whitening = fit_whitening_chunks(raw, dim)
        self.whitening = whitening
        return whitening

    def settings(self) -> FeatureSettings:
        return FeatureSettings(
            self.pooling,
            self.layers,
            self.normalize,
            self.max_length,
            WHITENING_FILE if self.whitening is not None else None,
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Model, tokenizer, pooling choice (features.json, plus sentence-transformers files) and whitening."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        if self.whitening is not None:
            self.whitening.save(directory / WHITENING_FILE)
        write_feature_settings(directory, self.settings(), self.model.config.hidden_size)

    # --- encoding --------------------------------------------------------------------------------

    def encode(
        self,
        texts: Iterable[str],
        text_pairs: Iterable[str] | None = None,
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """(N, D) float32 sentence vectors, row i for texts[i]. A single string gives (1, D)."""
        if isinstance(texts, str):
            texts = [texts]
            text_pairs = None if text_pairs is None else [text_pairs]  # type: ignore[list-item]
        parts = list(self.encode_iter(texts, text_pairs, batch_size=batch_size, show_progress=show_progress))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def encode_iter(
        self,
        texts: Iterable[str],
        text_pairs: Iterable[str] | None = None,
        *,
        batch_size: int | None = None,
        chunk_size: int = 10_000,
        show_progress: bool = False,
        total: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Stream a large input: yields (n, D) arrays for consecutive chunks of up to chunk_size texts, in order.
        total: the number of texts, for the progress bar, when texts is an iterator."""
        return self._iter(texts, text_pairs, batch_size, chunk_size, show_progress, post=True, total=total)

    def _iter(
        self,
        texts: Iterable[str],
        text_pairs: Iterable[str] | None,
        batch_size: int | None,
        chunk_size: int,
        show_progress: bool,
        post: bool,
        total: int | None = None,
    ) -> Iterator[np.ndarray]:
        total = len(texts) if isinstance(texts, Sequence) else total
        with tqdm(total=total, unit="text", disable=not show_progress, desc="encode") as bar:
            for chunk, pairs in text_chunks(texts, text_pairs, chunk_size):
                yield self._encode_chunk(chunk, pairs, batch_size, post, bar)

    def _tokenize(self, texts: list[str], pairs: list[str] | None) -> dict[str, list[list[int]]]:
        """Unpadded ids, type ids; texts over max_length are truncated (Google's pair rule) and counted."""
        enc = self.tokenizer(texts, pairs, padding=False, return_tensors=None)
        ids, types = enc["input_ids"], enc["token_type_ids"]
        long = [i for i, row in enumerate(ids) if len(row) > self.max_length]
        if long:
            cut = self.tokenizer(
                [texts[i] for i in long],
                None if pairs is None else [pairs[i] for i in long],
                max_length=self.max_length,
                padding=False,
                return_tensors=None,
            )
            for j, i in enumerate(long):
                ids[i], types[i] = cut["input_ids"][j], cut["token_type_ids"][j]
            logger.warning(
                "%d of %d texts are longer than max_length=%d tokens and were truncated (first: item %d)",
                len(long),
                len(texts),
                self.max_length,
                long[0],
            )
        return {"input_ids": ids, "token_type_ids": types}

    def _forward(
        self, ids: list[list[int]], types: list[list[int]], need_all: bool, first_only: bool = False
    ):
        """first_only: the caller reads nothing but the last layer's position 0 (reads_first_token_only)."""
        input_ids = _pad(ids, self.tokenizer.pad_token_id).to(self.device)
        token_type_ids = _pad(types, 0).to(self.device)
        lengths = torch.tensor([len(r) for r in ids], device=self.device)
        mask = (torch.arange(input_ids.shape[1], device=self.device) < lengths[:, None]).long()
        first = {"first_token_only": True} if first_only and self._eager else {}
        with self.autocast():
            out = self._net(input_ids, token_type_ids, mask, output_hidden_states=need_all, **first)
        return out, mask

    @torch.inference_mode()
    def _encode_chunk(
        self, texts: list[str], pairs: list[str] | None, batch_size: int | None, post: bool, bar
    ) -> np.ndarray:
        enc = self._tokenize(texts, pairs)
        ids, types = enc["input_ids"], enc["token_type_ids"]
        width = pooled_dim(self.pooling, self.layers, self.model.config.hidden_size)
        out = np.empty((len(texts), width), dtype=np.float32)
        first_only = reads_first_token_only(self.pooling, self.layers)
        for batch in plan_batches([len(r) for r in ids], batch_size, self.max_batch_tokens):
            output, mask = self._forward(
                [ids[i] for i in batch], [types[i] for i in batch], self.layers != (-1,), first_only
            )
            vectors = pool(output, mask, self.pooling, self.layers)
            out[batch] = vectors.float().cpu().numpy()
            bar.update(len(batch))
        if post:
            if self.whitening is not None:
                out = self.whitening.apply(out)
            if self.normalize:
                out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    @torch.inference_mode()
    def encode_tokens(
        self,
        texts: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        *,
        layers: Sequence[int] | None = (-1, -2, -3, -4),
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> list[TokenFeatures]:
        """Token-level vectors of the chosen layers for each text (Google's extract_features.py)."""
        if isinstance(texts, str):
            raise TypeError("encode_tokens takes a list of texts")
        chosen = resolve_layers(Pooling.MEAN, layers, self.model.config.num_hidden_layers)
        check_texts(texts, "texts", 0)
        if text_pairs is not None:
            if len(text_pairs) != len(texts):
                raise ValueError(
                    f"text_pairs has {len(text_pairs)} items, texts {len(texts)}; give one pair per text"
                )
            check_texts(text_pairs, "text_pairs", 0)
        encodings = self.tokenizer.encode_batch(
            list(texts), None if text_pairs is None else list(text_pairs), self.max_length
        )
        results: list[TokenFeatures | None] = [None] * len(texts)
        with tqdm(total=len(texts), unit="text", disable=not show_progress, desc="encode tokens") as bar:
            for batch in plan_batches([len(e) for e in encodings], batch_size, self.max_batch_tokens):
                rows = [encodings[i] for i in batch]
                output, _ = self._forward([e.ids for e in rows], [e.type_ids for e in rows], chosen != (-1,))
                states = output.hidden_states or (output.last_hidden_state,)
                stacked = torch.stack(
                    [states[k] for k in chosen] if output.hidden_states else list(states), 2
                )
                values = stacked.float().cpu().numpy()  # (B, T, K, H)
                for row, i in enumerate(batch):
                    e = encodings[i]
                    results[i] = TokenFeatures(
                        e.tokens, e.offsets, e.sequence_ids, chosen, values[row, : len(e)]
                    )
                bar.update(len(batch))
        return results  # type: ignore[return-value]


def extract_features(
    texts: Sequence[str],
    model: str | Path = "minilm",
    *,
    text_pairs: Sequence[str] | None = None,
    pooling: Pooling | str | None = None,
    layers: Sequence[int] | None = None,
    normalize: bool | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """One call: load `model` and return its (N, D) sentence vectors for texts (see FeatureExtractor)."""
    extractor = FeatureExtractor.from_pretrained(model, pooling=pooling, layers=layers, normalize=normalize)
    return extractor.encode(texts, text_pairs, batch_size=batch_size)


__all__ = ["FeatureExtractor", "Pooling", "TokenFeatures", "Whitening", "extract_features", "fit_whitening"]
