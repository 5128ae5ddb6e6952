"""Whitening (Su et al. 2021): identity covariance after fitting, the paper's formula, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.inference.whitening import Whitening, fit_whitening, fit_whitening_chunks


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


def test_chunks_fit_as_the_whole_and_hold_one_chunk(anisotropic):
    """fit_whitening_chunks sums the moments a chunk at a time: the same transform as np.cov over all the rows
    (the mean of 20 against a spread of ~1 cancels no digits), whatever the chunking, empty chunks included."""
    whole = fit_whitening(anisotropic, dim=10)
    mu = anisotropic.mean(0)
    u, s, _ = np.linalg.svd(np.cov(anisotropic.T))
    reference = (anisotropic - mu) @ (u @ np.diag(1 / np.sqrt(s)))[:, :10]
    for sizes in ([1] * 500, [7, 0, 93, 400], [250, 250]):
        cuts = np.cumsum([0, *sizes])
        chunked = fit_whitening_chunks(anisotropic[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True))
        np.testing.assert_allclose(chunked.mean, mu, rtol=1e-12, atol=1e-12)
        w = fit_whitening_chunks((anisotropic[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)), dim=10)
        np.testing.assert_allclose(w.apply(anisotropic), whole.apply(anisotropic), atol=1e-5)
        np.testing.assert_allclose(w.apply(anisotropic), reference, rtol=1e-4, atol=1e-4)
        assert chunked.dim == 16
    with pytest.raises(ValueError, match="a chunk of \\(3, 8\\)"):
        fit_whitening_chunks([anisotropic[:5], np.zeros((3, 8))])
    with pytest.raises(ValueError, match="at least 2 vectors"):
        fit_whitening_chunks([anisotropic[:1], anisotropic[:0]])
