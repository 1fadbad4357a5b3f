"""Hand-computed dead-zone components, severities, ranking stability and classes; the typed inputs
and the result of notebook 08."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from styleprobe.analyses import deadzones as dz
from styleprobe.analyses.instruction_benchmark import BenchmarkResult
from styleprobe.analyses.stability import StabilityResult
from styleprobe.paths import folders
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import BaselineResult
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol
from styleprobe.protocol.validity import MARK
from styleprobe.report.results import update_results
from styleprobe.result import ResultsError
from styleprobe.workspace import Workspace

NAN = float("nan")


def inputs_for_badness(b: float) -> dict[str, float]:
    """Inputs whose four components all equal b (inverse of the documented transforms)."""
    return {
        "accuracy": 0.9 - 0.4 * b,
        "dprime": 2 * (1 - b),
        "stability_cosine": 0.9 * (1 - b),
        "snr": 2 * (1 - b),
    }


def test_components_and_severity_hand_computed():
    x = dz.DeadZoneInputs(accuracy=0.8, dprime=0.5, stability_cosine=0.6, snr=1.0)
    # (0.9-0.8)/0.4 = 0.25; 1-0.5/2 = 0.75; (0.9-0.6)/0.9 = 1/3; 1-1/2 = 0.5
    assert dz.components(x) == pytest.approx(
        {"accuracy": 0.25, "dprime": 0.75, "stability_cosine": 1 / 3, "snr": 0.5}
    )
    assert dz.severity(x) == pytest.approx(0.3 * 0.25 + 0.3 * 0.75 + 0.2 / 3 + 0.2 * 0.5)


def test_nan_component_skipped_and_weights_renormalised():
    x = dz.DeadZoneInputs(accuracy=0.8, dprime=0.5, stability_cosine=0.6, snr=NAN)
    assert math.isnan(dz.components(x)["snr"])
    assert dz.severity(x) == pytest.approx((0.3 * 0.25 + 0.3 * 0.75 + 0.2 / 3) / 0.8)
    assert math.isnan(dz.severity(dz.DeadZoneInputs(NAN, NAN, NAN, NAN)))


def test_extremes_and_clipping():
    perfect = dz.DeadZoneInputs(accuracy=1.0, dprime=5.0, stability_cosine=1.0, snr=10.0)
    dead = dz.DeadZoneInputs(accuracy=0.5, dprime=0.0, stability_cosine=0.0, snr=0.0)
    worse = dz.DeadZoneInputs(accuracy=0.3, dprime=-1.0, stability_cosine=-0.5, snr=0.0)
    assert dz.severity(perfect) == 0.0
    assert dz.severity(dead) == 1.0
    assert dz.severity(worse) == 1.0
    assert dz.components(dz.DeadZoneInputs(0.9, math.inf, 0.9, math.inf)) == {
        "accuracy": 0.0,
        "dprime": 0.0,
        "stability_cosine": 0.0,
        "snr": 0.0,
    }


def test_weights_are_normalised_or_rejected():
    x = dz.DeadZoneInputs(accuracy=0.8, dprime=0.5, stability_cosine=0.6, snr=1.0)
    scaled = {k: 10 * v for k, v in dz.DEFAULT_WEIGHTS.items()}
    assert dz.severity(x, scaled) == pytest.approx(dz.severity(x))
    equal = dict.fromkeys(dz.COMPONENTS, 3.0)
    assert dz.severity(x, equal) == pytest.approx((0.25 + 0.75 + 1 / 3 + 0.5) / 4)
    with pytest.raises(ValueError, match="non-negative"):
        dz.severity(x, {**equal, "snr": -1.0})
    with pytest.raises(ValueError, match="exactly the keys"):
        dz.severity(x, {"accuracy": 1.0})
    with pytest.raises(TypeError):
        dz.DEFAULT_WEIGHTS["snr"] = 1.0  # read-only constant


def test_severity_table_matches_scalar():
    frame = pd.DataFrame(
        [
            {
                "model": "m",
                "axis": "warm_cold",
                "accuracy": 0.8,
                "dprime": 0.5,
                "stability_cosine": 0.6,
                "snr": 1.0,
            },
            {
                "model": "m",
                "axis": "formal_casual",
                "accuracy": 0.95,
                "dprime": NAN,
                "stability_cosine": 0.9,
                "snr": 3,
            },
        ]
    )
    table = dz.severity_table(frame)
    for row in table.itertuples():
        x = dz.DeadZoneInputs(row.accuracy, row.dprime, row.stability_cosine, row.snr)
        assert row.severity == pytest.approx(dz.severity(x))
        assert row.bad_accuracy == pytest.approx(dz.components(x)["accuracy"])
    assert "accuracy" in table and "bad_snr" in table
    with pytest.raises(ValueError, match="lacks columns"):
        dz.severity_table(frame.drop(columns="snr"))


def _frame(badness: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"model": "m", "axis": f"a{i}", **inputs_for_badness(b)} for i, b in enumerate(badness)]
    )


def test_ranking_stability_dominant_pair_and_seed():
    frame = _frame([0.1, 0.2, 0.05, 0.3, 0.15])
    frame.loc[len(frame)] = {
        "model": "m",
        "axis": "dead",
        "accuracy": 0.5,
        "dprime": 0.1,
        "stability_cosine": 0.1,
        "snr": 0.2,
    }
    out = dz.ranking_stability(frame, n_draws=500, seed=1)
    assert out.attrs["k"] == 1  # only the dead pair is flagged at default weights
    dead = out.set_index("axis").loc["dead"]
    assert dead["top_k_share"] == pytest.approx(1.0)
    assert dead["mean_rank"] == 1.0 and dead["default_rank"] == 1
    assert out["top_k_share"].sum() == pytest.approx(1.0)
    pd.testing.assert_frame_equal(out, dz.ranking_stability(frame, n_draws=500, seed=1))
    assert out.attrs == dz.ranking_stability(frame, n_draws=500, seed=1).attrs


def test_ranking_stability_agreeing_and_conflicting_components():
    agree = dz.ranking_stability(_frame([0.1, 0.3, 0.2, 0.05]), n_draws=200)
    assert agree.attrs["mean_spearman"] == pytest.approx(1.0)
    assert agree.attrs["k"] == 3  # nothing flagged dead -> top 3
    assert (agree["rank_p05"] == agree["rank_p95"]).all()
    # each pair bad on a different component: the ranking depends on the weights
    rows = [inputs_for_badness(0.0) for _ in range(4)]
    for i, c in enumerate(dz.COMPONENTS):
        rows[i][c] = inputs_for_badness(0.4 + 0.1 * i)[c]
    conflict = dz.ranking_stability(pd.DataFrame(rows), n_draws=200)
    assert conflict.attrs["mean_spearman"] < 0.9
    assert (conflict["rank_p05"] < conflict["rank_p95"]).any()
    with pytest.raises(ValueError, match=">= 2"):
        dz.ranking_stability(_frame([0.5]))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0.60, 0.95, 1.0, 1.0), "hard"),
        ((0.60, 0.20, 0.0, 1.0), "hard"),  # hard is checked first
        ((0.80, 0.50, 1.0, 1.0), "soft"),
        ((0.80, 0.50, 1.0, 0.0), "soft"),  # soft before asymmetric
        ((0.90, 0.90, 0.5, 0.1), "asymmetric"),  # 0.1 < 0.25 * 0.5
        ((0.90, 0.90, -0.2, 0.4), "asymmetric"),  # moves away from the positive pole
        ((0.90, 0.90, 0.5, 0.15), "healthy"),  # 0.15 >= 0.125
        ((0.90, 0.90, 0.2, 0.0), "healthy"),  # no shift reaches 0.25
        ((0.90, NAN, 0.5, 0.4), "healthy"),  # NaN stability skips the soft check
    ],
)
def test_classify(args, expected):
    assert dz.classify(*args, validated=True) == expected
    # an axis that failed validation keeps the failure classes and gets no other
    assert dz.classify(*args, validated=False) == (
        expected if expected in ("hard", "soft") else "unvalidated"
    )


def test_classify_custom_thresholds_and_nan_accuracy():
    strict = dz.ClassThresholds(hard_accuracy=0.95)
    assert dz.classify(0.9, 0.9, 0.5, 0.4, validated=True, thresholds=strict) == "hard"
    with pytest.raises(ValueError, match="finite accuracy"):
        dz.classify(NAN, 0.9, 0.5, 0.4, validated=True)


def test_the_class_rules_state_the_thresholds_classify_uses():
    t = dz.ClassThresholds(hard_accuracy=0.7, soft_stability=0.6, asym_min_shift=0.4, asym_ratio=0.5)
    rules = dz.class_rules(t)
    assert "accuracy below 0.7;" in rules and "cosine below 0.6;" in rules
    assert "at least 0.4 and the other's below 0.5 times it" in rules

    def cls(acc=0.9, cos=0.9, pos=0.0, neg=0.0):
        return dz.classify(acc, cos, pos, neg, validated=True, thresholds=t)

    assert (cls(acc=0.69), cls(acc=0.7)) == ("hard", "healthy")
    assert (cls(cos=0.59), cls(cos=0.6)) == ("soft", "healthy")
    assert (cls(pos=0.4, neg=0.19), cls(pos=0.39, neg=0.0), cls(pos=0.4, neg=0.2)) == (
        "asymmetric",
        "healthy",
        "healthy",
    )


def test_pole_shifts():
    pos, neg = dz.pole_shifts([1.0, 2.0, 3.0], [-1.0, -3.0], [0.0, 1.0, NAN])
    assert (pos, neg) == pytest.approx((1.5, 2.5))
    with pytest.raises(ValueError, match="baseline_values"):
        dz.pole_shifts([1.0], [0.0], [NAN])


def _result(cls, **given):
    """A `cls` result holding `given` (None for the fields dead zones do not read)."""
    return cls(**{f.name: given.get(f.name) for f in dataclasses.fields(cls) if f.init})


def _model(accuracy, dprime, cosine, snr, shifts, axes=("warm_cold", "formal_casual")):
    """A model's calibration, stability and benchmark results as notebooks 01 and 07 make them."""
    index = pd.Index(list(axes), name="axis")
    low = [a - 0.1 for a in accuracy]  # an interval 0.2 wide: validated (low > 0.6) above 0.7
    evaluation = pd.DataFrame(
        {"pairwise_accuracy": accuracy, "accuracy_ci_low": low, "accuracy_ci_high": 1.0, "dprime": dprime},
        index=index,
    )
    cosines = pd.DataFrame({"A~B": cosine, "mean": cosine}, index=index)
    retest = pd.DataFrame({"baseline_icc": [0.5] * len(axes), "snr": snr}, index=index)
    scenarios = pd.DataFrame(
        {
            "axis": [a for a in axes for _ in range(2)],
            "scenario": ["system_positive", "system_negative"] * len(axes),
            "shift": shifts,
        }
    )
    return (
        _result(CalibrationResult, evaluation=evaluation),
        _result(StabilityResult, set_cosines=cosines, retest=retest),
        _result(BenchmarkResult, scenarios=scenarios),
    )


def _leaning_baseline(axes=("warm_cold", "formal_casual")):
    """Notebook 02's result with every axis validated and its CI above 0 (towards the first pole)."""
    fingerprint = pd.DataFrame({"ci_low": 0.1, "ci_high": 0.5, "validation": "valid"}, index=list(axes))
    return _result(BaselineResult, fingerprint=fingerprint, poles={a: a.split("_") for a in axes})


HEALTHY_AND_DEAD = ([0.95, 0.55], [2.5, 0.1], [0.93, 0.3], [3.0, 0.5], [0.6, 0.05, 0.3, 0.2])


def test_inputs_read_every_component_and_classify():
    inputs = dz.inputs(*_model(*HEALTHY_AND_DEAD))
    assert inputs.loc["warm_cold"].tolist() == [0.95, 2.5, "valid", 0.93, 3.0, 0.6, 0.05]
    assert inputs["validation"].to_dict() == {"warm_cold": "valid", "formal_casual": "chance"}
    table = dz.severity_table(inputs).assign(dead=lambda t: t["severity"] >= dz.DEAD_SEVERITY)
    assert table.loc["warm_cold", "severity"] == 0.0 and table.loc["formal_casual", "severity"] > 0.5
    classes = dz.classify_table(table)
    assert classes.to_dict() == {"warm_cold": "asymmetric", "formal_casual": "hard"}


def test_no_class_is_drawn_for_an_axis_that_failed_validation_or_is_dead():
    # chance: accuracy 0.8 whose interval reaches 0.5; dead: separable and stable, but severity >= 0.5
    calibration, stability, benchmark = _model(
        [0.8, 0.75, 0.95],
        [2.5, 0.5, 2.5],
        [0.93, 0.75, 0.93],
        [3.0, 0.5, 3.0],
        [0.6, 0.05] * 3,
        axes=("warm_cold", "formal_casual", "verbose_concise"),
    )
    calibration.evaluation.loc["warm_cold", "accuracy_ci_low"] = 0.45
    table = dz.severity_table(dz.inputs(calibration, stability, benchmark))
    table["dead"] = table["severity"] >= dz.DEAD_SEVERITY
    assert table["validation"].tolist() == ["chance", "valid", "valid"]
    assert table["dead"].tolist() == [False, True, False]
    assert dz.validated(table).tolist() == [False, False, True]
    table["class"] = dz.classify_table(table)
    assert table["class"].tolist() == ["unvalidated", "unvalidated", "asymmetric"]
    # the sentence lists the dead axis (not the one failing validation) and counts the classes above
    zones = dz.DeadZonesResult(table, pd.DataFrame(), {}, dataclasses.asdict(dz.DEFAULT_THRESHOLDS))
    assert zones.summary().startswith(
        "1 of 3 axes reach the dead severity of 0.5 (formal/casual). By class: 0 hard, 0 soft, "
        "2 unvalidated, 1 asymmetric, 0 healthy (hard: held-out pairwise accuracy below 0.65;"
    )
    assert zones.validated() == ["verbose_concise"]


def test_inputs_without_the_stability_and_benchmark_results_leave_nan():
    calibration, _, _ = _model(*HEALTHY_AND_DEAD)
    inputs = dz.inputs(calibration)
    assert inputs[["stability_cosine", "snr", "pos_shift", "neg_shift"]].isna().all().all()
    assert np.isfinite(dz.severity_table(inputs)["severity"]).all()  # from accuracy and d' alone


def _workspace(root, slug, *results):
    """A model-less workspace under `root` whose results file holds `results` (sections only)."""
    ws = Workspace(None, get_profile("smoke"), Protocol.load(), slug, folders(root))
    for result in results:
        update_results(slug, result.name, result.to_dict(), ws.results_dir)
    return ws


def test_run_scores_this_model_and_ranks_every_model_under_the_root(tmp_path):
    ws = _workspace(tmp_path, "m1", *_model(*HEALTHY_AND_DEAD), _leaning_baseline())
    calibration_only = _model([0.5, 0.6], [0.0, 0.2], [0.1, 0.2], [0.1, 0.2], [0.0] * 4)[0]
    other = _workspace(tmp_path, "m2", calibration_only)
    zones = dz.run(ws, n_draws=50)
    assert zones.table["dead"].to_dict() == {"warm_cold": False, "formal_casual": True}
    assert zones.table["class"].to_dict() == {"warm_cold": "asymmetric", "formal_casual": "hard"}
    assert zones.table["validation"].to_dict() == {"warm_cold": "valid", "formal_casual": "chance"}
    assert len(zones.ranking) == 4 and set(zones.ranking["model"]) == {"m1", "m2"}
    assert zones.ranking_attrs["n_draws"] == 50 and zones.thresholds["hard_accuracy"] == 0.65
    numbers = zones.paper()
    assert numbers["n_dead"] == 1 and numbers["dead_axes"] == "formal/casual" and numbers["n_validated"] == 1
    assert numbers["leans"] == "warm"  # formal/casual is dead, so its lean is not stated
    assert numbers["classes"] == {"hard": 1, "soft": 0, "unvalidated": 0, "asymmetric": 1, "healthy": 0}
    assert numbers["most_severe_axis"] == "formal/casual" and numbers["max_severity"] > 0.5
    assert (numbers["n_pairs"], numbers["n_models"], numbers["n_draws"]) == (4, 2, 50)
    assert numbers["summary"] == (
        "1 of 2 axes reach the dead severity of 0.5 (formal/casual). By class: 1 hard, 0 soft, "
        f"0 unvalidated, 1 asymmetric, 0 healthy ({dz.class_rules()})."
    )
    shown = zones.paper_tables()["dead_zone_table"].frame
    assert list(shown.index) == ["warm_cold", f"formal_casual{MARK}"]
    ws.save(zones)
    loaded = dz.DeadZonesResult.load(ws)
    pd.testing.assert_frame_equal(loaded.table, zones.table, check_dtype=False, check_names=False)
    assert loaded.paper() == numbers and loaded.dead_axes() == ["formal_casual"]
    written = ws.paper_dir / "m1"
    assert (
        r"\defresult{m1/08_dead_zones/n_dead}{1}"
        in (written / "numbers-08_dead_zones@dead_zones.tex").read_text()
    )
    assert "hard" in (written / "dead_zone_table.tex").read_text()
    with pytest.raises(ResultsError, match="07_stability"):
        dz.run(other)  # its own stability and benchmark results are needed
