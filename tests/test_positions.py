"""Positions in a unit the axis supports: pole units only on a validated axis whose scale is not the floor,
otherwise within-pole spreads; and an interval that carries the error of the fitted centre and scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from styleprobe import stats
from styleprobe.protocol import fingerprint
from styleprobe.protocol.axes import SCALE_FLOOR_SPREADS, AxisSet, centre_scale_errors, fit_axes
from styleprobe.report import readme

NAMES = ["warm_cold", "formal_casual"]


def _axes(scales, low=(0.8, 0.8), errors=None) -> AxisSet:
    spreads = np.array([2.0, 2.0])
    calibration = {
        n: {"pairwise_accuracy": 0.9, "accuracy_ci_low": lo} for n, lo in zip(NAMES, low, strict=True)
    }
    return AxisSet(
        NAMES,
        [("warm", "cold"), ("formal", "casual")],
        np.eye(2, 4),
        np.zeros(2),
        np.asarray(scales, dtype=float),
        "m",
        4,
        [0],
        {},
        spreads=spreads,
        errors=errors,
        calibration=calibration,
    )


def _projections(rng, n=12, seeds=(0, 1)) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {"seed": s, "q_index": range(n), "warm_cold": rng.normal(0.5, 1, n), "formal_casual": 1.0}
        )
        for s in seeds
    ]
    out = pd.concat(frames, ignore_index=True)
    out["formal_casual"] += rng.normal(0, 0.3, len(out))
    return out


def test_a_floored_scale_is_known_and_gives_no_pole_unit():
    axes = _axes([SCALE_FLOOR_SPREADS * 2.0, 1.5])
    assert axes.floored.tolist() == [True, False]
    table = fingerprint.fingerprint_table(_projections(np.random.default_rng(0)), axes)
    assert table["unit"].tolist() == [fingerprint.SPREADS, fingerprint.POLES]
    floored = table.loc["warm_cold"]
    assert np.isnan(floored["beyond_poles"]) and np.isnan(floored["neutral"])
    # the same answers in spread units: the pole-unit mean times scale / spread
    per_question = _projections(np.random.default_rng(0)).groupby("q_index")["warm_cold"].mean()
    assert floored["mean"] == pytest.approx(per_question.mean() * SCALE_FLOOR_SPREADS)


def test_an_axis_that_fails_validation_has_no_pole_unit_either():
    table = fingerprint.fingerprint_table(
        _projections(np.random.default_rng(1)), _axes([1.5, 1.5], (0.55, 0.7))
    )
    assert table["validation"].tolist() == ["weak", "valid"]
    assert table["unit"].tolist() == [fingerprint.SPREADS, fingerprint.POLES]


def test_the_interval_widens_with_the_error_of_the_centre_and_the_scale():
    rng = np.random.default_rng(2)
    exact = fingerprint.fingerprint_table(_projections(rng), _axes([1.5, 1.5]))
    errors = np.array([[0.04, 0.02, 0.0, 15], [0.04, 0.02, 0.0, 15]])
    noisy = fingerprint.fingerprint_table(
        _projections(np.random.default_rng(2)), _axes([1.5, 1.5], errors=errors)
    )
    assert (noisy["mean"] == exact["mean"]).all()
    assert ((noisy["ci_high"] - noisy["ci_low"]) > (exact["ci_high"] - exact["ci_low"]) + 0.05).all()


def test_a_seed_that_shifts_a_whole_run_widens_the_interval():
    rng = np.random.default_rng(3)
    matrix = rng.normal(0, 1, (15, 5))
    shifted = matrix + rng.normal(0, 1, 5)  # every question of a seed moves together
    assert fingerprint.mean_variance(shifted)[0] > 3 * fingerprint.mean_variance(matrix)[0]
    assert fingerprint.mean_variance(matrix[:, :1])[0] == pytest.approx(matrix[:, 0].var(ddof=1) / 15)


def test_fieller_is_unbounded_when_the_denominator_may_be_zero():
    assert stats.ratio_ci(1.0, 0.1, 0.01, 0.04, 0.0, 20) == (-np.inf, np.inf)
    low, high = stats.ratio_ci(1.0, 2.0, 0.01, 0.0, 0.0, 1e6)  # a known denominator: the z interval / 2
    assert (low, high) == pytest.approx((0.5 - 1.96 * 0.05, 0.5 + 1.96 * 0.05), abs=1e-3)


def test_the_cross_fitting_variance_is_that_of_the_per_question_halves():
    rng = np.random.default_rng(4)
    p, n = rng.normal(1, 1, 10), rng.normal(-1, 1, 10)
    var_c, var_s, cov, k = centre_scale_errors(p, n, np.arange(10), np.arange(10), (p, n))
    assert k == 10 and var_c == pytest.approx(np.var((p + n) / 2, ddof=1) / 10)
    assert cov == pytest.approx(np.cov((p + n) / 2, (p - n) / 2)[0, 1] / 10) and var_s > 0


def test_fitted_axes_record_their_errors_and_a_batch_fits_like_one():
    rng = np.random.default_rng(5)
    pos, neg = rng.normal(0.3, 1, (2, 12, 8)), rng.normal(0, 1, (2, 12, 8))
    axes = fit_axes({"x": (pos[0], neg[0])}, {"x": ("a", "b")}, model_id="m", layers=[0], aggregation={})
    assert axes.errors.shape == (1, 4) and axes.errors[0, 3] == 12
    from styleprobe.protocol.axes import axis_direction

    batch = axis_direction(pos, neg)
    np.testing.assert_allclose(batch[0], axis_direction(pos[0], neg[0]), atol=1e-6)


def _baseline(units: list[str]) -> fingerprint.BaselineResult:
    table = pd.DataFrame(
        {"mean": 0.5, "ci_low": 0.1, "ci_high": 0.9, "std": 1.0, "unit": units, "beyond_poles": np.nan},
        index=NAMES,
    )
    table["validation"] = "chance"
    empty = pd.DataFrame()
    return fingerprint.BaselineResult(
        "quick", [0], "m", "id", table, empty, empty, np.nan, np.nan, [], empty, 0, 8, {}, empty
    )


def test_the_results_block_never_calls_a_spread_unit_half_the_pole_separation():
    from styleprobe.protocol.calibration import CalibrationResult

    evaluation = pd.DataFrame(
        {"pairwise_accuracy": 0.7, "accuracy_ci_low": 0.4, "accuracy_ci_high": 0.9, "dprime": 0.5},
        index=NAMES,
    )
    settings = {"model_name": "m", "n_calibration": 15, "n_evaluation": 5}
    calibration = CalibrationResult("m", "quick", "crossfit", evaluation, *([None] * 5), settings, [], None)
    text = readme.headline(calibration, _baseline([fingerprint.SPREADS] * 2))
    assert "half the held-out pole separation" not in text and "within-pole standard deviations" in text
    assert "(spreads)" in readme.axes_table(calibration, _baseline([fingerprint.SPREADS] * 2))


def test_the_paper_states_how_far_out_answers_lie_only_on_axes_with_a_pole_unit():
    numbers = _baseline([fingerprint.SPREADS] * 2).paper()
    assert "%" not in numbers["beyond_poles"] and "not stated" in numbers["beyond_poles"]


def test_the_calibration_text_calls_no_axis_separated_when_none_validates():
    from styleprobe.protocol.calibration import separation_sentence
    from styleprobe.protocol.validity import MARK

    evaluation = pd.DataFrame(
        {"pairwise_accuracy": [0.74, 0.6], "accuracy_ci_low": [0.48, 0.37]}, index=NAMES
    )
    text = separation_sentence(evaluation, [])
    assert "best-separated" not in text and f"warm/cold{MARK}" in text and "0.48" in text
    assert "best-separated is formal/casual" in separation_sentence(evaluation, ["formal_casual"])
