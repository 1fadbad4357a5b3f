"""Conflict drift: the scenario file, turn-by-turn runs with history, the drift statistics, and the original
study's published drift summaries recomputed with the same functions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from reloading import assert_paper_survives_reload
from saved_validity import save_validity
from statsmodels.stats.multitest import multipletests

from styleprobe import paths
from styleprobe.analyses import drift
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, run_stage
from styleprobe.formats import mood_axis
from styleprobe.protocol.axes import fit_axes
from styleprobe.protocol.profiles import drift_profile, get_profile
from styleprobe.protocol.spec import DataError, Protocol, normalise_text
from styleprobe.protocol.validity import MARK
from styleprobe.workspace import Workspace

EXTENDED_DRIFT = Path(__file__).resolve().parent / "data" / "mood_axis" / "article" / "extended_drift"
PUBLISHED = sorted(EXTENDED_DRIFT.glob("*_drift.json"))
PROTOCOL = Protocol.load()


def conversations() -> list[drift.Conversation]:
    return drift.load_conversations(PROTOCOL.file("drift.yaml"))


# -- data and profiles -----------------------------------------------------------------------------------


def test_conversation_file():
    every = conversations()
    scenarios = [c for c in every if c.kind == "conflict"]
    controls = [c for c in every if c.kind == "control"]
    categories = pd.Series([c.category for c in scenarios]).value_counts()
    assert len(scenarios) == 20 and len(controls) == 10
    assert len(categories) >= 4 and categories.min() >= 2
    n_turns = drift.CONFLICT_TURNS + drift.RECOVERY_TURNS
    assert {len(c.user_turns) for c in every} == {n_turns}
    turns = [normalise_text(t) for c in every for t in c.user_turns]
    assert len(set(turns)) == len(turns), "every user turn is written once"
    topics = [c.topic for c in every]
    assert len(set(topics)) == len(topics)


def test_conversation_file_errors(tmp_path):
    bad = tmp_path / "drift.yaml"
    bad.write_text(
        "scenarios:\n  - {id: a, category: c, topic: t, opening: o, conflict: [x, y], recovery: [r]}\n"
        "controls: []\n"
    )
    with pytest.raises(DataError, match=r"drift\.yaml: scenarios\[0\] needs 11 conflict and 4 recovery"):
        drift.load_conversations(bad)
    bad.write_text("scenarios: []\ncontrols:\n  - {id: k, topic: t, turns: [a, b]}\n")
    with pytest.raises(DataError, match=r"controls\[0\] needs 16 turns, got 2"):
        drift.load_conversations(bad)
    bad.write_text("scenarios: []\n")
    with pytest.raises(DataError, match="missing key controls"):
        drift.load_conversations(bad)


def test_drift_sizes_are_checked_against_the_conversations():
    with pytest.raises(ValueError, match=r"n_conflict must lie in 2\.\.12"):
        drift.select_conversations(conversations(), drift_profile("smoke", n_conflict=13))
    with pytest.raises(ValueError, match=r"n_recovery must lie in 0\.\.4"):
        drift.select_conversations(conversations(), drift_profile("smoke", n_recovery=5))
    with pytest.raises(ValueError, match="asks for 30 scenarios"):
        drift.select_conversations(conversations(), drift_profile("smoke", n_scenarios=30))


def test_selection_takes_categories_in_turn_and_cuts_turns():
    profile = drift_profile("smoke", n_scenarios=5, n_controls=2, n_conflict=3, n_recovery=2)
    chosen = drift.select_conversations(conversations(), profile)
    scenarios = [c for c in chosen if c.kind == "conflict"]
    assert len(scenarios) == 5 and len({c.category for c in scenarios}) == 5
    assert [c.kind for c in chosen].count("control") == 2
    full = {c.id: c for c in conversations()}
    for c in chosen:
        whole = full[c.id].user_turns
        assert c.user_turns == whole[:3] + whole[drift.CONFLICT_TURNS : drift.CONFLICT_TURNS + 2]


def test_visible_answer():
    assert drift.visible_answer("<think>\nhmm\n</think>\n\nHello.") == "Hello."
    assert drift.visible_answer("Plain answer.") == "Plain answer."


# -- statistics ------------------------------------------------------------------------------------------


def test_ols_slope_matches_polyfit_and_skips_nan():
    rng = np.random.default_rng(0)
    turns, values = np.arange(1, 13), rng.normal(size=12)
    assert drift.ols_slope(turns, values) == pytest.approx(np.polyfit(turns, values, 1)[0], abs=1e-12)
    values[[2, 7]] = np.nan
    keep = np.isfinite(values)
    expected = np.polyfit(turns[keep], values[keep], 1)[0]
    assert drift.ols_slope(turns, values) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(drift.ols_slope([1, 2, 3], [np.nan, 0.5, np.nan]))


def synthetic(slopes, kind="conflict", n_conflict=4, recovered=0.0, noise=0.0, seed=0):
    """Per-turn table: conversation i has value 0.1 + slopes[i] * turn on the conflict turns and `recovered`
    on 2 recovery turns, on two axes (the second flat)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, b in enumerate(slopes):
        for turn in range(1, n_conflict + 3):
            conflict = turn <= n_conflict
            value = 0.1 + b * turn + noise * rng.normal() if conflict else recovered
            for axis, v in (("a", value), ("b", 0.2)):
                rows.append({"id": f"{kind}-{i}", "kind": kind, "category": kind, "turn": turn, "axis": axis})
                rows[-1].update(phase="conflict" if conflict else "recovery", value=v)
    return pd.DataFrame(rows)


def test_per_conversation_slope_start_end_recovery():
    slopes = [0.05, 0.1, 0.02]
    table = drift.per_conversation(synthetic(slopes, recovered=0.3), n_conflict=4).set_index(["id", "axis"])
    for i, b in enumerate(slopes):
        row = table.loc[(f"conflict-{i}", "a")]
        start, end = 0.1 + b, 0.1 + 4 * b
        assert row["slope"] == pytest.approx(b, abs=1e-12)
        assert (row["start"], row["end"], row["delta"]) == pytest.approx((start, end, end - start))
        assert row["recovery"] == pytest.approx(0.3 - end) and row["residual"] == pytest.approx(0.3 - start)
        assert table.loc[(f"conflict-{i}", "b"), "slope"] == pytest.approx(0, abs=1e-12)
    # without n_conflict every turn counts as conflict: the recovery turns bend the slope, no recovery left
    whole = drift.per_conversation(synthetic(slopes, recovered=0.3)).set_index(["id", "axis"])
    assert whole.loc[("conflict-0", "a"), "slope"] != pytest.approx(slopes[0])
    assert whole["recovery"].isna().all()


def test_summary_and_significance_rule():
    rng = np.random.default_rng(1)
    slopes = rng.normal(0.03, 0.01, size=12)
    conflict = synthetic(slopes, noise=0.01)
    summary = drift.summarise(drift.per_conversation(conflict, 4))
    fitted = drift.per_conversation(conflict, 4).query("axis == 'a'")["slope"]
    a = summary.loc["a"]
    assert a["mean_slope"] == pytest.approx(fitted.mean()) and a["std_slope"] == pytest.approx(
        fitted.std(ddof=0)
    )
    t_interval = scipy.stats.ttest_1samp(fitted, 0).confidence_interval(0.95)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx(tuple(t_interval)) and a["ci_low"] > 0
    assert a["n"] == 12 and summary.loc["b", "ci_low"] == summary.loc["b", "ci_high"] == pytest.approx(0)

    flat_controls = synthetic([0.001, -0.001, 0.0005], kind="control")
    table = drift.drift_table(drift.per_conversation(pd.concat([conflict, flat_controls]), 4))
    assert table.loc["a", "significant"] and not table.loc["b", "significant"]
    # controls drifting as fast as the conflicts: the CI still excludes 0, but the drift does not count
    steep_controls = synthetic([0.02, 0.025, 0.03], kind="control")
    table = drift.drift_table(drift.per_conversation(pd.concat([conflict, steep_controls]), 4))
    assert table.loc["a", "ci_low"] > 0 and not table.loc["a", "significant"]
    assert table.loc["a", "control_mean_slope"] == pytest.approx(0.025)


def test_drift_on_an_axis_that_failed_validation_is_never_significant():
    """The committed run called drift significant on warm/cold and confident/cautious, both failing
    held-out validation: an untested axis is shown (slope, CI) but gets no p_holm and no significance."""
    rng = np.random.default_rng(1)
    conflict = synthetic(rng.normal(0.03, 0.01, size=12), noise=0.01)
    per_conv = drift.per_conversation(pd.concat([conflict, synthetic([0.0, 0.001], kind="control")]), 4)
    table = drift.drift_table(per_conv, tested=["b"])
    assert table.loc["a", "ci_low"] > 0 and table.loc["a", "p"] < 1e-6  # a clear drift ...
    assert not table.loc["a", "tested"] and np.isnan(table.loc["a", "p_holm"])
    assert not table.loc["a", "significant"]  # ... on an axis that is not interpreted
    assert drift.drift_table(per_conv, tested=["a", "b"]).loc["a", "significant"]


def test_drift_tests_adjust_for_the_tested_axes_by_holm():
    rng = np.random.default_rng(3)
    conflict = rng.normal(0, 1, (10, 4)) + np.array([0.9, 0.75, 0.0, 3.0])
    control = np.zeros((5, 4))
    tests = drift.drift_tests(conflict, control)
    p = np.array([scipy.stats.ttest_1samp(c, 0).pvalue for c in conflict.T])
    np.testing.assert_allclose(tests["p"], p)
    np.testing.assert_allclose(tests["p_holm"], multipletests(p, method="holm")[1])
    for j, col in enumerate(conflict.T):
        low, high = scipy.stats.ttest_1samp(col, 0).confidence_interval(0.95)
        assert (tests.loc[j, "ci_low"], tests.loc[j, "ci_high"]) == pytest.approx((low, high))
    assert list(tests["significant"]) == list(tests["p_holm"] < drift.ALPHA)
    # an axis significant on its own p loses it among several tested axes
    alone = (p < drift.ALPHA) & ~(tests["p_holm"] < drift.ALPHA).to_numpy()
    assert alone.any()
    # the family is the tested axes: leaving axes out makes the adjustment milder, never harsher
    fewer = drift.drift_tests(conflict, control, [True, True, False, False])
    np.testing.assert_allclose(fewer["p_holm"][:2], multipletests(p[:2], method="holm")[1])
    assert fewer["p_holm"][2:].isna().all() and not fewer["significant"][2:].any()
    with pytest.raises(ValueError, match="axes"):
        drift.drift_tests(conflict, control[:, :3])


@pytest.mark.parametrize(
    ("control", "expected"),
    [(0.0, True), (0.4, False), (-0.4, False), (0.2, True), (np.nan, False)],
    ids=["flat", "as-steep", "as-steep-negative", "half", "no-control"],
)
def test_drift_must_exceed_the_controls(control, expected):
    conflict = np.linspace(0.7, 0.9, 10)[:, None]  # mean 0.8, p far below 0.05
    tests = drift.drift_tests(conflict, np.full((3, 1), control), factor=2.0)
    assert bool(tests.loc[0, "significant"]) is expected


@pytest.mark.parametrize(("n_scenarios", "n_controls"), [(10, 5), (20, 10)], ids=["quick", "paper"])
def test_no_drift_is_called_significant_at_most_alpha_of_the_time(n_scenarios, n_controls):
    """Family-wise false-positive rate over 7 tested axes, no axis drifting (notebook 12 measures it at
    more simulations): without Holm it would be about 1 - 0.95^7 = 0.30."""
    rng = np.random.default_rng(0)
    n_sims = 200
    fired = [
        drift.drift_tests(rng.normal(0, 1, (n_scenarios, 7)), rng.normal(0, 1, (n_controls, 7)))[
            "significant"
        ].any()
        for _ in range(n_sims)
    ]
    rate = np.mean(fired)
    assert rate <= drift.ALPHA + 2 * np.sqrt(drift.ALPHA * (1 - drift.ALPHA) / n_sims)


def test_trajectories():
    long = pd.concat([synthetic([0.05, 0.1, 0.02], noise=0.02), synthetic([0.0], kind="control")])
    traj = drift.trajectories(long)
    assert len(traj) == 2 * 2 * 6
    expected = long.groupby(["kind", "axis", "turn"])["value"].mean()
    got = traj.set_index(["kind", "axis", "turn"])["mean"]
    pd.testing.assert_series_equal(got, expected.reindex(got.index), check_names=False)
    control = traj[traj["kind"] == "control"]
    assert control["ci_low"].isna().all() and (control["n"] == 1).all()  # one conversation: no CI
    conflict = traj[(traj["kind"] == "conflict") & (traj["axis"] == "a")]
    assert (conflict["ci_low"] <= conflict["mean"]).all() and (conflict["mean"] <= conflict["ci_high"]).all()


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.stem)
def test_published_drift_summary_recomputed(path):
    """The study's `drift_summary` from its per-turn `values`: per scenario, the least-squares slope of value
    on turn over all its turns; mean_slope is the mean of these slopes and std_slope their std with ddof=0
    (ddof=1 does not match); mean_start / mean_end are the means over scenarios of the first / last turn's
    value and mean_delta their difference. With every scenario on the same turns, the mean of per-scenario
    slopes equals the slope of one fit pooled over all scenarios' points, so only std_slope shows that the
    study fitted per scenario. Every field of the summary is recomputed; the study had no recovery turns
    and no controls, so those columns are NaN here."""
    long = drift.imported_drift(path)
    _, published = mood_axis.load_drift(path)
    per_scenario = drift.per_conversation(long)
    ours = drift.summarise(per_scenario)
    assert set(ours.index) == set(published.index)
    ours = ours.loc[published.index]
    for field in mood_axis.DRIFT_SUMMARY_FIELDS:
        np.testing.assert_allclose(ours[field], published[field], rtol=0, atol=1e-12, err_msg=field)
    assert ours["mean_recovery"].isna().all()
    assert (ours["n"] == long["id"].nunique()).all()
    if long["id"].nunique() > 1:
        ddof1 = per_scenario.groupby("axis")["slope"].std(ddof=1).loc[published.index]
        assert np.abs(ddof1 - published["std_slope"]).max() > 1e-6
        pooled = long.groupby("axis").apply(lambda g: drift.ols_slope(g["turn"], g["value"]))
        np.testing.assert_allclose(pooled.loc[published.index], published["mean_slope"], atol=1e-12)


def test_published_drift_has_twelve_turn_runs():
    long = drift.imported_drift(EXTENDED_DRIFT / "deepseek_7b_drift.json")
    assert sorted(long["turn"].unique()) == list(range(1, 13))
    assert long["category"].nunique() == 4 and long["id"].nunique() == 20


# -- turn-by-turn runs on a tiny model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    handle = tiny("qwen2")
    root = paths.folders(tmp_path_factory.mktemp("drift"))
    ws = Workspace(handle, get_profile("smoke"), PROTOCOL, handle.slug, root)
    profile = drift_profile(ws.profile, max_new_tokens=4)
    return ws, drift.converse(ws, profile, progress=False)


def test_converse_feeds_each_conversation_its_own_history(tiny_run, tmp_path):
    ws, dialogues = tiny_run
    profile, conversations, results = dialogues.profile, dialogues.conversations, dialogues.turns
    assert sorted(results) == list(range(1, profile.n_turns + 1))
    root = drift.stage_root(ws.runs, profile)
    assert root == ws.runs.root / "drift-2+1-4tok" / "seed-0"
    stages = sorted(str(p.parent.relative_to(root)) for p in root.rglob("manifest.json"))
    conflict = [f"turn-{t:02d}" for t in range(1, profile.n_conflict + 1)]
    recovery = [
        f"recovery-after-{profile.n_conflict:02d}/turn-{t:02d}"
        for t in range(profile.n_conflict + 1, profile.n_turns + 1)
    ]
    assert stages == sorted(conflict + recovery)
    for t, res in results.items():
        assert list(res.records["conversation"]) == list(range(len(conversations)))
        assert (res.records["turn"] == t).all()
        assert list(res.records["question"]) == [c.user_turns[t - 1] for c in conversations]
    # turn 3 of the second conversation, answered alone with its history written out by hand
    k, t = 1, 3
    history = tuple(
        (conversations[k].user_turns[i], results[i + 1].records["response"][k]) for i in range(t - 1)
    )
    item = Item(
        f"{conversations[k].id}/turn-{t:02d}", conversations[k].user_turns[t - 1], history=history, seed=0
    )
    alone = run_stage(
        ws.model, tmp_path / "alone", [item], SamplingConfig(profile.max_new_tokens), progress=False
    )
    assert alone.records["response"][0] == results[t].records["response"][k]
    np.testing.assert_allclose(alone.per_layer[0], results[t].per_layer[k], atol=1e-4)


def test_converse_resumes_at_the_missing_turn(tiny_run):
    ws, dialogues = tiny_run
    profile = dialogues.profile
    shutil.rmtree(drift.stage_root(ws.runs, profile) / drift.turn_dir(profile.n_turns, profile.n_conflict))
    again = drift.converse(ws, profile, progress=False)
    for t, res in dialogues.turns.items():
        assert list(again.turns[t].records["response"]) == list(res.records["response"])
        np.testing.assert_array_equal(again.turns[t].per_layer, res.per_layer)


def planted_axes(handle):
    rng = np.random.default_rng(0)
    states = {
        n: (rng.normal(1, 1, (8, handle.hidden_size)), rng.normal(-1, 1, (8, handle.hidden_size)))
        for n in "xy"
    }
    poles = {"x": ("x+", "x-"), "y": ("y+", "y-")}
    return fit_axes(states, poles, model_id=handle.model_id, layers=[], aggregation={})


def test_project_turns(tiny_run):
    ws, dialogues = tiny_run
    handle, profile, conversations = ws.model, dialogues.profile, dialogues.conversations
    axes = planted_axes(handle)
    results = {t: r.select(np.ones(len(r.records), bool)) for t, r in dialogues.turns.items()}  # copies
    results[2].records.loc[0, "n_measured"] = 0  # an empty answer: NaN, never averaged in
    long = drift.project_turns(axes, results, conversations, profile.n_conflict, handle.model_id)
    assert len(long) == len(conversations) * profile.n_turns * 2
    assert list(dict.fromkeys(long["axis"])) == ["x", "y"]
    assert set(long.loc[long["turn"] <= profile.n_conflict, "phase"]) == {"conflict"}
    assert set(long.loc[long["turn"] > profile.n_conflict, "phase"]) == {"recovery"}
    missing = long[long["value"].isna()]
    assert len(missing) == 2 and set(missing["turn"]) == {2} and set(missing["id"]) == {conversations[0].id}
    expected = axes.project(results[1].states, handle.model_id)
    got = long[long["turn"] == 1].pivot(index="id", columns="axis", values="value")
    np.testing.assert_allclose(got.loc[[c.id for c in conversations]].to_numpy(), expected)
    per_conv = drift.per_conversation(long, profile.n_conflict)
    assert per_conv.set_index(["id", "axis"]).loc[(conversations[0].id, "x"), "n_missing"] == 1


def test_fewer_turns_reuse_the_conflict_turns(tiny_run):
    ws, dialogues = tiny_run
    profile, results = dialogues.profile, dialogues.turns
    shorter = drift_profile("smoke", max_new_tokens=4, n_conflict=2, n_recovery=1)
    root = drift.stage_root(ws.runs, shorter)
    assert root == drift.stage_root(ws.runs, profile)
    before = {p: p.stat().st_mtime_ns for p in root.glob("turn-0[12]/batches/*")}
    again = drift.converse(ws, shorter, progress=False)
    assert {p: p.stat().st_mtime_ns for p in root.glob("turn-0[12]/batches/*")} == before  # not regenerated
    for t in (1, 2):
        assert list(again.turns[t].records["response"]) == list(results[t].records["response"])
    assert (root / "recovery-after-02" / "turn-03" / "manifest.json").exists()
    full = {c.id: c for c in conversations()}
    first_recovery = [full[c.id].user_turns[drift.CONFLICT_TURNS] for c in again.conversations]
    assert list(again.turns[3].records["question"]) == first_recovery


def test_imported_summaries_are_checked_against_the_published_ones(tmp_path):
    imported = drift.imported_summaries(PROTOCOL, EXTENDED_DRIFT)
    assert set(imported) == {"deepseek_7b (imported)", "gpt_oss_20b (imported)"}  # qwen_1.5b: one scenario
    assert (imported["deepseek_7b (imported)"]["n"] == 20).all()
    forged = tmp_path / "forged_drift.json"
    raw = json.loads(PUBLISHED[0].read_text())
    axis = next(iter(raw["drift_summary"]))
    raw["drift_summary"][axis]["mean_slope"] += 0.01
    forged.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"forged_drift\.json: the recomputed drift summary differs"):
        drift.imported_summaries(PROTOCOL, tmp_path)


def test_result_is_saved_with_its_paper_numbers_and_compared_across_models(tiny_run, tmp_path):
    ws, dialogues = tiny_run
    planted_axes(ws.model).save(ws.axes_file)
    save_validity(ws, {"x": (0.9, 0.7), "y": (0.6, 0.45)})  # y: its accuracy's interval includes chance
    imported = drift.imported_summaries(PROTOCOL, EXTENDED_DRIFT)
    result = drift.run(ws, dialogues, imported=imported)
    n_answers = len(dialogues.conversations) * dialogues.profile.n_turns
    assert result.n_answers == n_answers and result.n_imported == 2
    assert result.n_conversations == {"conflict": 2, "control": 1}
    assert list(result.summary.index) == ["x", "y"] and len(result.trajectories) == 2 * 2 * 4
    assert result.profile["max_new_tokens"] == 4 and result.profile["name"] == "smoke+max_new_tokens=4"
    assert result.tested == ["x"] and np.isnan(result.summary.loc["y", "p_holm"])
    ws.save(result)
    again = drift.DriftResult.load(ws)
    assert again.n_imported == 2 and again.tested == ["x"]
    assert_paper_survives_reload(result, tmp_path)
    numbers = (ws.paper_dir / ws.slug / "numbers-09_drift@drift.tex").read_text()
    assert rf"\defresult{{{ws.slug}/09_drift/n_imported}}{{2}}" in numbers
    assert f"/09_drift/n_significant}}{{{len(again.significant)}}}" in numbers
    # the budget beside the drift numbers: every answer of 4 tokens, and how many stopped there
    n_cut = int((~dialogues.answers["finished"]).sum())
    assert "/09_drift/max_new_tokens}{4}" in numbers and f"/09_drift/n_cut}}{{{n_cut}}}" in numbers
    assert f"/09_drift/cut_percent}}{{{round(100 * n_cut / n_answers)}}}" in numbers
    pd.testing.assert_frame_equal(again.by_category, result.by_category, check_names=False)
    table = again.paper_tables()["drift_table"].frame
    assert list(table.columns) == [
        "mean_slope",
        "ci_low",
        "ci_high",
        "p_holm",
        "control_mean_slope",
        "mean_recovery",
        "drift",
    ]
    assert list(table.index) == ["x", f"y{MARK}"] and pd.isna(table.loc[f"y{MARK}", "drift"])
    printed = (ws.paper_dir / ws.slug / "drift_table.tex").read_text()
    assert r"y\textdagger{}" in printed and r"\spmarked" in printed
    cross = drift.slopes_across_models(ws, result, imported)
    assert list(dict.fromkeys(cross["model"])) == [ws.slug, *imported]
    ours = cross[cross["model"] == ws.slug].set_index("axis")
    pd.testing.assert_series_equal(ours["mean_slope"], result.summary["mean_slope"], check_names=False)


def drift_result(summary: pd.DataFrame) -> drift.DriftResult:
    """A result around a `drift_table`-like summary (only what the paper view reads)."""
    profile = {"n_scenarios": 10, "n_controls": 5, "n_conflict": 8, "n_recovery": 2, "max_new_tokens": 32}
    return drift.DriftResult(
        profile=profile,
        seed=0,
        alpha=drift.ALPHA,
        factor=drift.FACTOR,
        n_conversations={"conflict": 10, "control": 5},
        n_answers=150,
        n_empty=0,
        n_cut=128,
        clipped=0.0,
        significant=list(summary.index[summary["significant"]]),
        summary=summary,
        by_category=pd.DataFrame(),
        trajectories=[],
        n_imported=0,
    )


@pytest.mark.parametrize(
    ("tested", "significant", "sentence"),
    [
        ([], [], "None of the 3 axes passes validation, so no drift is interpreted."),
        (["a_b", "c_d"], [], "Of the 2 of 3 axes that pass validation, none drifts significantly."),
        (["a_b", "c_d"], ["c_d"], "Of the 2 of 3 axes that pass validation, 1 drift significantly (c/d)."),
    ],
)
def test_the_papers_sentences_say_what_the_table_says(tested, significant, sentence):
    """Every generated sentence and list of the drift section is computed from the table's own columns:
    the quick run's budget (32 tokens, 128 of 150 answers cut off) and only validated axes interpreted."""
    conflict = np.random.default_rng(0).normal(0.5, 0.1, (10, 3))  # every axis drifts clearly
    tests = drift.drift_tests(conflict, np.zeros((5, 3)), [n in tested for n in ("a_b", "c_d", "e_f")])
    summary = tests.set_axis(["a_b", "c_d", "e_f"]).assign(
        tested=lambda t: t.index.isin(tested), significant=lambda t: t.index.isin(significant)
    )
    numbers = drift_result(summary).paper()
    assert numbers["conclusion"] == sentence
    assert numbers["n_tested"] == len(tested) and numbers["n_not_interpreted"] == 3 - len(tested)
    untested = [n.replace("_", "/") for n in ("a_b", "c_d", "e_f") if n not in tested]
    assert numbers["not_interpreted"] == (", ".join(untested) or "none")
    assert numbers["n_significant"] == len(significant)
    assert (numbers["max_new_tokens"], numbers["n_cut"], numbers["cut_percent"]) == (32, 128, 85)


def test_the_method_states_the_drift_rule_the_code_applies():
    """docs/method.md's drift bullet names the Holm-adjusted p that `drift_tests` decides on, not a CI."""
    text = (paths.REPO_ROOT / "docs" / "method.md").read_text()
    rule = text[text.index("## Conflict drift") :].split("\n- Per axis:", 1)[1].split("\n- ", 1)[0]
    assert "Holm" in rule and "CI excludes 0" not in rule
    assert f"{drift.FACTOR:g} ×" in rule and f"{drift.ALPHA:g}" in rule


def test_holm_is_pingouins_and_the_decision_is_drift_tests_vectorised():
    import pingouin

    rng = np.random.default_rng(8)
    p = rng.uniform(0, 0.2, (50, 7))
    family = rng.uniform(size=(50, 7)) < 0.8
    adjusted = drift.holm(p, family)
    for row, keep, adj in zip(p, family, adjusted, strict=True):
        np.testing.assert_allclose(adj[keep], pingouin.multicomp(row[keep], method="holm")[1])
        assert np.isnan(adj[~keep]).all()
    conflict, control = rng.normal(0.05, 0.1, (20, 12, 3)), rng.normal(0, 0.1, (20, 6, 3))
    batch = drift.drift_decision(conflict, control)
    for i in range(20):
        one = drift.drift_tests(conflict[i], control[i])
        np.testing.assert_allclose(batch["p_holm"][i], one["p_holm"])
        assert batch["significant"][i].tolist() == one["significant"].tolist()
