"""Whitening of sentence vectors (Su et al. 2021, "Whitening Sentence Representations"): fit, save, apply.

Raw BERT vectors share a large common direction, so the cosine of any two sentences is high. Whitening
subtracts the corpus mean and rotates and scales by the inverse square root of the covariance:
y = (x - mu) @ W, W = U diag(1/sqrt(s)) from the SVD of the covariance, keeping the first `dim` columns.
Shapes: N vectors, D input dimension, K output dimension (K <= D).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_RCOND = 1e-6  # directions with variance below this fraction of the largest are dropped, not blown up


@dataclass(frozen=True)
class Whitening:
    """A fitted whitening transform: mean (D,) and kernel (D, K)."""

    mean: np.ndarray
    kernel: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.kernel.shape[1])

    @property
    def input_dim(self) -> int:
        return int(self.kernel.shape[0])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, K) float32."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.input_dim:
            raise ValueError(
                f"whitening was fitted on {self.input_dim}-dimensional vectors, got shape {vectors.shape}; "
                "use the same model, pooling and layers as when fitting"
            )
        return ((vectors.astype(np.float64) - self.mean) @ self.kernel).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write an .npz with `mean` and `kernel`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:  # a file object keeps numpy from appending .npz to other suffixes
            np.savez(f, mean=self.mean, kernel=self.kernel)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Whitening:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"whitening file {path} does not exist; fit one with fit_whitening()")
        try:
            with np.load(path) as data:
                mean, kernel = data["mean"], data["kernel"]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(
                f"{path} is not a whitening file (an .npz with 'mean' and 'kernel'): {err}"
            ) from err
        if mean.ndim != 1 or kernel.ndim != 2 or kernel.shape[0] != mean.shape[0]:
            raise ValueError(f"{path}: mean {mean.shape} and kernel {kernel.shape} do not fit together")
        return cls(mean, kernel)


def fit_whitening(vectors: np.ndarray, dim: int | None = None) -> Whitening:
    """Fit on (N, D) vectors; keep the `dim` directions of largest variance (all that vary when None)."""
    x = np.asarray(vectors)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"whitening needs at least 2 vectors of shape (N, D); got {x.shape}")
    return fit_whitening_chunks([x], dim)


def fit_whitening_chunks(chunks: Iterable[np.ndarray], dim: int | None = None) -> Whitening:
    """fit_whitening over the rows of consecutive (n, D) chunks, holding one chunk at a time: the mean and
    covariance are summed in float64 as the chunks come (the sums are D + D*D numbers, whatever N is)."""
    sums = _Moments()
    for chunk in chunks:
        sums.add(np.asarray(chunk))
    n, d = sums.count, sums.dim
    if n < 2:
        raise ValueError(f"whitening needs at least 2 vectors of shape (N, D); got {n}")
    if dim is not None and not 1 <= dim <= d:
        raise ValueError(f"whitening dim must be in 1..{d}, got {dim}")
    if n <= d and dim is None:
        raise ValueError(
            f"fitting a full {d}-dimensional whitening needs more than {d} vectors (got {n}); "
            "fit on more text or pass a smaller dim"
        )
    u, s, _ = np.linalg.svd(sums.covariance())
    # Mean-pooled LayerNorm outputs lie in a hyperplane, so at least one direction has no variance at all.
    rank = int((s > s[0] * _RCOND).sum())
    if dim is not None and dim > rank:
        logger.warning(
            "only %d of %d directions vary in the data; whitening keeps %d, not %d", rank, d, rank, dim
        )
    keep = min(dim or rank, rank)
    kernel = u[:, :keep] / np.sqrt(s[:keep])
    return Whitening(sums.mean(), kernel)


class _Moments:
    """Count, mean and covariance of rows given a chunk at a time, in float64. The sums are of the rows minus
    the first chunk's mean (the shifted-data algorithm), so a mean large against the spread (raw BERT vectors)
    cancels no digits; the covariance is the sample one (N - 1), as np.cov's."""

    def __init__(self) -> None:
        self.count, self.dim = 0, 0
        self.shift = self.total = self.gram = np.zeros(0)

    def add(self, chunk: np.ndarray) -> None:
        if chunk.ndim != 2 or (self.count and chunk.shape[1] != self.dim):
            raise ValueError(f"whitening needs vectors of shape (N, D); got a chunk of {chunk.shape}")
        if not len(chunk):
            return
        x = chunk.astype(np.float64)
        if not self.count:
            self.dim = x.shape[1]
            self.shift, self.total, self.gram = x.mean(0), np.zeros(self.dim), np.zeros((self.dim, self.dim))
        y = x - self.shift
        self.count += len(y)
        self.total += y.sum(0)
        self.gram += y.T @ y

    def mean(self) -> np.ndarray:
        return self.shift + self.total / self.count

    def covariance(self) -> np.ndarray:
        m = self.total / self.count
        return (self.gram - self.count * np.outer(m, m)) / (self.count - 1)
