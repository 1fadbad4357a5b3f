import numpy as np
import pandas as pd
import pytest
import scipy.stats

from styleprobe.analyses import instruction_benchmark as benchmark
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.spec import Protocol
from styleprobe.protocol.validity import MARK

NAMES = ["warm_cold", "verbose_concise", "confident_cautious"]
SPECS = {n: Protocol.load().axes[n] for n in NAMES}
SEEDS, QUESTIONS = [0, 1, 2], [f"q{i}?" for i in range(8)]


def _axes(hidden=4):
    vectors = np.eye(hidden, dtype=np.float32)[: len(NAMES)]
    return AxisSet(
        names=NAMES,
        poles=[SPECS[n].poles for n in NAMES],
        vectors=vectors,
        centres=np.zeros(len(NAMES)),
        scales=np.ones(len(NAMES)),
        hidden_size=hidden,
        normalisation="median_iqr",
        model_id="synthetic",
        layers=[0],
        aggregation=Aggregation((0,), (1.0,), 0.9).to_dict(),
    )


def _pole_of(item) -> int:
    """The pole an item's instruction asks for, read from the protocol's texts (not from SCENARIOS)."""
    if item.meta["scenario"] == "control":
        return 0
    spec = SPECS[item.meta["axis"]]
    for pole in (1, -1):
        if item.system == spec.instruction(pole, benchmark.SYSTEM_SET):
            return pole
        if item.question.startswith(spec.nudges[0 if pole == 1 else 1]):
            return pole
    raise AssertionError(f"{item.id}: no instruction of its axis")


def _result(items, move, noise=0.1, seed=0):
    """States where an item on axis i moves e_i by move(scenario, pole its instruction names)."""
    rng = np.random.default_rng(seed)
    states = rng.normal(scale=noise, size=(len(items), 1, 4)).astype(np.float32)
    for k, it in enumerate(items):
        if it.meta["scenario"] != "control":
            states[k, 0, NAMES.index(it.meta["axis"])] += move(it.meta["scenario"], _pole_of(it))
    records = pd.DataFrame(
        [
            {"id": it.id, **it.meta, "question": it.question, "response": f"answer {k}", "n_measured": 3}
            for k, it in enumerate(items)
        ]
    )
    return StageResult(records, states, Aggregation((0,), (1.0,), 0.9))


def _shifts(move_first, move_second):
    first = benchmark.first_turn_items(SPECS, QUESTIONS, SEEDS)
    res1 = _result(first, move_first)
    second = benchmark.second_turn_items(SPECS, res1, QUESTIONS, SEEDS)
    return benchmark.paired_shifts(_axes(), [res1, _result(second, move_second, seed=1)])


def test_items_pair_every_scenario_with_a_control_on_the_same_question():
    first = benchmark.first_turn_items(SPECS, ["q1?", "q2?"], seeds=[0, 1])
    assert len(first) == 2 * 2 * (1 + 2 * len(NAMES))
    sys_items = [it for it in first if it.system]
    assert {it.system for it in sys_items if it.meta["axis"] == "warm_cold"} == set(
        SPECS["warm_cold"].instructions[benchmark.SYSTEM_SET]
    )
    res = _result(first, lambda scenario, pole: 0.0)
    second = benchmark.second_turn_items(SPECS, res, ["f1?", "f2?"], seeds=[0, 1])
    control = next(it for it in second if it.id == "seed-1/turn2-control/01")
    answered = res.records.set_index("id").loc["seed-1/control/01", "response"]
    assert control.history == (("q2?", answered),) and control.question == "f2?"
    nudged = next(it for it in second if it.id == "seed-1/increase/warm_cold/01")
    assert nudged.question.endswith("f2?") and nudged.question != "f2?" and nudged.history == control.history


def test_every_scenario_is_signed_towards_the_pole_its_instruction_names():
    # answers move by +1 towards whichever pole the instruction's text asks for: every signed shift is +1
    shifts = _shifts(lambda s, pole: float(pole), lambda s, pole: float(pole))
    means = shifts.groupby("scenario")["shift"].mean()
    assert set(means.index) == set(benchmark.SCENARIOS)
    assert means.to_numpy() == pytest.approx(1.0, abs=0.1)
    # and each scenario's opposite asks for the other pole on the same questions
    items = benchmark.first_turn_items(SPECS, QUESTIONS, SEEDS)
    items += benchmark.second_turn_items(SPECS, _result(items, lambda s, p: 0.0), QUESTIONS, SEEDS)
    asked = {}
    for it in items:
        if it.meta["scenario"] != "control":
            key = (it.meta["scenario"], it.meta["axis"], it.seed, it.meta["q_index"])
            asked[key] = (_pole_of(it), it.history, it.question.split()[-1])
    for (scenario, *rest), (pole, history, question) in asked.items():
        other_pole, other_history, other_question = asked[(benchmark.OPPOSITE[scenario], *rest)]
        assert other_pole == -pole and (other_history, other_question) == (history, question)


def test_a_scenario_passes_on_the_contrast_with_its_opposite_not_on_its_own_shift():
    # both system prompts move answers towards the positive pole alike (the warm/cold pattern);
    # the "more positive" request works and the "more negative" one moves answers a little the wrong way
    shifts = _shifts(lambda s, pole: 1.0, lambda s, pole: 1.0 if pole == 1 else 0.3)
    assert len(shifts) == len(SEEDS) * len(QUESTIONS) * len(NAMES) * 4
    table = benchmark.scenario_table(shifts).set_index(["axis", "scenario"])
    positive = table.xs("system_positive", level="scenario")
    assert (positive["ci_low"] > 0.5).all()  # yesterday's rule (CI of the own shift above 0) passed it
    assert (positive["opposite_shift"] > 0.5).all() and (positive["contrast"].abs() < 0.2).all()
    assert not positive["passed"].any()
    assert table.xs("increase", level="scenario")["passed"].all()
    decrease = table.xs("decrease", level="scenario")
    assert (decrease["contrast"] > 0.5).all()  # it differs from the request for the other pole ...
    assert not decrease["passed"].any() and not decrease["passed_lenient"].any()  # ... but not to its pole
    assert not table.xs("system_negative", level="scenario")["passed"].any()
    assert table["p_holm"].min() >= table["p_value"].min() and table["passed"].sum() == len(NAMES)
    # the contrast is shared by a scenario and its opposite, and the table's p-value is the pure rule's
    pos = shifts[(shifts["axis"] == "warm_cold") & (shifts["scenario"] == "increase")]
    neg = shifts[(shifts["axis"] == "warm_cold") & (shifts["scenario"] == "decrease")]
    toward = pos.groupby("q_index")["shift"].mean().to_numpy()
    away = -neg.groupby("q_index")["shift"].mean().to_numpy()
    assert table.loc[("warm_cold", "increase"), "p_value"] == pytest.approx(
        benchmark.scenario_p_value(toward, away)
    )
    assert table.loc[("warm_cold", "decrease"), "contrast"] == pytest.approx(
        table.loc[("warm_cold", "increase"), "contrast"]
    )


def test_scenario_p_value_is_the_larger_one_sided_paired_t_test():
    toward, away = np.array([0.9, 1.1, 1.3, 0.7, 1.0]), np.array([0.2, 0.1, 0.5, 0.4, -0.1])
    contrast = scipy.stats.ttest_1samp(toward - away, 0, alternative="greater").pvalue
    own = scipy.stats.ttest_1samp(toward, 0, alternative="greater").pvalue
    p = benchmark.scenario_p_value(toward, away)
    assert p == pytest.approx(max(contrast, own))
    assert benchmark.scenario_passes(toward, away, alpha=0.05) is True
    assert not benchmark.scenario_passes(toward, away, alpha=0.05, n_tests=int(0.05 / p) + 1)  # Bonferroni
    # pairs with a NaN are dropped; fewer than two pairs never pass
    assert benchmark.scenario_p_value([*toward, np.nan], [*away, 3.0]) == pytest.approx(max(contrast, own))
    assert np.isnan(benchmark.scenario_p_value([1.0, np.nan], [0.0, 0.0]))
    assert not benchmark.scenario_passes([1.0, np.nan], [0.0, 0.0])
    passed, adjusted = benchmark.holm_passes([0.01, np.nan, 0.02, 0.06])  # the NaN is no test
    assert passed.tolist() == [True, False, True, False]
    assert adjusted[[0, 2, 3]] == pytest.approx([0.03, 0.04, 0.06])


def _percentile_rule(toward: np.ndarray) -> np.ndarray:
    """Yesterday's rule, vectorised over rows: the percentile-bootstrap 95 % CI of the mean shift above 0."""
    boot = scipy.stats.bootstrap(
        (toward,), np.mean, axis=-1, vectorized=True, method="percentile", n_resamples=1000, rng=1
    )
    return boot.confidence_interval.low > 0


@pytest.mark.parametrize("n", [5, 10])  # questions per scenario of the quick and paper profiles
def test_false_pass_rate_stays_at_its_nominal_level_where_yesterdays_rule_did_not(n):
    reps, alpha = 4000, 0.025  # yesterday's nominal one-sided level, for one scenario
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    rng = np.random.default_rng(n)
    for moved in (0.0, 3.0):  # nothing moves / both instructions move answers alike towards the pole
        named, opposite, control = rng.normal(size=(3, reps, n)) + np.array([moved, moved, 0])[:, None, None]
        toward, away = named - control, opposite - control
        rate = benchmark.scenario_passes(toward, away, alpha=alpha).mean()
        assert rate <= bound, (moved, rate)
        assert _percentile_rule(toward[:1000]).mean() > bound, moved
    named, opposite, control = rng.normal(size=(3, reps, n)) + np.array([2.0, -2.0, 0])[:, None, None]
    assert benchmark.scenario_passes(named - control, opposite - control, alpha=alpha).mean() > 0.5


def _table(valid: dict[str, str]) -> benchmark.BenchmarkResult:
    shifts = _shifts(lambda s, pole: float(pole), lambda s, pole: float(pole))
    table = benchmark.scenario_table(shifts)
    validation = pd.Series(valid, name="validation")
    rates = benchmark.pass_rates(table, validation)
    return benchmark.BenchmarkResult(
        SEEDS, len(QUESTIONS), table, rates, dict(rates.attrs), validation, benchmark.ALPHA
    )


def test_counts_and_sentences_are_about_validated_axes_only():
    result = _table({"warm_cold": "valid", "verbose_concise": "chance", "confident_cautious": "valid"})
    assert result.scenarios["passed"].all()  # every scenario of every axis passes ...
    numbers = result.paper()
    assert (numbers["scenarios_passed"], numbers["scenarios_total"]) == (8, 8)  # ... two axes are counted
    assert (numbers["study_passed"], numbers["study_total"]) == (6, 6)  # warm, confident x 3 scenarios
    assert numbers["benchmark_n_validated"] == 2 and numbers["benchmark_not_validated"] == "verbose/concise"
    assert numbers["benchmark_summary"] == (
        "On the 2 validated axes, 8 of 8 scenarios pass (8 point the right way without the test); "
        "not counted, as they failed held-out validation: verbose/concise. Of the original study's checks "
        "on validated axes, 6 of 6 pass (6 without the test)."
    )
    n_tests = int(result.scenarios["p_value"].notna().sum())
    assert f"over the {n_tests} scenarios" in numbers["benchmark_rule"] and n_tests == 12
    assert f"error rate of {benchmark.ALPHA:g}" in numbers["benchmark_rule"]
    assert (
        f"over the {len(QUESTIONS)} questions (averaged over {len(SEEDS)} seeds)" in numbers["benchmark_rule"]
    )
    shown = result.paper_tables()["benchmark_table"].frame
    assert list(shown.index) == ["warm_cold", f"verbose_concise{MARK}", "confident_cautious"]
    assert list(shown.columns) == [
        *benchmark.SCENARIOS,
        "system contrast",
        "request contrast",
        "passed",
        "passed_lenient",
    ]
    loaded = benchmark.BenchmarkResult.from_dict(result.to_dict())
    assert loaded.paper() == numbers and loaded.names == NAMES
    none = _table(dict.fromkeys(NAMES, "chance")).paper()
    assert none["scenarios_total"] == 0 and none["study_total"] == 0
    assert none["benchmark_summary"].startswith("No axis passed held-out validation")


def test_retest_icc_is_high_when_seeds_agree_and_undefined_with_one_seed():
    rng = np.random.default_rng(0)
    rows = []
    for q in range(10):
        truth = rng.normal()
        for seed in range(3):
            rows.append(
                {
                    "axis": "warm_cold",
                    "scenario": "increase",
                    "q_index": q,
                    "seed": seed,
                    "value": truth + 0.05 * rng.normal(),
                }
            )
    frame = pd.DataFrame(rows)
    icc = benchmark.retest_icc(frame)
    assert icc.loc["warm_cold", "icc"] > 0.9
    assert icc.loc["warm_cold", "ci_low"] <= icc.loc["warm_cold", "icc"] <= icc.loc["warm_cold", "ci_high"]
    one = benchmark.retest_icc(frame[frame["seed"] == 0])
    assert np.isnan(one.loc["warm_cold", "icc"])
