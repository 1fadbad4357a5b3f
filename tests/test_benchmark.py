import numpy as np
import pandas as pd
import pytest

from styleprobe.analyses import instruction_benchmark as benchmark
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.spec import Protocol

NAMES = ["warm_cold", "verbose_concise", "confident_cautious"]
SPECS = {n: Protocol.load().axes[n] for n in NAMES}


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


def _result(items, effect, noise=0.1, seed=0):
    """States where an item of `scenario` on axis i moves e_i by effect[scenario] (signed like SCENARIOS)."""
    rng = np.random.default_rng(seed)
    states = rng.normal(scale=noise, size=(len(items), 1, 4)).astype(np.float32)
    for k, it in enumerate(items):
        scenario = it.meta["scenario"]
        if scenario != "control":
            states[k, 0, NAMES.index(it.meta["axis"])] += effect[scenario] * benchmark.SCENARIOS[scenario]
    records = pd.DataFrame(
        [
            {"id": it.id, **it.meta, "question": it.question, "response": f"answer {k}", "n_measured": 3}
            for k, it in enumerate(items)
        ]
    )
    return StageResult(records, states, Aggregation((0,), (1.0,), 0.9))


def test_items_pair_every_scenario_with_a_control_on_the_same_question():
    first = benchmark.first_turn_items(SPECS, ["q1?", "q2?"], seeds=[0, 1])
    assert len(first) == 2 * 2 * (1 + 2 * len(NAMES))
    sys_items = [it for it in first if it.system]
    assert {it.system for it in sys_items if it.meta["axis"] == "warm_cold"} == set(
        SPECS["warm_cold"].instructions[benchmark.SYSTEM_SET]
    )
    res = _result(first, {"system_positive": 0, "system_negative": 0})
    second = benchmark.second_turn_items(SPECS, res, ["f1?", "f2?"], seeds=[0, 1])
    control = next(it for it in second if it.id == "seed-1/turn2-control/01")
    answered = res.records.set_index("id").loc["seed-1/control/01", "response"]
    assert control.history == (("q2?", answered),) and control.question == "f2?"
    nudged = next(it for it in second if it.id == "seed-1/increase/warm_cold/01")
    assert nudged.question.endswith("f2?") and nudged.question != "f2?" and nudged.history == control.history


def test_scenarios_with_a_real_effect_pass_and_null_scenarios_do_not():
    seeds, qs = [0, 1, 2], [f"q{i}?" for i in range(8)]
    first = benchmark.first_turn_items(SPECS, qs, seeds)
    res1 = _result(first, {"system_positive": 1.0, "system_negative": 0.0})
    second = benchmark.second_turn_items(SPECS, res1, qs, seeds)
    res2 = _result(second, {"increase": 1.0, "decrease": -1.0}, seed=1)  # decrease goes the wrong way
    shifts = benchmark.paired_shifts(_axes(), [res1, res2])
    assert len(shifts) == len(seeds) * len(qs) * len(NAMES) * 4
    table = benchmark.scenario_table(shifts).set_index(["axis", "scenario"])
    assert table.xs("system_positive", level="scenario")["passed"].all()
    assert table.xs("increase", level="scenario")["passed"].all()
    assert not table.xs("system_negative", level="scenario")["passed"].any()  # no effect, CI covers 0
    assert not table.xs("decrease", level="scenario")["passed_lenient"].any()
    rates = benchmark.pass_rates(table.reset_index())
    assert rates["passed"].tolist() == [2, 2, 2] and rates.attrs["study_total"] == 9
    assert rates.attrs["study_passed"] == 6  # system_positive and increase on 3 axes; decrease fails
    result = benchmark.BenchmarkResult(seeds, len(qs), table.reset_index(), rates, dict(rates.attrs))
    numbers = result.paper()
    assert (
        numbers["scenarios_passed"] == 6 and numbers["scenarios_total"] == 12 and numbers["study_passed"] == 6
    )
    assert numbers["benchmark_seeds"] == 3 and numbers["benchmark_questions"] == 8
    shown = result.paper_tables()["benchmark_table"].frame
    assert list(shown.index) == NAMES and list(shown.columns) == [
        *benchmark.SCENARIOS,
        "passed",
        "passed_lenient",
    ]
    loaded = benchmark.BenchmarkResult.from_dict(result.to_dict())
    assert loaded.paper() == numbers and loaded.names == NAMES


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
    icc = benchmark.retest_icc(frame, n_boot=200)
    assert icc.loc["warm_cold", "icc"] > 0.9 and icc.loc["warm_cold", "ci_low"] <= icc.loc["warm_cold", "icc"]
    one = benchmark.retest_icc(frame[frame["seed"] == 0], n_boot=10)
    assert np.isnan(one.loc["warm_cold", "icc"])


@pytest.mark.parametrize("scenario", list(benchmark.SCENARIOS))
def test_every_scenario_has_a_direction(scenario):
    assert benchmark.SCENARIOS[scenario] in (1, -1)
