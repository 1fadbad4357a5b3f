"""Notebook 12's simulation harness: the coverage and false-positive estimators, the bounds, the checks'
sample sizes and its typed result."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml

from styleprobe import stats
from styleprobe.analyses import drift
from styleprobe.analyses import simulation as sim
from styleprobe.analyses import statistics_cases as cases
from styleprobe.analyses import statistics_check as sc
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
    return sc.Check("x", kind, "n", nominal, "normal", "setting", lambda n_sims, seed: est)


def test_rows_hold_only_within_their_bounds():
    assert _check(sc.COVERAGE, 0.93, 0.95).row("quick", 1000, 0)["holds"]
    assert not _check(sc.COVERAGE, 0.92, 0.95).row("quick", 1000, 0)["holds"]
    assert _check(sc.FALSE_POSITIVE, 0.06, 0.05).row("quick", 1000, 0)["holds"]
    row = _check(sc.FALSE_POSITIVE, 0.07, 0.05).row("quick", 1000, 0)
    assert not row["holds"] and row["bound"] == sc.fpr_bound(0.05, 1000)


def test_the_checks_use_the_sizes_each_command_uses():
    for name in ("quick", "paper"):
        profile, drift_sizes = PROFILES[name], DRIFT_PROFILES[name]
        found = sc.checks(profile, drift_sizes, DESIGN)
        sizes = {(c.name, c.n) for c in found}
        cli = f"x {len(profile.seeds)} seed(s)"
        assert any(n == "fingerprint position CI" and cli in size for n, size in sizes)
        assert any(
            n == "fingerprint position CI" and f"x {DESIGN.retest_seeds} seed(s)" in s for n, s in sizes
        )
        assert ("held-out accuracy CI", f"{profile.n_evaluation} answers per pole") in sizes
        assert ("neutral obedience CI", f"{profile.n_calibration} calibration questions") in sizes
        assert any(
            n == "drift mean slope CI" and s.startswith(f"{drift_sizes.n_scenarios} conv") for n, s in sizes
        )
        assert all(c.kind in (sc.COVERAGE, sc.FALSE_POSITIVE, sc.POWER) for c in found)
        assert {c.nominal for c in found if c.kind == sc.COVERAGE} == {0.95}


def test_every_family_and_hard_case_is_drawn():
    found = sc.checks(PROFILES["quick"], DRIFT_PROFILES["quick"], DESIGN)
    conditions: dict[str, set[str]] = {}
    for check in found:
        conditions.setdefault(check.name, set()).add(check.condition)
    for name in ("baseline retest ICC CI", "base/instruct scale ratio CI", "held-out accuracy CI"):
        assert all(any(f in cond for cond in conditions[name]) for f in sim.FAMILIES), name
    assert {f"seed sd {s:g}" for s in sim.SEED_SDS} <= {c.split(", ")[-1] for c in conditions["compare flag"]}
    assert any("axes r 0.5" in c for c in conditions["benchmark pass"] | conditions["drift significance"])
    assert {f"contrasts skew {s:+g}" for s in sim.CONTRAST_SKEWS} <= conditions["benchmark pass"]
    assert {f"d′ {d:g}, normal" for d in cases.DPRIMES} <= conditions["fingerprint position CI"]
    accuracies = {c.split(",")[0] for c in conditions["axis validation"]}
    assert accuracies == {f"true accuracy {a:g}" for a in cases.ACCURACIES}


def test_the_families_are_standardised_with_the_stated_skew():
    rng = np.random.default_rng(0)
    for family in sim.FAMILIES:
        x = sim.effects(rng, family, (400_000,))
        assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.02, family
    assert scipy.stats.skew(sim.effects(rng, "gamma(4)", (400_000,))) == pytest.approx(1.0, abs=0.05)
    for skew in sim.CONTRAST_SKEWS:
        assert scipy.stats.skew(sim.skewed(rng, skew, (400_000,))) == pytest.approx(skew, abs=0.1)


def test_truths_of_the_simulated_data():
    assert sim.TwoWay(seed_sd=0.3).icc == pytest.approx(0.5, abs=0.01)
    # Spearman of a continuous pair with correlation r is 6/pi asin(r/2); rounding the rating lowers it
    continuous = 6 / np.pi * np.arcsin(cases.JUDGE_CORRELATION / 2)
    assert 0.8 * continuous < cases.judge_truth(DESIGN.judge_scale, 200_000) < continuous
    for family in ("normal", "chi²(1)"):
        pos, neg = sim.held_out_poles(np.random.default_rng(1), 1, 4000, 0.7, family)
        other = np.roll(neg[0], 1)  # answers to other questions
        assert np.mean(pos[0][:, None] > other[None, :]) == pytest.approx(0.7, abs=0.02)


def test_fitted_axes_recover_the_default_and_the_obedience_when_separable():
    fit = sim.States(4.0).fit(np.random.default_rng(2), 200, 30, 10)
    assert not fit.floored.any()
    poles, _ = fit.truth
    assert np.median(poles) == pytest.approx(sim.States(4.0).default, abs=0.1)
    raw = fit.baseline(np.random.default_rng(3), 30, 5, 0.0)
    estimate = fit.normalised(raw).mean((-1, -2))
    assert np.median(estimate - poles) == pytest.approx(0, abs=0.05)
    pos, neg, neutral = fit.held
    obey = (pos - neutral).mean(-1) / ((pos - neg).mean(-1) / 2)
    assert np.median(obey) == pytest.approx(fit.truth_obey[0], abs=0.05)


def test_the_position_interval_covers_where_a_t_interval_without_the_calibration_did_not():
    """Paper sizes, d′ 1: the old interval (t over baseline questions) leaves out the fitted centre and
    scale; `fingerprint.position_ci` carries them."""
    sizes = (30, 10, 30)
    estimate = cases._position(sim.States(1.0), sizes, 5, 0.0, 600, 4)
    assert estimate.share >= sc.COVERAGE_BOUND - 2 * estimate.mc_se
    fit, _ = cases._fitted(sim.States(1.0), 30, 10, 600, 4)
    values = fit.normalised(fit.baseline(np.random.default_rng(5), 30, 5, 0.0)).mean(-1)
    low, high = stats.mean_ci(values)
    spreads = ~fit.floored
    naive = np.mean(((low <= fit.truth[0]) & (fit.truth[0] <= high))[spreads])
    assert naive < 0.85


def test_limits_cover_rows_by_check_condition_and_size():
    limit = sc.Limit("compare flag", "seed sd", "why", size="1 seed(s) a side")
    row = pd.Series(
        {"check": "compare flag", "condition": "normal, seed sd 0.3", "n": "15 q x 1 seed(s) a side"}
    )
    assert limit.covers(row)
    assert not limit.covers(row.replace("15 q x 1 seed(s) a side", "15 q x 5 seed(s) a side"))
    assert not limit.covers(row.replace("compare flag", "benchmark pass"))


def test_every_check_runs_and_the_result_round_trips():
    table = sc.check_table(["quick"], DESIGN, n_sims=6)
    pd.testing.assert_frame_equal(sc.check_table(["quick"], DESIGN, n_sims=6, jobs=2), table)
    measured = table.loc[table["n_sims"] > 0, "measured"]
    assert measured.between(0, 1).all() and table["profile"].eq("quick").all()
    assert set(table["kind"]) == {sc.COVERAGE, sc.FALSE_POSITIVE, sc.POWER}
    result = sc.StatisticsCheckResult(design=asdict(DESIGN), n_sims=6, seed=0, table=table)
    again = sc.StatisticsCheckResult.from_dict(result.to_dict())
    pd.testing.assert_frame_equal(again.table, result.table, check_dtype=False, check_index_type=False)
    assert result_classes()["statistics_check"] is sc.StatisticsCheckResult
    assert sc.StatisticsCheckResult.needs == () and sc.StatisticsCheckResult.cross_model
    assert list(result.paper_tables()) == ["statistics_check_table"]
    numbers = result.paper()
    assert numbers["n_checks"] == len(table) and isinstance(numbers["failing"], str)
    assert numbers["power"] == result.power_sentence() and "compare power" in numbers["power"]


def test_the_failing_sentence_names_each_check_condition_and_reason():
    rows = [
        {"check": "a", "profile": "quick", "n": "5", "condition": "t3", "holds": False, "limit": "heavy"},
        {
            "check": "a",
            "profile": "paper",
            "n": "10",
            "condition": "chi²(1)",
            "holds": False,
            "limit": "heavy",
        },
        {"check": "b", "profile": "quick", "n": "5", "condition": "normal", "holds": True, "limit": ""},
    ]
    result = sc.StatisticsCheckResult(design={}, n_sims=1, seed=0, table=pd.DataFrame(rows))
    text = result.failing_conditions()
    assert text == "a under t3 (quick, 5); chi²(1) (paper, 10): heavy" and result.unstated.empty


def test_the_power_sentence_gives_each_rule_s_range_over_families_per_size():
    def row(check, condition, measured, profile="quick"):
        return {
            "check": check,
            "kind": sc.POWER,
            "profile": profile,
            "n": "5",
            "condition": condition,
            "measured": measured,
            "holds": True,
        }

    rows = [
        row("axis validation", "true accuracy 0.8, normal", 0.09),
        row("axis validation", "true accuracy 0.8, t3", 0.145),
        row("axis validation", "true accuracy 0.65, normal", 0.01),
        row("compare power", "normal, seed sd 0.1", 0.692),
        row("compare power", "normal, seed sd 0.1", 0.927, profile="paper"),
    ]
    result = sc.StatisticsCheckResult(design={}, n_sims=1, seed=0, table=pd.DataFrame(rows))
    assert result.power_sentence() == (
        "axis validation at true accuracy 0.8: 9-14 % (quick, 5); axis validation at true accuracy 0.65: 1 %"
        " (quick, 5); compare power: 69 % (quick, 5); compare power: 93 % (paper, 5)"
    )


def test_the_simulated_slopes_are_drift_s_per_conversation_slopes():
    values = np.random.default_rng(0).normal(size=(4, 6, 2))
    turns = np.arange(1, 7)
    expected = [[drift.ols_slope(turns, values[c, :, a]) for a in range(2)] for c in range(4)]
    np.testing.assert_allclose(cases.slopes(values), expected)
    np.testing.assert_allclose(cases.slopes(values[None])[0], expected)


def test_drift_s_interval_is_the_t_interval_the_check_measures():
    slopes = np.random.default_rng(1).normal(0.02, 0.02, (8, 3))
    table = drift.drift_tests(slopes, slopes[:4])
    low, high = stats.mean_ci(slopes.T)
    np.testing.assert_allclose(table[["ci_low", "ci_high"]].to_numpy(), np.column_stack([low, high]))


def test_the_design_reads_the_number_of_axes_and_the_judge_scale_from_the_protocol():
    protocol = Protocol.load()
    design = sc.Design.of(protocol, retest_seeds=5, benchmark_seeds=3, judge_answers=8)
    scale = yaml.safe_load(protocol.file("judge.yaml").read_text())["scale"]
    assert design.n_axes == len(protocol.names) > 1 and design.judge_scale == tuple(scale)
