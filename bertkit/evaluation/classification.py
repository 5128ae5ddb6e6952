"""Classification and regression metrics as pure functions over arrays (no torch).

Definitions follow scikit-learn (accuracy_score, f1_score, matthews_corrcoef) and scipy (pearsonr,
spearmanr with average ranks for ties); tests check them against both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[int] | Sequence[float] | np.ndarray


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_labels: int) -> np.ndarray:
    """(L, L) counts: rows are true labels, columns predicted ones.

    Example: confusion_matrix([0, 1, 1], [0, 0, 1], 2) -> [[1, 0], [1, 1]]
    """
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return np.bincount(t * num_labels + p, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float((t == p).mean()) if t.size else 0.0


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0)


def f1(
    y_true: ArrayLike, y_pred: ArrayLike, num_labels: int, average: str = "binary", pos_label: int = 1
) -> float:
    """F1: 'binary' (of pos_label), 'macro' (unweighted mean over labels present in y_true or y_pred), 'micro'.

    Like scikit-learn, an undefined F1 (no true and no predicted positives) counts as 0.
    """
    cm = confusion_matrix(y_true, y_pred, num_labels)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    if average == "binary":
        return float(
            _f1(tp[pos_label : pos_label + 1], fp[pos_label : pos_label + 1], fn[pos_label : pos_label + 1])[
                0
            ]
        )
    if average == "micro":
        return float(_f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0])
    if average == "macro":
        present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
        return float(_f1(tp, fp, fn)[present].mean()) if present.any() else 0.0
    raise ValueError(f"average must be binary, macro or micro, got {average!r}")


def matthews_corrcoef(y_true: ArrayLike, y_pred: ArrayLike, num_labels: int) -> float:
    """Matthews correlation (multi-class form of Gorodkin 2004, as scikit-learn); 0 when undefined."""
    cm = confusion_matrix(y_true, y_pred, num_labels).astype(np.float64)
    t_sum, p_sum = cm.sum(axis=1), cm.sum(axis=0)
    n, correct = cm.sum(), np.trace(cm)
    cov_ytyp = correct * n - np.dot(t_sum, p_sum)
    cov_ypyp = n * n - np.dot(p_sum, p_sum)
    cov_ytyt = n * n - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; 0 when either side is constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def rankdata(x: ArrayLike) -> np.ndarray:
    """Ranks from 1, ties given their average rank (scipy.stats.rankdata 'average').

    Example: rankdata([10, 20, 10]) -> [1.5, 3.0, 1.5]
    """
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, a.size])
    avg = first + (counts + 1) / 2.0
    ranks = np.empty_like(a)
    ranks[order] = avg[group]
    return ranks


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation: Pearson of average ranks."""
    return pearson(rankdata(x), rankdata(y))


def classification_metrics(y_true: ArrayLike, y_pred: ArrayLike, num_labels: int) -> dict[str, float]:
    """accuracy, f1_macro, f1_micro, mcc; plus f1 (binary, of label index 1) when there are two labels."""
    out = {
        "accuracy": accuracy(y_true, y_pred),
        "f1_macro": f1(y_true, y_pred, num_labels, "macro"),
        "f1_micro": f1(y_true, y_pred, num_labels, "micro"),
        "mcc": matthews_corrcoef(y_true, y_pred, num_labels),
    }
    if num_labels == 2:
        out["f1"] = f1(y_true, y_pred, 2, "binary", pos_label=1)
    return out


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """pearson, spearman, their mean (GLUE's STS-B summary) and mse."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    r, rho = pearson(t, p), spearman(t, p)
    return {
        "pearson": r,
        "spearman": rho,
        "corr": (r + rho) / 2,
        "mse": float(((t - p) ** 2).mean()) if t.size else 0.0,
    }


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """For (N, L) 0/1 arrays: subset accuracy, micro and macro F1 (macro over labels that occur)."""
    t, p = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    tp = (t & p).sum(axis=0).astype(np.float64)
    fp = (~t & p).sum(axis=0).astype(np.float64)
    fn = (t & ~p).sum(axis=0).astype(np.float64)
    present = (t | p).any(axis=0)
    return {
        "accuracy": float((t == p).all(axis=1).mean()) if t.size else 0.0,
        "f1_micro": float(_f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0]),
        "f1_macro": float(_f1(tp, fp, fn)[present].mean()) if present.any() else 0.0,
    }
