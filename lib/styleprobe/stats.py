"""Statistics for axis calibration and reliability: plain functions of numpy arrays, no I/O."""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pingouin
import scipy.special
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
    return float(np.mean(np.sign(p[:, None] - n[None, :])) / 2 + 0.5)


def pairwise_accuracy_ci(pos: ArrayLike, neg: ArrayLike, ci: float = 0.95) -> tuple[float, float]:
    """Interval for the pairwise accuracy θ (:func:`pairwise_accuracy`, the AUC): Newcombe's (2006) method 5.

    A score interval: the θ solving (θ̂ - θ)² = z² V(θ), with the Hanley-McNeil variance in Newcombe's balanced
    form V(θ) = θ(1-θ) [1 + (N - 1)((1-θ)/(2-θ) + θ/(1+θ))] / (n_pos n_neg), N = (n_pos + n_neg) / 2. Clearing
    denominators gives a quartic with exactly one root on each side of θ̂ in [0, 1]; at θ̂ = 1 (complete
    separation) the lower bound stays below 1, and lo <= θ̂ <= hi always.

    Coverage of the 95 % interval measured by simulation (normal poles with shifted means, 2000 draws per
    cell, true θ 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 5/5, 5/15, 10/10, 15/15 and 30/30 answers per pole): 0.940
    to 0.974 in every cell. BCa bootstrap and Wald/DeLong intervals (also on the logit scale) fall to
    0.48-0.88 at 5 per pole for θ >= 0.8 and collapse to a point at θ̂ = 1.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    p, n = _vector(pos, "pos"), _vector(neg, "neg")
    half = (p.size + n.size) / 2 - 1
    theta = pairwise_accuracy(p, n)
    c = scipy.special.ndtri((1 + ci) / 2) ** 2 / (p.size * n.size)
    a, b = 2 + half, 1 + 2 * half  # t(1-t)[...] = a t + (b - a) t² - 2b t³ + b t⁴ with half = N - 1
    # (θ̂ - t)²(2 - t)(1 + t) - c t(1 - t)[(2 - t)(1 + t) + (N - 1)(1 + 2t - 2t²)], highest power first
    quartic = [
        -1 - c * b,
        2 * theta + 1 + 2 * c * b,
        2 - 2 * theta - theta**2 - c * (b - a),
        theta**2 - 4 * theta - c * a,
        2 * theta**2,
    ]
    roots = np.roots(quartic)
    roots = roots.real[(np.abs(roots.imag) < 1e-9) & (roots.real > 1e-9) & (roots.real < 1 - 1e-9)]
    below, above = roots[roots <= theta], roots[roots >= theta]
    return float(below.max(initial=0.0)), float(above.min(initial=1.0))


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


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    paired: bool = True,
) -> tuple[float, float]:
    """BCa bootstrap interval of ``statistic(*arrays)`` (scipy.stats.bootstrap, method="BCa").

    ``paired=True`` draws the same indices (along axis 0) from every array; ``paired=False`` resamples each
    array on its own (two-sample statistics). A statistic that accepts ``axis`` is evaluated on all resamples
    at once, any other once per resample. Resamples where the statistic is NaN (undefined) are left out of the
    interval, never counted as a value (callers that need their share compute it themselves). Degenerate data
    (an array with fewer than 2 values, a constant bootstrap distribution, no defined resample) give
    (nan, nan). One call with 15 values and 2000 resamples takes about 3 ms with an ``axis`` statistic,
    40 ms without. For a mean, :func:`mean_ci` covers better at these sample sizes.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    data = [np.asarray(a) for a in arrays]
    if paired and len({len(a) for a in data}) > 1:
        raise ValueError("paired bootstrap needs all arrays to have the same length")
    if min(len(a) for a in data) < 2:
        return float("nan"), float("nan")
    try:
        vectorized = "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):  # a callable without an inspectable signature
        vectorized = False
    options = {
        "paired": paired,
        "vectorized": vectorized,
        "confidence_level": ci,
        "method": "BCa",
    }
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        res = scipy.stats.bootstrap(
            data, statistic, n_resamples=n_boot, rng=np.random.default_rng(seed), **options
        )
        reps = np.asarray(res.bootstrap_distribution)
        defined = reps[~np.isnan(reps)]
        if defined.size < reps.size:
            if not defined.size:
                return float("nan"), float("nan")
            kept = dataclasses.replace(res, bootstrap_distribution=defined)
            res = scipy.stats.bootstrap(data, statistic, n_resamples=0, bootstrap_result=kept, **options)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else (float("nan"), float("nan"))


def mean_ci(x: ArrayLike, ci: float = 0.95) -> tuple[float, float]:
    """Student t interval of the mean of `x` (scipy.stats.ttest_1samp); for a mean of paired differences.

    Measured by simulation for a skewed paired difference (beta(2, 5) against normal noise), the 95 %
    interval covers 0.93-0.94 at 5, 15 and 30 pairs, where BCa (:func:`bootstrap_ci`) covers 0.85-0.91.
    Fewer than 2 values or no spread give (nan, nan)."""
    v = _vector(x, "x", 0)
    if v.size < 2 or np.ptp(v) <= 1e-12 * np.max(np.abs(v)):
        return float("nan"), float("nan")
    res = scipy.stats.ttest_1samp(v, 0.0).confidence_interval(ci)
    return float(res.low), float(res.high)


def mean_difference_ci(x: ArrayLike, y: ArrayLike, ci: float = 0.95) -> tuple[float, float]:
    """Welch t interval of mean(x) - mean(y) for independent samples (scipy.stats.ttest_ind,
    equal_var=False). A side with fewer than 2 values, or no spread on either side, gives (nan, nan)."""
    a, b = _vector(x, "x", 0), _vector(y, "y", 0)
    if min(a.size, b.size) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return float("nan"), float("nan")
    res = scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(ci)
    return float(res.low), float(res.high)


def icc_with_ci(ratings: ArrayLike, ci: float = 0.95) -> tuple[float, float, float]:
    """ICC(2,1) of a subjects x raters matrix with McGraw & Wong's (1996) F-based interval for ICC(A,1).

    From the two-way ANOVA mean squares MS_R (subjects), MS_C (raters), MS_E (residual), n subjects, k raters:
    the point value is :func:`icc`'s; with F_C = MS_C / MS_E and Satterthwaite's
    v = (n-1)(k-1) (k ρ F_C + n(1 + (k-1)ρ) - kρ)² / ((n-1) k² ρ² F_C² + (n(1 + (k-1)ρ) - kρ)²) at ρ = ICC,
    F* = F_{1-α/2}(n-1, v), F_* = F_{1-α/2}(v, n-1) and D = k MS_C + (kn - k - n) MS_E,
    lo = n (MS_R - F* MS_E) / (F* D + n MS_R), hi = n (F_* MS_R - MS_E) / (D + n F_* MS_R).
    This is pingouin.intraclass_corr's CI95 of the ICC(A,1) row at ci=0.95 (tested equal), for any ci.
    A matrix without residual variance (e.g. constant) gives (nan, nan, nan).
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    m = np.asarray(ratings, dtype=float)
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 2:
        raise ValueError(f"ratings must be a subjects x raters matrix of at least 2 x 2, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("ratings contains NaN or inf; ICC needs a complete subjects x raters matrix")
    n, k = m.shape
    rows, cols, grand = m.mean(axis=1), m.mean(axis=0), m.mean()
    ms_r = k * np.sum((rows - grand) ** 2) / (n - 1)
    ms_c = n * np.sum((cols - grand) ** 2) / (k - 1)
    ms_e = np.sum((m - rows[:, None] - cols[None, :] + grand) ** 2) / ((n - 1) * (k - 1))
    if not ms_e > 0:
        return (float("nan"),) * 3
    rho = (ms_r - ms_e) / (ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n)
    f_c = ms_c / ms_e
    spread = n * (1 + (k - 1) * rho) - k * rho
    v = (n - 1) * (k - 1) * (k * rho * f_c + spread) ** 2 / ((n - 1) * k**2 * rho**2 * f_c**2 + spread**2)
    upper_f = scipy.stats.f.ppf((1 + ci) / 2, n - 1, v)
    lower_f = scipy.stats.f.ppf((1 + ci) / 2, v, n - 1)
    d = k * ms_c + (k * n - k - n) * ms_e
    lo = n * (ms_r - upper_f * ms_e) / (upper_f * d + n * ms_r)
    hi = n * (lower_f * ms_r - ms_e) / (d + n * lower_f * ms_r)
    return float(rho), float(lo), float(hi)


SCALES = ("correlation", "covariance")


def spectrum_shares(matrix: ArrayLike, scale: str = "correlation") -> np.ndarray:
    """Eigenvalues λ (descending) of the columns' correlation or covariance matrix, as shares λ / Σλ.

    ``scale="correlation"`` standardises the columns, so axes with different spread weigh equally; a constant
    column (an axis saturated at the clip value for every question) has no correlation and raises ValueError:
    drop it first. ``scale="covariance"`` uses the covariance (ddof=1) of the raw columns, as the original
    study did: axes weigh by their variance and a constant column is kept (it adds a zero eigenvalue).
    A matrix with no variance at all raises ValueError.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")
    m = _matrix(matrix, "matrix")
    flat = np.flatnonzero(np.ptp(m, axis=0) == 0)  # exact test; std of a constant can round to 1e-17
    if flat.size == m.shape[1]:
        raise ValueError("every column is constant: the matrix has no spectrum")
    if scale == "correlation":
        if flat.size:
            raise ValueError(
                f"columns {flat.tolist()} have zero variance; drop them before computing the spectrum"
            )
        square = np.corrcoef(m, rowvar=False)
    else:
        square = np.cov(m, rowvar=False)
    lam = np.clip(np.linalg.eigvalsh(np.atleast_2d(square))[::-1], 0.0, None)
    return lam / lam.sum()


def pc1_share(matrix: ArrayLike, scale: str = "correlation") -> float:
    """λ1 / Σλ of the questions x axes `matrix` (:func:`spectrum_shares` on `scale`)."""
    return float(spectrum_shares(matrix, scale)[0])


def participation_ratio(matrix: ArrayLike, scale: str = "correlation") -> float:
    """(Σλ)² / Σλ² (:func:`spectrum_shares` on `scale`): 1 (rank one) .. number of columns. On
    "covariance" it is the study's "effective dimensionality"."""
    return float(1 / np.sum(spectrum_shares(matrix, scale) ** 2))


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


def paired_accuracy_difference(
    pos_a: ArrayLike, neg_a: ArrayLike, pos_b: ArrayLike, neg_b: ArrayLike, ci: float = 0.95
) -> tuple[float, float, float]:
    """Pairwise accuracy (AUC, :func:`pairwise_accuracy`) of scores a minus that of scores b on the same
    answers, with its interval: (difference, low, high). Entry i of the four arrays belongs to question i
    (its positive and its negative answer, scored by a and by b), so the questions are the units.

    DeLong's structural components, paired by question: with V10(i) the share of negative answers that
    positive answer i outranks and V01(i) the share of positive answers that outrank negative answer i
    (ties 0.5), each score's AUC is the mean of V10 and the mean of V01, and the difference is the mean
    over questions of D(i) = [V10_a(i) + V01_a(i)] - [V10_b(i) + V01_b(i)] - difference; the interval is the
    Student t interval of that mean (:func:`mean_ci`). Coverage of the 95 % interval, simulated (AUC 0.8
    against 0.7 and 0.92 against 0.8, the two scores' noise correlated 0.5-0.8, normal and t(3) noise,
    with and without a per-question effect; 2000 draws per cell, 5 to 30 questions): 0.935-0.965; its low
    end lies above 0 for equal AUCs in 0.6-3.4 % of draws (one-sided nominal 2.5 %). The bounds are clipped
    to [-1, 1], the range of the difference; fewer than 2 questions give NaN bounds."""
    arrays = [_vector(x, name) for x, name in zip((pos_a, neg_a, pos_b, neg_b), "abcd", strict=True)]
    if len({a.size for a in arrays}) > 1:
        raise ValueError(f"the four arrays must hold one value per question, got {[a.size for a in arrays]}")

    def components(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        wins = np.sign(pos[:, None] - neg[None, :]) / 2 + 0.5
        return wins.mean(1) + wins.mean(0)  # V10(i) + V01(i)

    diff = pairwise_accuracy(arrays[0], arrays[1]) - pairwise_accuracy(arrays[2], arrays[3])
    parts = components(arrays[0], arrays[1]) - components(arrays[2], arrays[3]) - diff
    low, high = mean_ci(parts) if parts.size > 1 else (np.nan, np.nan)
    return float(diff), float(max(low, -1.0)), float(min(high, 1.0))  # a difference of AUCs lies in [-1, 1]
