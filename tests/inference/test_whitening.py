"""Whitening (Su et al. 2021): identity covariance after fitting, the paper's formula, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.inference.whitening import Whitening, fit_whitening


@pytest.fixture()
def anisotropic() -> np.ndarray:
    """Vectors with a large common direction, like raw BERT: every pair has a high cosine."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(16, 16)) * np.linspace(3, 0.1, 16)[:, None]
    return rng.normal(size=(500, 16)) @ mix + 20.0


def _mean_cosine(x: np.ndarray) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    return float(sims[~np.eye(len(x), dtype=bool)].mean())


def test_whitened_vectors_have_zero_mean_and_identity_covariance(anisotropic):
    w = fit_whitening(anisotropic)
    y = w.apply(anisotropic)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(np.cov(y, rowvar=False), np.eye(16), atol=1e-3)
    assert _mean_cosine(anisotropic) > 0.8 and abs(_mean_cosine(y)) < 0.05  # the "cosine is always high" fix


def test_matches_the_papers_formula(anisotropic):
    """Su et al.'s compute_kernel_bias: u, s, vh = svd(cov); W = u / sqrt(s); y = (x - mu) W[:, :k]."""
    mu = anisotropic.mean(0)
    u, s, _ = np.linalg.svd(np.cov(anisotropic.T))
    expected = (anisotropic - mu) @ (u @ np.diag(1 / np.sqrt(s)))[:, :6]
    np.testing.assert_allclose(
        fit_whitening(anisotropic, dim=6).apply(anisotropic), expected, rtol=1e-4, atol=1e-4
    )


def test_save_load_round_trip(tmp_path, anisotropic):
    w = fit_whitening(anisotropic, dim=8)
    path = w.save(tmp_path / "white.bin")  # any suffix is kept as given
    assert path == tmp_path / "white.bin"
    loaded = Whitening.load(path)
    assert loaded.dim == 8 and loaded.input_dim == 16
    np.testing.assert_array_equal(loaded.apply(anisotropic), w.apply(anisotropic))


def test_errors(tmp_path, anisotropic):
    with pytest.raises(ValueError, match="more than 16 vectors"):
        fit_whitening(anisotropic[:10])
    assert fit_whitening(anisotropic[:10], dim=4).dim == 4  # fewer vectors are fine for fewer dimensions
    with pytest.raises(ValueError, match="dim must be in 1..16"):
        fit_whitening(anisotropic, dim=17)
    with pytest.raises(ValueError, match="fitted on 16-dimensional vectors"):
        fit_whitening(anisotropic).apply(np.zeros((2, 8)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Whitening.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="not a whitening file"):
        Whitening.load(tmp_path / "bad.npz")
