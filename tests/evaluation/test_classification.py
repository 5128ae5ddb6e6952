"""Metrics against scikit-learn and scipy on random and edge-case inputs."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.evaluation import classification as m

sk = pytest.importorskip("sklearn.metrics")
stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_labels", [2, 3, 5])
def test_classification_metrics_match_sklearn(seed: int, num_labels: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    t = rng.integers(0, num_labels, n)
    p = np.where(rng.random(n) < 0.6, t, rng.integers(0, num_labels, n))
    assert m.accuracy(t, p) == pytest.approx(sk.accuracy_score(t, p))
    assert m.f1(t, p, num_labels, "macro") == pytest.approx(
        sk.f1_score(t, p, average="macro", zero_division=0)
    )
    assert m.f1(t, p, num_labels, "micro") == pytest.approx(
        sk.f1_score(t, p, average="micro", zero_division=0)
    )
    assert m.matthews_corrcoef(t, p, num_labels) == pytest.approx(sk.matthews_corrcoef(t, p), abs=1e-12)
    np.testing.assert_array_equal(
        m.confusion_matrix(t, p, num_labels), sk.confusion_matrix(t, p, labels=range(num_labels))
    )
    if num_labels == 2:
        assert m.f1(t, p, 2, "binary") == pytest.approx(sk.f1_score(t, p, zero_division=0))
        out = m.classification_metrics(t, p, 2)
        assert set(out) == {"accuracy", "f1", "f1_macro", "f1_micro", "mcc"}


def test_edge_cases_follow_sklearn() -> None:
    # one class everywhere: MCC undefined -> 0, binary F1 with no positives -> 0
    t = p = np.zeros(5, dtype=int)
    assert m.matthews_corrcoef(t, p, 2) == sk.matthews_corrcoef(t, p) == 0.0
    assert m.f1(t, p, 2, "binary") == sk.f1_score(t, p, zero_division=0) == 0.0
    # labels never seen are left out of macro F1, as sklearn does with labels=None
    t, p = np.array([0, 0, 2]), np.array([0, 2, 2])
    assert m.f1(t, p, 4, "macro") == pytest.approx(sk.f1_score(t, p, average="macro"))


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 80).astype(float)  # many ties, like STS-B's 0..5 scores
    y = x + rng.normal(0, 1.5, 80)
    assert m.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert m.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    np.testing.assert_allclose(m.rankdata(x), stats.rankdata(x))
    out = m.regression_metrics(x, y)
    assert out["corr"] == pytest.approx((out["pearson"] + out["spearman"]) / 2)
    assert out["mse"] == pytest.approx(sk.mean_squared_error(x, y))


def test_constant_input_correlation_is_zero() -> None:
    assert m.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_multilabel_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    t = rng.random((40, 5)) < 0.3
    p = np.where(rng.random((40, 5)) < 0.8, t, ~t)
    p[:, 4] = t[:, 4] = False  # a label that never occurs
    out = m.multilabel_metrics(t, p)
    assert out["accuracy"] == pytest.approx(sk.accuracy_score(t, p))
    assert out["f1_micro"] == pytest.approx(sk.f1_score(t, p, average="micro"))
    present = (t | p).any(axis=0)
    assert out["f1_macro"] == pytest.approx(sk.f1_score(t[:, present], p[:, present], average="macro"))
