"""Axis estimators: how two poles' states become one direction (a functional core, one factory each).

An estimator is a function `(pos [n+, d], neg [n-, d], pos_groups [n+], neg_groups [n-]) -> [d]` that
returns a unit direction in the raw state space, oriented from the negative pole to the positive one
(the groups are the answers' question indices; only estimators with an inner cross-validation use them).
Because every estimator returns a direction in the raw space, an axis stays a direction with a centre and
a scale whatever fitted it: projection, cross-fitting, `compare` and the GGUF export do not change.

- `study`: unit(trimmed mean(pos) - trimmed mean(neg)), 10 % cut from each end per dimension (the
  original study's estimator, this library's only one before);
- `mean_diff`: unit(mean(pos) - mean(neg));
- `zscore`: the difference of means after diagonal whitening by the pooled within-pole standard
  deviation s: in the whitened space the direction is delta / s, so in the raw space it is delta / s^2;
- `lda`: the difference of means whitened by a Ledoit-Wolf shrinkage covariance (pooled within-pole,
  features standardised first, as scikit-learn's `LinearDiscriminantAnalysis(solver="lsqr",
  shrinkage="auto")` does): Sigma^-1 delta. Shrinkage 1 gives `zscore`, 0 ordinary LDA;
- `logistic`: L2-penalised logistic regression on the standardised states, its penalty chosen by an inner
  cross-validation grouped by question (both poles of a question in one fold).

`lda` and `logistic` are computed in the span of the answers (n answers << d dimensions: an n x n problem,
Woodbury's identity for the covariance and the representer theorem for the logistic fit), so thousands of
fits, as nested selection needs, take seconds; `tests/test_estimators.py` checks them against
scikit-learn's own implementations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from styleprobe.errors import StyleprobeError

Estimator = Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None], np.ndarray]
"""(pos, neg, pos_groups, neg_groups) -> unit direction [d], float64, raw state space."""

TRIM = 0.1  # the study estimator's trim, cut from each end per dimension
VARIANCE_FLOOR = 1e-6  # per-dimension variances are floored at this share of their mean (constant dims)
LOGISTIC_CS = tuple(float(c) for c in np.logspace(-3, 2, 6))  # inverse penalties the inner CV chooses from
LOGISTIC_FOLDS = 3  # inner folds (by question) that choose the logistic penalty


class EstimatorError(StyleprobeError, ValueError):
    """An unknown estimator, or poles an estimator cannot separate (identical, or too few answers)."""


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm == 0:
        raise EstimatorError(f"{what}: the two poles give no direction (identical states?)")
    return v / norm


def _check(pos: np.ndarray, neg: np.ndarray, minimum: int = 1) -> tuple[np.ndarray, np.ndarray]:
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape[1] != neg.shape[1]:
        raise EstimatorError(f"pole states must be [n, d] of one width, got {pos.shape} and {neg.shape}")
    if len(pos) < minimum or len(neg) < minimum:
        raise EstimatorError(f"need at least {minimum} answer(s) per pole, got {len(pos)} and {len(neg)}")
    return pos, neg


def _within(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The answers centred on their own pole's mean [n, d], and the pooled within-pole variance per
    dimension (ddof 2, floored at VARIANCE_FLOOR of the mean variance)."""
    centred = np.concatenate([pos - pos.mean(0), neg - neg.mean(0)])
    var = (centred**2).sum(0) / max(1, len(centred) - 2)
    floor = VARIANCE_FLOOR * (var.mean() if var.mean() > 0 else 1.0)
    return centred, np.maximum(var, floor)


def study(trim: float = TRIM) -> Estimator:
    """unit(trimmed_mean(pos) - trimmed_mean(neg)), `trim` cut from each end per dimension."""

    def fit(pos, neg, pos_groups=None, neg_groups=None):
        import scipy.stats

        pos, neg = _check(pos, neg)
        diff = scipy.stats.trim_mean(pos, trim, axis=0) - scipy.stats.trim_mean(neg, trim, axis=0)
        return _unit(diff, "study")

    return fit


def mean_difference() -> Estimator:
    """unit(mean(pos) - mean(neg))."""

    def fit(pos, neg, pos_groups=None, neg_groups=None):
        pos, neg = _check(pos, neg)
        return _unit(pos.mean(0) - neg.mean(0), "mean_diff")

    return fit


def zscore() -> Estimator:
    """The difference of means in the space whitened by the pooled within-pole SD s, mapped back to the raw
    space: unit(delta / s^2) (a projection x . delta / s^2 = (x / s) . (delta / s))."""

    def fit(pos, neg, pos_groups=None, neg_groups=None):
        pos, neg = _check(pos, neg, 2)
        _, var = _within(pos, neg)
        return _unit((pos.mean(0) - neg.mean(0)) / var, "zscore")

    return fit


def ledoit_wolf_shrinkage(x: np.ndarray) -> float:
    """Ledoit-Wolf's shrinkage intensity of the covariance of the centred rows `x` [n, d] towards a multiple
    of the identity (scikit-learn's `ledoit_wolf_shrinkage` with `assume_centered=True`), computed from
    the n x n Gram matrix: O(n^2 d)."""
    n, d = x.shape
    x2 = x**2
    trace = x2.sum() / n  # trace of the sample covariance
    mu = trace / d
    gram = x @ x.T
    delta_ = (gram**2).sum() / n**2  # ||X^T X||_F^2 / n^2 = ||X X^T||_F^2 / n^2
    beta_ = (x2.sum(1) ** 2).sum()  # sum of the entries of (X^2)^T X^2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def lda(shrinkage: float | None = None) -> Estimator:
    """Sigma^-1 delta with Sigma the pooled within-pole covariance of the standardised states, shrunk
    towards the identity with Ledoit-Wolf's intensity (or `shrinkage` in [0, 1]); mapped back to the raw
    space like `zscore` (which is its shrinkage-1 limit)."""

    def fit(pos, neg, pos_groups=None, neg_groups=None):
        pos, neg = _check(pos, neg, 2)
        centred, var = _within(pos, neg)
        sd = np.sqrt(var)
        z = centred / sd
        n, _ = z.shape
        alpha = ledoit_wolf_shrinkage(z) if shrinkage is None else float(shrinkage)
        delta = (pos.mean(0) - neg.mean(0)) / sd
        mu = (z**2).sum() / n / z.shape[1]
        # Sigma = a I + b Z^T Z; Woodbury: Sigma^-1 v = (v - Z^T (a/b I + Z Z^T)^-1 Z v) / a
        a, b = max(alpha, 1e-6) * mu, (1 - min(alpha, 1.0)) / n
        if b <= 0:
            w = delta
        else:
            inner = np.linalg.solve((a / b) * np.eye(n) + z @ z.T, z @ delta)
            w = (delta - z.T @ inner) / a
        return _unit(w / sd, "lda")

    return fit


def _logistic_fit(f: np.ndarray, y: np.ndarray, c: float, iterations: int = 50) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (penalty ||beta||^2 / (2 c), intercept free) by Newton's method:
    the minimiser of scikit-learn's `LogisticRegression(C=c)` objective. Returns (beta, intercept)."""
    n, k = f.shape
    x = np.hstack([f, np.ones((n, 1))])
    theta = np.zeros(k + 1)
    penalty = np.r_[np.full(k, 1.0 / c), 0.0]
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(x @ theta, -30, 30)))
        grad = x.T @ (p - y) + penalty * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:k], float(theta[k])


def _grouped_folds(groups: np.ndarray, k: int) -> np.ndarray:
    """Fold of each answer: its group's rank among the sorted distinct groups, modulo k."""
    unique = np.unique(groups)
    return np.searchsorted(unique, groups) % max(1, min(k, len(unique)))


def logistic(cs: Sequence[float] = LOGISTIC_CS, folds: int = LOGISTIC_FOLDS) -> Estimator:
    """L2 logistic regression on the states standardised by the pooled within-pole SD; the inverse penalty
    C is the one of `cs` with the best pairwise accuracy on held-out folds of questions (`folds` inner
    folds, grouped by question; ties: the strongest penalty), refitted on all answers. The fit runs on the
    answers' coordinates in their own span (exact: an L2 solution lies in the span of the data)."""
    cs = tuple(sorted(float(c) for c in cs))

    def fit(pos, neg, pos_groups=None, neg_groups=None):
        from styleprobe.stats import pairwise_accuracy

        pos, neg = _check(pos, neg, 2)
        _, var = _within(pos, neg)
        sd = np.sqrt(var)
        x = np.concatenate([pos, neg]) / sd
        x = x - x.mean(0)
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        if pos_groups is None or neg_groups is None:
            groups = np.r_[np.arange(len(pos)), np.arange(len(neg))]
        else:
            groups = np.r_[np.asarray(pos_groups), np.asarray(neg_groups)]
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        f = u * s  # coordinates in the span of the answers: x = f @ vt
        fold = _grouped_folds(groups, folds)
        best, best_score = cs[0], -np.inf
        if len(cs) > 1 and fold.max() > 0:
            for c in cs:
                scores = []
                for k in np.unique(fold):
                    train, test = fold != k, fold == k
                    if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
                        continue
                    beta, _ = _logistic_fit(f[train], y[train], c)
                    value = f[test] @ beta
                    scores.append(pairwise_accuracy(value[y[test] == 1], value[y[test] == 0]))
                score = np.mean(scores) if scores else -np.inf
                if score > best_score + 1e-12:
                    best, best_score = c, score
        beta, _ = _logistic_fit(f, y, best)
        return _unit((vt.T @ beta) / sd, "logistic")

    return fit


ESTIMATORS: dict[str, Callable[[], Estimator]] = {
    "study": study,
    "mean_diff": mean_difference,
    "zscore": zscore,
    "lda": lda,
    "logistic": logistic,
}
"""Every estimator by the name axes files, `calibrate(estimator=...)` and `--estimator` use."""
WHITENED = ("zscore", "lda", "logistic")  # estimators whose direction is not a difference of means


def get(name: str) -> Estimator:
    """The estimator called `name` (a key of ESTIMATORS)."""
    if name not in ESTIMATORS:
        raise EstimatorError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name]()


def check_names(names: str | Sequence[str]) -> tuple[str, ...]:
    """One estimator name or several, as a tuple of known names (unknown ones raise EstimatorError)."""
    out = (names,) if isinstance(names, str) else tuple(names)
    if not out:
        raise EstimatorError("no estimator given")
    for n in out:
        get(n)
    return out
