"""Thinking on vs off on the tiny qwen3 model, which writes a think block when thinking is on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from styleprobe import paths, stats
from styleprobe.analyses import thinking as th
from styleprobe.apps.reproduce import plan
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.generation import SamplingConfig, tokenize_prompts
from styleprobe.engine.pipeline import Item, run_stage
from styleprobe.protocol.axes import fit_axes
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol
from styleprobe.protocol.validity import MARK
from styleprobe.testing import THINK_LENGTHS
from styleprobe.workspace import Workspace

QUESTIONS = ["What is rain?", "Why is the sky blue?", "How do I boil an egg?", "Name a colour.", "Tides?"]
BUDGET = 24


@pytest.fixture(scope="module")
def qwen3(tiny):
    return tiny("qwen3")


def _run(handle, path, thinking: bool, aggregation=Aggregation()):
    items = [Item(f"q{i}", q, meta={"q_index": i}) for i, q in enumerate(QUESTIONS)]
    return run_stage(
        handle, path, items, SamplingConfig(BUDGET), aggregation, thinking=thinking, progress=False
    )


def test_the_tiny_model_thinks_only_when_thinking_is_on(qwen3, tmp_path):
    open_id, close_id = qwen3.think_ids
    hook = next(iter(qwen3.model._forward_hooks.values())).__self__
    on = _run(qwen3, tmp_path / "on", thinking=True).records
    prompts = [build_prompt(qwen3, q, thinking=True) for q in QUESTIONS]
    expected_close = hook.close_step(pd.Series(map(len, tokenize_prompts(qwen3, prompts))))
    for row, close in zip(on.itertuples(), expected_close, strict=True):
        assert row.response_ids[0] == open_id and open_id not in row.response_ids[1:]
        if close < row.n_tokens:
            assert row.response_ids.index(close_id) == close and row.response_ids.count(close_id) == 1
            assert row.n_measured == row.n_tokens - close - 1  # the visible answer only
        else:
            assert close_id not in row.response_ids and row.n_measured == 0
    assert ((expected_close >= THINK_LENGTHS[0]) & (expected_close < THINK_LENGTHS[1])).all()
    off = _run(qwen3, tmp_path / "off", thinking=False).records
    assert not any(open_id in ids or close_id in ids for ids in off["response_ids"])
    assert (off["n_measured"] == off["n_tokens"]).all()


def test_answer_status_counts_runs_without_visible_answer(qwen3):
    open_id, close_id = qwen3.think_ids
    records = pd.DataFrame(
        {
            "response_ids": [
                [open_id, 70, close_id, 71],
                [open_id, 70, 72],
                [open_id, close_id],
                [71, 72],
                [],
            ],
            "n_measured": [1, 0, 0, 2, 0],
            "n_tokens": [4, 3, 2, 2, 0],
        }
    )
    status = th.answer_status(qwen3, records).tolist()
    assert status == ["visible", "unclosed", "empty after think", "no think block", "empty"]


def test_reading_with_thinking_changes_only_which_tokens_are_measured(qwen3, tmp_path):
    """With decay 0 only the last token counts, which is the same in both reads: the states agree, so both
    reads see the same context (the think block). With decay 0.9 the think tokens move the state."""
    last_only = _run(qwen3, tmp_path / "last", True, Aggregation(decay=0.0))
    visible = last_only.records["n_measured"].to_numpy() > 0
    assert visible.any() and (~visible).any(), "the fixture should give both kinds of answers"
    included = th.read_with_thinking(qwen3, last_only, progress=False)
    np.testing.assert_allclose(included.per_layer[visible], last_only.per_layer[visible], atol=1e-4)
    assert (included.records["n_measured"] == included.records["n_tokens"]).all()
    decayed = _run(qwen3, tmp_path / "decayed", True)
    again = th.read_with_thinking(qwen3, decayed, progress=False)
    gap = np.abs(again.per_layer[visible] - decayed.per_layer[visible]).max(axis=(1, 2))
    assert (gap > 1e-3).all()


def test_paired_shift_pairs_questions_and_drops_missing_ones():
    rng = np.random.default_rng(0)
    off = pd.DataFrame(rng.normal(size=(8, 2)), columns=["a", "b"])
    on = off + np.array([0.3, -0.1]) + rng.normal(scale=0.05, size=(8, 2))
    on.loc[7, "a"] = np.nan
    shift = th.paired_shift(on.drop(index=6), off)
    diff_a = (on["a"] - off["a"]).drop(index=[6, 7])
    assert shift.loc["a", "shift"] == pytest.approx(diff_a.mean()) and shift.loc["a", "n"] == 6
    expected = stats.skewed_mean_ci(diff_a.to_numpy())
    assert (shift.loc["a", "ci_low"], shift.loc["a", "ci_high"]) == pytest.approx(expected)
    assert shift.loc["b", "ci_low"] < -0.1 < shift.loc["b", "ci_high"] and shift.loc["b", "n"] == 7
    constant = th.paired_shift(off + 0.5, off)  # no spread: no interval, and no exception
    assert constant["ci_low"].isna().all() and constant["shift"].tolist() == pytest.approx([0.5, 0.5])


def test_only_validated_axes_carry_conclusions():
    shift = pd.DataFrame(
        {"shift": [0.4, -0.3, 0.01], "ci_low": [0.2, -0.5, -0.1], "ci_high": [0.6, -0.1, 0.1], "n": 8},
        index=["warm_cold", "formal_casual", "verbose_concise"],
    )
    result = th.ThinkingResult(
        profile="smoke",
        seeds=[0],
        thinking_tokens=24,
        baseline_tokens=12,
        n_answers=8,
        n_without_visible_answer=0,
        status_counts=pd.Series({"visible": 8}),
        median_think_tokens=10.0,
        shift_visible=shift,
        shift_included=shift,
        think_tokens_effect=shift,
        validation=pd.Series({"warm_cold": "valid", "formal_casual": "chance", "verbose_concise": "valid"}),
    )
    paper = result.paper()
    # formal/casual's interval excludes 0, but the axis failed validation: no conclusion from it
    assert (paper["n_shifted"], paper["shifted_axes"], paper["n_not_interpreted"]) == (1, "warm/cold", 1)
    assert paper["mean_abs_shift_visible"] == pytest.approx((0.4 + 0.01) / 2)
    labels = list(result.paper_tables()["thinking_table"].frame.index)
    assert labels == ["warm_cold", f"formal_casual{MARK}", "verbose_concise"]


def test_thinking_profile_keeps_its_runs_apart():
    prof = th.thinking_profile(get_profile("smoke"), 4096)
    assert prof.baseline_tokens == 4096 and prof.name == "smoke+thinking_tokens=4096"
    with pytest.raises(ValueError, match="positive"):
        th.thinking_profile(get_profile("smoke"), 0)


def test_notebook_06_is_planned_for_models_with_a_thinking_switch():
    steps = plan(["qwen3-8b", "smollm2-135m-instruct", "random:qwen3", "random:qwen2"], {})
    thinking = [params["model"] for name, _, params in steps if name == "06_thinking_mode"]
    assert thinking == ["qwen3-8b", "random:qwen3"]
    asked = plan(["Qwen/Qwen3-14B"], {}, notebooks=["06", "01"])
    assert [n for n, _, _ in asked] == ["01_calibration", "06_thinking_mode"]


def test_run_compares_both_modes_on_the_axes_and_saves_the_paper_numbers(qwen3, tiny, tmp_path):
    ws = Workspace(
        qwen3, get_profile("smoke", n_baseline=4), Protocol.load(), qwen3.slug, paths.folders(tmp_path)
    )
    rng = np.random.default_rng(0)
    states = {
        n: (rng.normal(1, 1, (8, qwen3.hidden_size)), rng.normal(-1, 1, (8, qwen3.hidden_size))) for n in "xy"
    }
    axes = fit_axes(
        states, {"x": ("x+", "x-"), "y": ("y+", "y-")}, model_id=qwen3.model_id, layers=[], aggregation={}
    )
    axes.calibration = {"x": {"validation": "valid"}, "y": {"validation": "chance"}}
    axes.save(ws.axes_file)
    answers = th.answer_both_ways(ws, seeds=(0, 1), thinking_tokens=BUDGET, progress=False)
    assert ws.runs.baseline_seeds("smoke+n_baseline=4+thinking_tokens=24", thinking=True) == [(0, 1)]
    records = answers.on_records
    assert len(records) == 8 and (answers.off[0].records["n_tokens"] <= ws.profile.baseline_tokens).all()
    result = th.run(ws, answers, progress=False)
    hidden = int((records["n_measured"] == 0).sum())
    assert 0 < hidden < len(records), "the fixture should give both kinds of answers"
    assert (result.n_answers, result.n_without_visible_answer, result.status_counts.sum()) == (8, hidden, 8)
    assert (result.thinking_tokens, result.baseline_tokens, result.seeds) == (BUDGET, 12, [0, 1])
    assert list(result.shift_visible.index) == ["x", "y"] and result.shift_visible["n"].max() <= 4
    assert result.validated() == ["x"] and result.paper()["not_interpreted"] == "y"
    ws.save(result)
    again = th.ThinkingResult.load(ws)
    assert again.paper() == pytest.approx(result.paper())
    table = again.paper_tables()["thinking_table"].frame
    assert list(table.columns) == ["shift", "ci_low", "ci_high", "included", "think tokens' effect"]
    with pytest.raises(ValueError, match="no thinking switch"):
        th.answer_both_ways(Workspace(tiny("qwen2"), ws.profile, ws.protocol, "qwen2", ws.root), seeds=(0,))
