"""Notebook 12's simulation harness: the coverage and false-positive estimators, the bounds, the checks'
sample sizes and its typed result."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml

from styleprobe.analyses import drift
from styleprobe.analyses import statistics_check as sc
from styleprobe.protocol.axes import centre_and_scale
from styleprobe.protocol.profiles import DRIFT_PROFILES, PROFILES
from styleprobe.protocol.spec import Protocol
from styleprobe.report.results import result_classes

DESIGN = sc.Design(
    n_axes=3, retest_seeds=3, benchmark_seeds=3, judge_answers=8, judge_scale=(-2, -1, 0, 1, 2)
)


def _normal(n: int):
    return lambda rng: (rng.normal(1.0, 2.0, n),)


def _t_interval(values: np.ndarray) -> tuple[float, float]:
    return tuple(scipy.stats.ttest_1samp(values, 0.0).confidence_interval(0.95))


def test_an_exact_interval_covers_its_nominal_level_within_simulation_error():
    est = sc.coverage(_t_interval, _normal(6), 1.0, n_sims=2000, seed=1)
    assert est.n_sims == 2000 and est.n_undefined == 0
    assert est.mc_se == pytest.approx(np.sqrt(est.share * (1 - est.share) / 2000))
    assert abs(est.share - 0.95) < 3 * est.mc_se


def test_a_too_narrow_interval_is_caught():
    def narrow(values: np.ndarray) -> tuple[float, float]:  # a z-interval with the plug-in sd at n = 6
        half = 1.96 * values.std() / np.sqrt(len(values))
        return values.mean() - half, values.mean() + half

    est = sc.coverage(narrow, _normal(6), 1.0, n_sims=2000, seed=1)
    assert est.share < sc.COVERAGE_BOUND - 3 * est.mc_se


def test_an_undefined_interval_counts_as_a_miss():
    def sometimes(values: np.ndarray) -> tuple[float, float]:
        return (np.nan, np.nan) if values[0] > 1.0 else (-np.inf, np.inf)

    est = sc.coverage(sometimes, _normal(3), 1.0, n_sims=1000, seed=0)
    assert est.n_undefined == round((1 - est.share) * 1000) > 0
    assert abs(est.share - 0.5) < 4 * est.mc_se


def test_rule_rates_always_never_and_at_level():
    assert sc.rejection_rate(lambda v: True, _normal(3), n_sims=50, seed=0).share == 1.0
    never = sc.rejection_rate(lambda v: False, _normal(3), n_sims=50, seed=0)
    assert never.share == 0.0 and never.mc_se == 0.0
    null = lambda rng: (rng.normal(0.0, 1.0, 8),)  # noqa: E731
    level = sc.rejection_rate(
        lambda v: scipy.stats.ttest_1samp(v, 0.0).pvalue < 0.05, null, n_sims=4000, seed=2
    )
    assert abs(level.share - 0.05) < 3 * level.mc_se and level.share <= sc.fpr_bound(0.05, 4000)


def test_the_same_seed_gives_the_same_estimate():
    one = sc.coverage(_t_interval, _normal(5), 1.0, n_sims=200, seed=7)
    assert one == sc.coverage(_t_interval, _normal(5), 1.0, n_sims=200, seed=7)
    assert one != sc.coverage(_t_interval, _normal(5), 1.0, n_sims=200, seed=8)


def test_fpr_bound_allows_two_simulation_errors_at_the_nominal_level():
    assert sc.fpr_bound(0.05, 1000) == pytest.approx(0.05 + 2 * np.sqrt(0.05 * 0.95 / 1000))
    assert sc.fpr_bound(0.05, 4000) < sc.fpr_bound(0.05, 1000)


def _check(kind: str, share: float, nominal: float) -> sc.Check:
    est = sc.Estimate(share, 0.01, 1000, 0)
    return sc.Check("x", kind, "n", nominal, "setting", lambda n_sims, seed: est)


def test_rows_hold_only_within_their_bounds():
    assert _check(sc.COVERAGE, 0.93, 0.95).row("quick", 1000, 0)["holds"]
    assert not _check(sc.COVERAGE, 0.92, 0.95).row("quick", 1000, 0)["holds"]
    assert _check(sc.FALSE_POSITIVE, 0.06, 0.05).row("quick", 1000, 0)["holds"]
    row = _check(sc.FALSE_POSITIVE, 0.07, 0.05).row("quick", 1000, 0)
    assert not row["holds"] and row["bound"] == sc.fpr_bound(0.05, 1000)


def test_the_checks_use_the_profiles_sizes():
    for name in ("quick", "paper"):
        profile, drift_sizes = PROFILES[name], DRIFT_PROFILES[name]
        found = sc.checks(profile, drift_sizes, DESIGN)
        sizes = {c.name: c.n for c in found}
        assert sizes["fingerprint mean CI"] == f"{profile.n_baseline} questions"
        assert sizes["held-out accuracy CI"] == f"{profile.n_evaluation} answers per pole"
        assert sizes["neutral obedience CI"] == f"{profile.n_calibration} calibration questions"
        assert sizes["drift mean slope CI"].startswith(f"{drift_sizes.n_scenarios} conversations")
        assert all(c.kind in (sc.COVERAGE, sc.FALSE_POSITIVE) for c in found)
        assert {c.nominal for c in found if c.kind == sc.COVERAGE} == {sc.NOMINAL_COVERAGE}


def test_truths_of_the_simulated_data():
    assert sc.icc_truth() == pytest.approx(0.5, abs=0.01)
    # Spearman of a continuous pair with correlation r is 6/pi asin(r/2); rounding the rating lowers it
    continuous = 6 / np.pi * np.arcsin(sc.JUDGE_CORRELATION / 2)
    assert 0.8 * continuous < sc.judge_truth(DESIGN.judge_scale, 200_000) < continuous
    pos, neg = sc._poles(np.random.default_rng(0), 200_000, sc.SEPARATED_AUC)
    assert np.mean(pos[:20_000, None] > neg[None, :20_000]) == pytest.approx(sc.SEPARATED_AUC, abs=0.01)
    pos, neg, neutral = sc._calibration(np.random.default_rng(0), 200_000)
    centre, scale = centre_and_scale(pos, neg)
    assert np.mean(pos[:20_000, None] > neg[None, :20_000]) == pytest.approx(sc.SEPARATED_AUC, abs=0.01)
    assert (neutral.mean() - centre) / scale == pytest.approx(sc.DEFAULT_POSITION, abs=0.02)
    low, high = sc._obedience_ci(pos[:30], neg[:30], neutral[:30])
    assert low < np.mean(pos[:30] - neutral[:30]) / centre_and_scale(pos[:30], neg[:30])[1] < high


def test_every_check_runs_and_the_result_round_trips():
    table = sc.check_table(["quick"], DESIGN, n_sims=4)
    pd.testing.assert_frame_equal(sc.check_table(["quick"], DESIGN, n_sims=4, jobs=2), table)
    assert table["measured"].between(0, 1).all() and table["profile"].eq("quick").all()
    assert set(table["kind"]) == {sc.COVERAGE, sc.FALSE_POSITIVE}
    result = sc.StatisticsCheckResult(design=asdict(DESIGN), n_sims=4, seed=0, table=table)
    again = sc.StatisticsCheckResult.from_dict(result.to_dict())
    pd.testing.assert_frame_equal(again.table, result.table, check_dtype=False, check_index_type=False)
    assert result_classes()["statistics_check"] is sc.StatisticsCheckResult
    assert sc.StatisticsCheckResult.needs == () and sc.StatisticsCheckResult.cross_model
    assert list(result.paper_tables()) == ["statistics_check_table"]
    assert result.paper()["n_checks"] == len(table)


def test_the_simulated_slopes_are_drift_s_per_conversation_slopes():
    values = sc._conversations(np.random.default_rng(0), 4, 6, 0.1, n_axes=2)
    turns = np.arange(1, 7)
    expected = [[drift.ols_slope(turns, values[c, :, a]) for a in range(2)] for c in range(4)]
    np.testing.assert_allclose(sc._slopes(values), expected)
    np.testing.assert_allclose(sc._slopes(values[..., 0]), np.array(expected)[:, 0])


def test_the_design_reads_the_number_of_axes_and_the_judge_scale_from_the_protocol():
    protocol = Protocol.load()
    design = sc.Design.of(protocol, retest_seeds=5, benchmark_seeds=3, judge_answers=8)
    scale = yaml.safe_load(protocol.file("judge.yaml").read_text())["scale"]
    assert design.n_axes == len(protocol.names) > 1 and design.judge_scale == tuple(scale)
