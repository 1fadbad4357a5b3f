"""Base vs instruct comparison: per-item correctness, McNemar, std ratios, the plain format, the plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from reloading import assert_paper_survives_reload

from styleprobe import paths
from styleprobe.analyses import base_vs_instruct as cm
from styleprobe.apps.reproduce import plan
from styleprobe.engine.chat import PLAIN_ASSISTANT, build_prompt, plain_prompt
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.calibration import Calibration, fit_from_result
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol
from styleprobe.workspace import Workspace

AXES = ("warm_cold", "formal_casual")


def planted_calibration(flip_evaluation: str, n_cal=8, n_eval=6, dim=16, seed=0) -> Calibration:
    """States with one planted direction per axis; on `flip_evaluation`'s evaluation questions the poles
    are swapped, so every one of its items is ordered wrongly."""
    rng = np.random.default_rng(seed)
    directions = {name: rng.normal(size=dim) for name in AXES}
    rows, states = [], []
    for name in AXES:
        for split, n in (("calibration", n_cal), ("evaluation", n_eval)):
            for q in range(n):
                for pole in (1, -1):
                    sign = -pole if (split == "evaluation" and name == flip_evaluation) else pole
                    states.append(rng.normal(size=dim) * 0.3 + sign * directions[name])
                    rows.append(
                        {
                            "axis": name,
                            "pole": pole,
                            "split": split,
                            "q_index": q,
                            "n_measured": 5,
                            "empty": False,
                        }
                    )
    per_layer = np.repeat(np.array(states, dtype=np.float32)[:, None], 4, axis=1)
    result = StageResult(pd.DataFrame(rows), per_layer, Aggregation())
    axes, evaluation = fit_from_result(result, "planted", layers=[0, 1, 2, 3])
    return Calibration(axes, result, evaluation)


def test_items_are_correct_when_the_positive_answer_projects_higher():
    cal = planted_calibration(flip_evaluation="formal_casual")
    items = cm.evaluation_items(cal)
    assert len(items) == 2 * 6 and items["correct"].notna().all()
    by_axis = items.groupby("axis")["correct"].mean()
    assert by_axis["warm_cold"] == 1.0 and by_axis["formal_casual"] == 0.0
    assert ((items["positive"] > items["negative"]) == items["correct"].astype(bool)).all()
    table = cm.separability(items)
    assert table.loc["warm_cold", "above_chance"] and not table.loc["formal_casual", "above_chance"]
    assert table.loc["warm_cold", "p_value"] == pytest.approx(0.5**6)
    warm = items[items["axis"] == "warm_cold"]
    two = cm.separability(pd.concat([warm, warm.assign(axis="patient_irritated")]))
    assert two["above_chance"].sum() == 2  # a count, not a logical OR of object-typed numpy booleans


def test_empty_answers_leave_their_item_undecided():
    cal = planted_calibration(flip_evaluation="formal_casual")
    rec = cal.result.records
    first_eval = rec.index[(rec["split"] == "evaluation") & (rec["axis"] == "warm_cold")][0]
    rec.loc[first_eval, "n_measured"] = 0
    items = cm.evaluation_items(cal)
    assert items["correct"].isna().sum() == 1
    assert cm.separability(items).loc["warm_cold", "n"] == 5


def test_mcnemar_counts_discordant_pairs_and_matches_statsmodels():
    first = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, np.nan, 1], dtype=float)
    second = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, np.nan], dtype=float)
    out = cm.mcnemar(first, second)
    assert (out["n_pairs"], out["only_first"], out["only_second"]) == (10, 6, 1)
    assert out["both_correct"] + out["only_first"] + out["only_second"] + out["neither"] == out["n_pairs"]
    contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
    table = [[out["both_correct"], out["only_first"]], [out["only_second"], out["neither"]]]
    assert out["p_value"] == pytest.approx(contingency.mcnemar(table, exact=True).pvalue)
    assert cm.mcnemar([1, 0], [1, 0])["p_value"] == 1.0  # no discordant pair
    with pytest.raises(ValueError, match="differ in length"):
        cm.mcnemar([1, 0], [1])


def test_scale_ratio_of_a_rescaled_copy_is_exact():
    rng = np.random.default_rng(1)
    base = rng.normal(size=20)
    ratio, lo, hi = cm.scale_ratio(0.5 * base + 3, base)
    assert ratio == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 3"):
        cm.scale_ratio([1.0, 2.0], [1.0, 2.0])


def test_the_scale_ratio_covers_under_heavy_tails_where_the_std_ratio_did_not():
    """t3 questions shared by both models (correlation 0.5), true ratio 0.5, 30 questions: the paired
    mean-absolute-deviation interval covers; Pitman-Morgan's for standard deviations covered about 0.83."""
    rng = np.random.default_rng(7)
    n_sims, n = 1500, 30
    shared, own = rng.standard_t(3, (2, n_sims, n)), rng.standard_t(3, (2, n_sims, n))
    base, instruct = (np.sqrt(0.5) * (shared[0] + o) for o in own)
    _, low, high = cm.scale_ratio(0.5 * instruct, base)
    covered = np.mean((low <= 0.5) & (high >= 0.5))
    assert covered >= 0.93, covered


def test_variability_table_flags_axes_that_lose_variability():
    rng = np.random.default_rng(2)
    base = pd.DataFrame(rng.normal(size=(30, 2)), columns=list(AXES))
    instruct = pd.DataFrame({"warm_cold": 0.2 * base["warm_cold"], "formal_casual": rng.normal(size=30)})
    table = cm.variability_table(base, instruct)
    assert table.loc["warm_cold", "after_tuning"] == "lower"
    assert table.loc["warm_cold", "ci_high"] < 1
    assert (table["ci_low"] <= table["ratio"]).all() and (table["ratio"] <= table["ci_high"]).all()
    dims = cm.effective_dimensionality(base)
    assert 1 <= dims["participation_ratio"] <= 2 and dims["n_questions"] == 30


def test_separable_means_validated_not_a_binomial_test_of_the_items():
    """An axis the items' binomial test calls separable in the instruct model but whose accuracy interval
    reaches below 0.6 is not "separable only after tuning"."""
    evaluation = {
        "base": pd.DataFrame({"accuracy_ci_low": [0.3, 0.7, 0.3, 0.7]}, index=list("abcd")),
        "instruct": pd.DataFrame({"accuracy_ci_low": [0.58, 0.7, 0.3, 0.2]}, index=list("abcd")),
    }
    labels = cm.separation_change(evaluation["base"], evaluation["instruct"])
    assert labels.tolist() == ["neither", "both", "neither", "only base"]


def test_the_variability_docstring_names_the_interval_it_computes():
    assert "bootstrap" not in cm.variability_table.__doc__ and "Bonett" in cm.variability_table.__doc__


def test_a_model_without_chat_template_is_a_base_model_with_the_plain_format(tiny):
    handle = tiny("gemma3-base")
    assert handle.kind == "base" and not handle.uses_chat_template
    prompt = build_prompt(handle, "What is rain?", "Be warm.")
    assert prompt == plain_prompt("What is rain?", "Be warm.") and prompt.endswith(PLAIN_ASSISTANT)


def test_notebook_03_is_planned_for_instruct_models_with_a_base():
    steps = plan(["qwen2.5-7b-instruct", "phi-4", "qwen2.5-7b"], {"profile": "paper"})
    pairs = [params for name, _, params in steps if name == "03_base_vs_instruct"]
    assert pairs == [
        {"instruct_model": "qwen2.5-7b-instruct", "base_model": "qwen2.5-7b", "profile": "paper"}
    ]
    asked = plan(["Org/Chat-Model"], {"base_model": "Org/Base-Model"}, notebooks=["03"])
    assert [(n, p) for n, _, p in asked] == [
        ("03_base_vs_instruct", {"instruct_model": "Org/Chat-Model", "base_model": "Org/Base-Model"})
    ]
    default = plan(["smollm2-135m-instruct"], {}, notebooks=["03"])
    assert default[0][2]["base_model"] == "gemma3-270m-base"


def test_run_compares_the_pair_and_saves_with_the_instruct_model(tiny, tmp_path):
    sizes = {
        "n_calibration": 3,
        "n_evaluation": 3,
        "n_baseline": 4,
        "calibration_tokens": 4,
        "baseline_tokens": 4,
    }
    profile, protocol, root = get_profile("smoke", **sizes), Protocol.load(), paths.folders(tmp_path)
    base, instruct = (
        Workspace(tiny(a), profile, protocol, f"random-{a}", root) for a in ("gemma3-base", "qwen2")
    )
    result = cm.run(base, instruct, seeds=[0, 1])
    assert (result.families, result.same_family) == ({"base": "gemma3_text", "instruct": "qwen2"}, False)
    assert result.mcnemar_pooled["n_pairs"] <= 3 * len(protocol.names) and result.seeds == [0, 1]
    assert list(result.variability.index) == protocol.names and list(result.dimensionality.index) == [
        "base",
        "instruct",
    ]
    assert set(result.per_item_correctness) == {"base", "instruct"}
    instruct.save(result)
    assert not base.has(cm.BaseVsInstructResult)
    again = cm.BaseVsInstructResult.load(instruct)
    pd.testing.assert_frame_equal(
        again.evaluation["base"], result.evaluation["base"], check_dtype=False, check_names=False
    )
    assert again.base_model == base.model.model_id and result.paper()["base_model"] == "random-gemma3-base"
    assert again.base_slug == base.slug  # what the paper names the base model by
    assert "another family or shape" in result.paper()["pair_caveat"]  # the limitation follows the pair
    same = dataclasses.replace(result, same_family=True, families={"base": "qwen2", "instruct": "qwen2"})
    assert "isolates instruction tuning only if" in same.pair_caveat()
    assert_paper_survives_reload(result, tmp_path / "paper-check")
    table = again.paper_tables()["base_vs_instruct_table"].frame
    assert list(table.columns) == [
        "acc. base",
        "acc. instruct",
        "spread ratio",
        "spread ci_low",
        "spread ci_high",
        "poles",
    ]


def _model(rng, shift: float, n_cal=30, n_questions=30, dim=8):
    """One simulated model: calibration poles 2 * `shift` apart along e_0 (within-pole sd 1) and default
    answers to `n_questions` baseline questions whose spread along e_0 (sd 1.5) does not depend on it."""
    from styleprobe.protocol.axes import fit_axes

    pos, neg = rng.normal(size=(n_cal, dim)), rng.normal(size=(n_cal, dim))
    pos[:, 0] += shift
    neg[:, 0] -= shift
    axes = fit_axes(
        {"warm_cold": (pos, neg)},
        {"warm_cold": ("warm", "cold")},
        model_id="m",
        layers=[0],
        aggregation=Aggregation((0,), (1.0,), 0.9).to_dict(),
    )
    answers = rng.normal(size=(n_questions, dim)) * 0.3
    answers[:, 0] += rng.normal(scale=1.5, size=n_questions)
    records = pd.DataFrame({"q_index": range(n_questions), "n_measured": 5, "empty": False})
    return axes, {
        0: StageResult(records, answers[:, None].astype(np.float32), Aggregation((0,), (1.0,), 0.9))
    }


def test_variability_in_spreads_does_not_depend_on_how_far_the_instructions_move_answers():
    """Identical raw spread of default answers, poles 4x further apart in the instruct model: the ratio in
    within-pole spreads has a CI containing 1; the pole-unit ratio reports a drop that is only the
    stronger instruction following (about 1/4)."""
    rng = np.random.default_rng(7)
    base, instruct = _model(rng, shift=0.5), _model(rng, shift=2.0)
    means = {
        unit: [cm.question_means(axes, results, "m", unit) for axes, results in (base, instruct)]
        for unit in cm.UNITS
    }
    spreads = cm.variability_table(*means["spreads"])
    poles = cm.variability_table(*means["poles"])
    assert spreads.loc["warm_cold", "ci_low"] < 1 < spreads.loc["warm_cold", "ci_high"]
    assert poles.loc["warm_cold", "ci_high"] < 0.5 and poles.loc["warm_cold", "after_tuning"] == "lower"
