"""Statistics for axis calibration and reliability: plain functions of numpy arrays, no I/O."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pingouin
import scipy.stats
from numpy.typing import ArrayLike

# Shrout & Fleiss / McGraw & Wong short names -> pingouin >= 0.7 labels (older pingouin uses the short names).
_ICC_LABELS = {
    "ICC1": "ICC(1,1)",
    "ICC2": "ICC(A,1)",
    "ICC3": "ICC(C,1)",
    "ICC1k": "ICC(1,k)",
    "ICC2k": "ICC(A,k)",
    "ICC3k": "ICC(C,k)",
}


def _vector(x: ArrayLike, name: str, min_len: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    if a.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} value(s), got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _matrix(x: ArrayLike, name: str) -> np.ndarray:
    m = np.asarray(x, dtype=float)
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array with at least 2 rows, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} contains NaN or inf")
    return m


def pairwise_accuracy(pos: ArrayLike, neg: ArrayLike) -> float:
    """Share of all (p, n) pairs with p > n, ties counting 0.5: U_pos / (n_pos * n_neg), i.e. the AUC."""
    p, n = _vector(pos, "pos"), _vector(neg, "neg")
    u = scipy.stats.mannwhitneyu(p, n, method="asymptotic").statistic
    return float(u / (p.size * n.size))


def sign_accuracy(pos: ArrayLike, neg: ArrayLike, centre: float = 0.0) -> float:
    """(#{pos > centre} + #{neg < centre}) / (n_pos + n_neg); values exactly at the centre count as wrong."""
    p, n = _vector(pos, "pos"), _vector(neg, "neg")
    return float((np.sum(p > centre) + np.sum(n < centre)) / (p.size + n.size))


def dprime(pos: ArrayLike, neg: ArrayLike) -> float:
    """(mean_pos - mean_neg) / sqrt((var_pos + var_neg) / 2), variances with ddof=1.

    With both variances zero: nan if the means are equal, else +inf or -inf (sign of the difference).
    """
    p, n = _vector(pos, "pos", 2), _vector(neg, "neg", 2)
    diff = p.mean() - n.mean()
    sd = np.sqrt((p.var(ddof=1) + n.var(ddof=1)) / 2)
    if sd == 0:
        return float("nan") if diff == 0 else float(np.copysign(np.inf, diff))
    return float(diff / sd)


def cohens_d(a: ArrayLike, b: ArrayLike) -> float:
    """(mean_a - mean_b) / s_pooled with s_pooled² = ((n_a-1) var_a + (n_b-1) var_b) / (n_a + n_b - 2).

    Variances use ddof=1. Zero pooled sd gives nan (equal means) or ±inf, as in :func:`dprime`.
    """
    x, y = _vector(a, "a", 2), _vector(b, "b", 2)
    diff = x.mean() - y.mean()
    pooled = np.sqrt(((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / (x.size + y.size - 2))
    if pooled == 0:
        return float("nan") if diff == 0 else float(np.copysign(np.inf, diff))
    return float(diff / pooled)


def icc(ratings: ArrayLike, form: str = "ICC2") -> float:
    """Intraclass correlation of a subjects x raters matrix (pingouin.intraclass_corr on the long format).

    ``form`` is ICC1, ICC2, ICC3, ICC1k, ICC2k or ICC3k (pingouin >= 0.7 labels such as "ICC(A,1)" also work).
    With MS_R (subjects), MS_C (raters), MS_E (residual) of the two-way ANOVA, n subjects and k raters,
    ICC(2,1) = (MS_R - MS_E) / (MS_R + (k - 1) MS_E + k (MS_C - MS_E) / n): two-way random effects, absolute
    agreement, single rater. It is the default because seeds are a random sample of possible runs (random
    raters) and we care about the absolute projected values, not only their ordering.
    """
    m = np.asarray(ratings, dtype=float)
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 2:
        raise ValueError(f"ratings must be a subjects x raters matrix of at least 2 x 2, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("ratings contains NaN or inf; ICC needs a complete subjects x raters matrix")
    if form not in _ICC_LABELS and form not in _ICC_LABELS.values():
        raise ValueError(f"unknown ICC form {form!r}; expected one of {sorted(_ICC_LABELS)}")
    n, k = m.shape
    long = pd.DataFrame({"subject": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n)})
    long["rating"] = m.ravel()
    table = pingouin.intraclass_corr(long, targets="subject", raters="rater", ratings="rating")
    values = table.set_index("Type")["ICC"]
    for label in (form, _ICC_LABELS.get(form)):
        if label in values.index:
            return float(values[label])
    raise ValueError(f"pingouin returned no row for ICC form {form!r}")  # pragma: no cover


def icc2_batch(ratings: np.ndarray) -> np.ndarray:
    """ICC(2,1) of a stack of subjects x raters matrices [..., n, k] at once (the formula in :func:`icc`;
    tested equal to pingouin's). Constant matrices give NaN."""
    m = np.asarray(ratings, dtype=float)
    n, k = m.shape[-2:]
    grand = m.mean(axis=(-2, -1), keepdims=True)
    ss_r = k * ((m.mean(-1, keepdims=True) - grand) ** 2).sum(axis=(-2, -1))
    ss_c = n * ((m.mean(-2, keepdims=True) - grand) ** 2).sum(axis=(-2, -1))
    ss_e = ((m - grand) ** 2).sum(axis=(-2, -1)) - ss_r - ss_c
    ms_r, ms_c, ms_e = ss_r / (n - 1), ss_c / (k - 1), ss_e / ((n - 1) * (k - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ms_r - ms_e) / (ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n)


def icc_with_ci(
    ratings: ArrayLike, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """ICC(2,1) of a subjects x raters matrix (pingouin) with a percentile bootstrap CI over subjects,
    computed for all resamples at once; degenerate resamples (constant) are left out of the quantiles."""
    m = np.asarray(ratings, dtype=float)
    point = icc(m, "ICC2")
    idx = np.random.default_rng(seed).integers(0, m.shape[0], (n_boot, m.shape[0]))
    reps = icc2_batch(m[idx])
    lo, hi = np.nanquantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return point, float(lo), float(hi)


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    axis: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)``.

    Each replicate draws n indices with replacement along ``axis`` and takes the same indices from every
    array (paired resampling); the interval is the (1 - ci)/2 and (1 + ci)/2 quantiles of the replicates.
    Plain numpy rather than scipy.stats.bootstrap, whose seeding argument changed across scipy versions.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    data = [np.asarray(a) for a in arrays]
    n = data[0].shape[axis]
    if any(a.shape[axis] != n for a in data):
        raise ValueError("paired bootstrap needs all arrays to have the same length along axis")
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        reps[i] = statistic(*(np.take(a, idx, axis=axis) for a in data))
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def _corr_eigenvalues(matrix: ArrayLike) -> np.ndarray:
    """Eigenvalues (descending) of the column correlation matrix; constant columns raise ValueError."""
    m = _matrix(matrix, "matrix")
    flat = np.flatnonzero(np.ptp(m, axis=0) == 0)  # exact test; std of a constant can round to 1e-17
    if flat.size:
        raise ValueError(
            f"columns {flat.tolist()} have zero variance; drop them before computing the spectrum"
        )
    corr = np.atleast_2d(np.corrcoef(m, rowvar=False))
    return np.clip(np.linalg.eigvalsh(corr)[::-1], 0.0, None)


def pc1_share(matrix: ArrayLike) -> float:
    """λ1 / Σλ over the eigenvalues λ of the correlation matrix of the columns (questions x axes input).

    Columns are standardised, so axes with different spread weigh equally. A constant column (e.g. an axis
    saturated at the clip value for every question) has no correlation and raises ValueError: drop it first.
    """
    lam = _corr_eigenvalues(matrix)
    return float(lam[0] / lam.sum())


def participation_ratio(matrix: ArrayLike) -> float:
    """(Σλ)² / Σλ² over the eigenvalues λ of the column correlation matrix: 1 (rank one) .. n_columns."""
    lam = _corr_eigenvalues(matrix)
    return float(lam.sum() ** 2 / np.sum(lam**2))


def trimmed_mean(x: ArrayLike, proportion: float = 0.1, axis: int | None = 0) -> float | np.ndarray:
    """Mean after cutting ``proportion`` of the values from each end (scipy.stats.trim_mean)."""
    return scipy.stats.trim_mean(np.asarray(x, dtype=float), proportion, axis=axis)


def iqr(x: ArrayLike) -> float:
    """Interquartile range q75 - q25 (scipy.stats.iqr, linear interpolation)."""
    return float(scipy.stats.iqr(_vector(x, "x")))


def spearman(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Spearman rank correlation and its two-sided p-value (scipy.stats.spearmanr)."""
    res = scipy.stats.spearmanr(_vector(x, "x", 2), _vector(y, "y", 2))
    return float(res.statistic), float(res.pvalue)


def regress_out(matrix: ArrayLike, covariate: ArrayLike) -> np.ndarray:
    """Residuals of each column of `matrix` after least-squares regression on [1, covariate]."""
    m = _matrix(matrix, "matrix")
    x = _vector(covariate, "covariate", 2)
    if x.size != m.shape[0]:
        raise ValueError(f"covariate has {x.size} values for {m.shape[0]} rows")
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, m, rcond=None)
    return m - design @ coef


def mean_abs_offdiag(corr: ArrayLike) -> float:
    """Mean |r| over the off-diagonal entries of a square correlation matrix."""
    c = np.asarray(corr, dtype=float)
    return float(np.abs(c[~np.eye(c.shape[0], dtype=bool)]).mean())


def pearson(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Pearson correlation and its two-sided p-value (scipy.stats.pearsonr)."""
    res = scipy.stats.pearsonr(_vector(x, "x", 3), _vector(y, "y", 3))
    return float(res.statistic), float(res.pvalue)
