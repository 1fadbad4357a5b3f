"""The axis estimators: each matches the implementation it stands for, and whitening finds a style signal
that lies in a low-variance direction under a few high-variance ("massive activation") dimensions, where
the plain difference of means sees only the massive dimensions' noise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from styleprobe import stats
from styleprobe.engine.extraction import Aggregation
from styleprobe.protocol import estimators, selection
from styleprobe.protocol.axes import AxesError, fit_axes, fit_direction

DIM, N = 576, 30  # SmolLM2's hidden size; the paper profile's calibration answers per pole


def massive(rng, n, shift=0.3, dim=DIM, n_massive=5, n_quiet=20, signal=None):
    """Answers of both poles [n, dim] each: independent dimensions, a few of standard deviation 30
    ("massive"), a block of `n_quiet` of standard deviation 0.1 that carries the style (the poles differ by
    2 * shift along the unit direction `signal` inside it), the others of standard deviation 1."""
    sd = np.ones(dim)
    sd[:n_massive] = 30.0
    quiet = slice(n_massive, n_massive + n_quiet)
    sd[quiet] = 0.1
    if signal is None:
        signal = np.zeros(dim)
        signal[quiet] = rng.normal(size=n_quiet)
        signal /= np.linalg.norm(signal)
    draw = lambda sign: rng.normal(size=(n, dim)) * sd + sign * shift * signal  # noqa: E731
    return draw(+1), draw(-1), signal, sd


def held_out_accuracy(direction, rng, signal, n=300):
    pos, neg, _, _ = massive(rng, n, signal=signal)
    return stats.pairwise_accuracy(pos @ direction, neg @ direction)


def test_every_estimator_returns_a_unit_direction_from_the_negative_to_the_positive_pole():
    rng = np.random.default_rng(0)
    d = np.zeros(40)
    d[3] = 1.0
    pos, neg = rng.normal(size=(30, 40)) + 2 * d, rng.normal(size=(30, 40)) - 2 * d
    for name in estimators.ESTIMATORS:
        w = estimators.get(name)(pos, neg, np.arange(30), np.arange(30))
        assert np.linalg.norm(w) == pytest.approx(1.0)
        assert w @ d > 0.8, name  # the planted direction, positive pole first
    with pytest.raises(estimators.EstimatorError, match="unknown estimator"):
        estimators.get("pca")
    with pytest.raises(AxesError, match="no direction"):
        fit_direction(pos, pos, "mean_diff")


def test_the_study_estimator_is_the_trimmed_mean_difference_axes_always_used():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(size=(25, 16)) + 1, rng.normal(size=(25, 16))
    expected = stats.trimmed_mean(pos, 0.1) - stats.trimmed_mean(neg, 0.1)
    w = estimators.get("study")(pos, neg, None, None)
    np.testing.assert_allclose(w, expected / np.linalg.norm(expected), atol=1e-12)


def test_lda_is_scikit_learns_ledoit_wolf_shrinkage_lda():
    """Ours solves an n x n system (Woodbury); scikit-learn's LedoitWolf builds the d x d covariance. Same
    shrinkage, same direction; and close to `LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")`,
    which standardises each pole separately instead of pooling."""
    from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(2)
    pos, neg, _, _ = massive(rng, N, dim=120)
    centred = np.concatenate([pos - pos.mean(0), neg - neg.mean(0)])
    sd = np.sqrt((centred**2).sum(0) / (len(centred) - 2))
    z = centred / sd
    assert estimators.ledoit_wolf_shrinkage(z) == pytest.approx(
        ledoit_wolf_shrinkage(z, assume_centered=True)
    )
    cov = LedoitWolf(assume_centered=True).fit(z).covariance_
    reference = np.linalg.solve(cov, (pos.mean(0) - neg.mean(0)) / sd) / sd
    ours = estimators.get("lda")(pos, neg, None, None)
    assert ours @ reference / np.linalg.norm(reference) > 0.99999
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    coef = lda.fit(np.concatenate([pos, neg]), np.r_[np.ones(N), np.zeros(N)]).coef_[0]
    assert ours @ coef / np.linalg.norm(coef) > 0.95


def test_the_logistic_fit_is_scikit_learns_and_its_penalty_is_chosen_by_grouped_folds():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    f, y = rng.normal(size=(40, 12)), np.r_[np.ones(20), np.zeros(20)]
    f[:20, 0] += 1.0
    beta, intercept = estimators._logistic_fit(f, y, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = LogisticRegression(C=0.3, tol=1e-10, max_iter=10_000).fit(f, y)
    np.testing.assert_allclose(beta, ref.coef_[0], atol=1e-5)
    assert intercept == pytest.approx(ref.intercept_[0], abs=1e-5)
    # in the span of the answers (n < d) the fit is exact: the same direction as on all dimensions
    pos, neg = rng.normal(size=(15, 60)) + 0.5, rng.normal(size=(15, 60))
    one = estimators.logistic(cs=(0.1,))(pos, neg, None, None)
    x = np.concatenate([pos, neg])
    sd = np.sqrt((np.concatenate([pos - pos.mean(0), neg - neg.mean(0)]) ** 2).sum(0) / (len(x) - 2))
    labels = np.r_[np.ones(15), np.zeros(15)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = LogisticRegression(C=0.1, tol=1e-10, max_iter=10_000).fit(x / sd - (x / sd).mean(0), labels)
    expected = full.coef_[0] / sd
    assert one @ expected / np.linalg.norm(expected) > 0.9999
    assert estimators._grouped_folds(np.array([7, 7, 3, 3, 9, 9]), 2).tolist() == [1, 1, 0, 0, 0, 0]


def test_whitening_finds_a_quiet_signal_under_massive_dimensions_where_the_mean_difference_fails():
    """At the paper profile's n (30 answers per pole, 576 dimensions): the style lies in a block of
    low-variance dimensions, five dimensions have 300 times its variance. The difference of (trimmed) means
    is dominated by the massive dimensions' sampling noise and separates new answers at chance; the
    whitened estimators separate them almost perfectly."""
    rng = np.random.default_rng(4)
    pos, neg, signal, _ = massive(rng, N)
    accuracy = {
        name: held_out_accuracy(estimators.get(name)(pos, neg, np.arange(N), np.arange(N)), rng, signal)
        for name in estimators.ESTIMATORS
    }
    assert accuracy["mean_diff"] < 0.62 and accuracy["study"] < 0.62, accuracy
    assert min(accuracy["zscore"], accuracy["lda"], accuracy["logistic"]) > 0.9, accuracy


def test_nested_selection_picks_the_whitened_estimator_and_the_reading_that_carries_the_style():
    """Two readings of the same answers: one carries the quiet style signal under massive dimensions, the
    other is noise alone. Nested selection over readings x {mean_diff, zscore, lda} chooses the signal's
    reading with a whitened estimator, its nested estimate says so, and the axis it fits separates new
    answers and points along the whitened truth."""
    rng = np.random.default_rng(5)
    pos, neg, signal, sd = massive(rng, N)
    noise = rng.normal(size=(2 * N, DIM)) * sd
    readings = [Aggregation((3,), (1.0,), 1.0), Aggregation((7,), (1.0,), 1.0)]
    data = selection.AxisData(
        np.stack([noise, np.concatenate([pos, neg])]),
        np.r_[np.ones(N), -np.ones(N)],
        np.r_[np.arange(N), np.arange(N)],
    )
    found = selection.select(data, readings, ["mean_diff", "zscore", "lda"])
    assert found.choice.reading == readings[1]
    assert found.choice.estimator in estimators.WHITENED
    assert found.nested.accuracy > 0.85 and found.nested.ci_low > 0.7
    assert all(c.endswith(readings[1].label()) for c in found.nested.choices)
    w = estimators.get(found.choice.estimator)(pos, neg, None, None)
    truth = signal / sd**2  # Sigma^-1 delta of the generating distribution
    assert w @ truth / np.linalg.norm(truth) > 0.9
    assert held_out_accuracy(w, rng, signal) > 0.9
    # the plain mean difference alone, at the right reading, stays near chance under nested CV
    plain = selection.select(data.part(np.ones(2 * N, bool)), readings[1:] + readings[:1], ["mean_diff"])
    assert plain.nested.accuracy < 0.7


def test_fit_axes_with_a_whitened_estimator_steers_with_the_plain_mean_difference():
    rng = np.random.default_rng(6)
    pos, neg, _, _ = massive(rng, N, dim=64, n_quiet=8)
    poles = {"a_b": ("a", "b")}
    axes = fit_axes({"a_b": (pos, neg)}, poles, estimator="lda", model_id="m", layers=[0], aggregation={})
    plain = fit_axes(
        {"a_b": (pos, neg)}, poles, estimator="mean_diff", model_id="m", layers=[0], aggregation={}
    )
    assert axes.estimators == ["lda"] and axes.steering is not None
    np.testing.assert_allclose(axes.steering_vector("a_b"), plain.vectors[0] * plain.scales[0], rtol=1e-5)
    assert abs(axes.vectors[0] @ plain.vectors[0]) < 0.9  # the whitened axis is another direction
    assert plain.steering is None  # a difference of means steers with itself, as before
    np.testing.assert_allclose(plain.steering_vector(0), plain.vectors[0] * plain.scales[0])
