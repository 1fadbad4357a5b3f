"""Calibration and the baseline fingerprint on a tiny random model: the reading context, the held-out split,
and the typed results of notebooks 01 and 02 (what they save, what the paper reads)."""

import numpy as np
import pandas as pd
import pytest
from reloading import assert_paper_survives_reload

import styleprobe.engine.pipeline as pipeline
from styleprobe import paths, stats
from styleprobe.protocol import fingerprint
from styleprobe.protocol.calibration import (
    CalibrationResult,
    calibrate,
    calibration_items,
    calibration_pca,
    summarise,
)
from styleprobe.protocol.fingerprint import BaselineResult, retest_icc
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol
from styleprobe.workspace import Workspace

AXES = ["warm_cold", "formal_casual", "patient_irritated"]


def workspace(handle, root, **sizes) -> Workspace:
    """A workspace around an already loaded handle, its files under `root`."""
    return Workspace(handle, get_profile("smoke", **sizes), Protocol.load(), handle.slug, paths.folders(root))


@pytest.fixture(scope="module")
def both_readings(tiny, tmp_path_factory):
    """A tiny random model calibrated with the instruction in context and without it."""
    ws = workspace(tiny("qwen2"), tmp_path_factory.mktemp("root"), n_evaluation=6)
    instructed = calibrate(ws, axes=AXES, context="instructed", progress=False)
    return ws, instructed


def test_the_default_calibration_rereads_the_same_answers_without_the_instruction(both_readings, monkeypatch):
    ws, instructed = both_readings
    monkeypatch.setattr(pipeline, "generate", lambda *a, **k: pytest.fail("answers must be reused"))
    plain = calibrate(ws, axes=AXES, progress=False)
    assert plain.result.records["response"].tolist() == instructed.result.records["response"].tolist()
    assert not np.allclose(plain.result.per_layer, instructed.result.per_layer)
    assert plain.axes.meta["context"] == "uninstructed" and instructed.axes.meta["context"] == "instructed"


def test_instruction_in_context_separates_answers_whose_text_has_no_style(both_readings):
    """A random-init model writes noise whatever the instruction, so any held-out separation of its answers
    comes from reading the instruction itself: the instructed reading's accuracy is inflated by it."""
    ws, instructed = both_readings
    plain = calibrate(ws, axes=AXES, context="uninstructed", progress=False)
    leak = instructed.evaluation["pairwise_accuracy"].mean()
    text_only = plain.evaluation["pairwise_accuracy"].mean()
    assert leak > 0.8 and leak - text_only > 0.2


def test_only_set_a_answers_the_held_out_questions():
    prof, protocol = get_profile("smoke"), Protocol.load()
    a = calibration_items(prof, protocol, AXES, "A")
    b = calibration_items(prof, protocol, AXES, "B")
    assert {it.meta["split"] for it in a} == {"calibration", "evaluation"}
    assert {it.meta["split"] for it in b} == {"calibration"}
    assert not {it.question for it in a} & {it.question for it in b}  # B asks its own questions
    assert len(b) == len(AXES) * 2 * prof.n_calibration


def test_the_calibration_result_saves_its_section_and_the_papers_numbers(both_readings, tmp_path):
    ws, instructed = both_readings
    result = summarise(ws, instructed)
    assert result.n_answers == len(instructed.result.records) and result.profile == ws.profile.name
    numbers = result.paper()
    assert numbers["n_blocks"] == ws.model.n_layers and numbers["n_axes"] == len(AXES)
    assert numbers["last_layer"] == ws.model.n_layers and numbers["layer_weights"] == "0.1, 0.2, 0.3, 0.4"
    assert numbers["n_calibration"] == ws.profile.n_calibration and numbers["n_evaluation"] == 6
    n = sum(p.numel() for p in ws.model.model.parameters())  # the paper names the model from the run
    assert numbers["model_name"] == ws.model.name and numbers["device"] == "CPU"
    assert numbers["model_size"] == (f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}K")
    assert "follows style instructions loosely" in numbers["size_caveat"]
    assert numbers["n_separable"] == int((result.evaluation["pairwise_accuracy"] >= 0.65).sum())
    assert set(numbers["tokens"]) == set(AXES) and 0 < numbers["pc1_percent"] <= 100
    assert numbers["pc1_percent"] == round(100 * calibration_pca(instructed)[1][0])
    calib = instructed.result.records.query("split == 'calibration' and pole == -1")
    assert numbers["tokens"]["warm_cold"]["negative"] == round(
        calib.query("axis == 'warm_cold'")["n_tokens"].mean()
    )
    assert list(result.paper_tables()) == ["calibration_evaluation", "profiles"]
    assert_paper_survives_reload(result, tmp_path)

    ws.save(result)
    loaded = CalibrationResult.load(ws)
    pd.testing.assert_frame_equal(loaded.evaluation, result.evaluation, check_dtype=False, check_names=False)
    assert loaded.mean_abs_axis_cosine == pytest.approx(result.mean_abs_axis_cosine)
    assert loaded.paper()["hidden_size"] == ws.model.hidden_size
    numbers_file = ws.paper_dir / ws.slug / "numbers-01_calibration@calibration.tex"
    assert "01_calibration/hard_threshold}{0.65}" in numbers_file.read_text()


def _long(values: np.ndarray) -> pd.DataFrame:
    """A questions x seeds matrix as the long table of `project_results` (one axis, "a")."""
    n, k = values.shape
    return pd.DataFrame(
        {"seed": np.tile(np.arange(k), n), "q_index": np.repeat(np.arange(n), k), "a": values.ravel()}
    )


def test_the_retest_icc_is_read_on_unclipped_projections():
    rng = np.random.default_rng(0)
    questions = rng.normal(0, 1.0, size=(30, 1))  # spread well beyond [-1, 1]
    values = questions + rng.normal(0, 0.2, size=(30, 3))
    icc = retest_icc(_long(values), ["a"])
    assert icc.loc["a", "icc"] == pytest.approx(stats.icc(values, "ICC2"))
    clipped = stats.icc(np.clip(values, -1, 1), "ICC2")
    assert icc.loc["a", "icc"] > clipped  # clipping squeezes the questions apart less than the noise
    assert icc.loc["a", "ci_low"] < icc.loc["a", "icc"] < icc.loc["a", "ci_high"]
    missing = _long(values).assign(a=lambda f: f["a"].mask((f["q_index"] == 0) & (f["seed"] == 1)))
    assert retest_icc(missing, ["a"]).loc["a", "icc"] == pytest.approx(stats.icc(values[1:], "ICC2"))
    assert retest_icc(_long(values[:, :1]), ["a"]).empty  # one seed: undefined


def test_the_fingerprint_result_is_the_one_notebook_02_and_the_command_line_save(both_readings, tmp_path):
    ws, instructed = both_readings
    instructed.axes.save(ws.axes_file)
    result = fingerprint.run(ws, seeds=[0, 1], progress=False)
    assert result.seeds == [0, 1] and list(result.fingerprint.index) == AXES
    assert list(result.icc.index) == AXES and result.model_id == ws.model.model_id
    assert result.per_question.shape == (ws.profile.n_baseline, len(AXES))
    numbers = result.paper()
    assert numbers["n_answers"] == 2 * ws.profile.n_baseline and numbers["n_seeds"] == 2
    assert numbers["baseline_tokens"] == ws.profile.baseline_tokens
    assert result.poles["warm_cold"] == ["warm", "cold"] and set(result.axis_cosines.index) == set(AXES)
    assert_paper_survives_reload(result, tmp_path)
    assert numbers["mean_icc"] == pytest.approx(result.icc["icc"].mean())
    table = result.paper_tables()["baseline_fingerprint_table"].frame
    assert list(table.columns) == [
        "mean",
        "ci_low",
        "ci_high",
        "std",
        "unit",
        "neutral",
        "obey_positive",
        "obey_negative",
        "ICC icc",
        "ICC ci_low",
        "ICC ci_high",
    ]

    ws.save(result)
    loaded = BaselineResult.load(ws)
    assert loaded.axes_id == result.axes_id and loaded.seeds == [0, 1]
    pd.testing.assert_frame_equal(loaded.icc, result.icc, check_dtype=False)
    pd.testing.assert_frame_equal(
        loaded.per_question, result.per_question, check_dtype=False, check_names=False
    )
    one_seed = fingerprint.run(ws, seeds=[0], progress=False)
    assert one_seed.icc.empty and "ICC icc" not in one_seed.paper_tables()["baseline_fingerprint_table"].frame


def _stage(rows: list[dict], states: list[np.ndarray]) -> pipeline.StageResult:
    from styleprobe.engine.extraction import Aggregation

    records = pd.DataFrame(rows).assign(n_measured=5, empty=False)
    return pipeline.StageResult(
        records, np.asarray(states, dtype=np.float32)[:, None], Aggregation((0,), (1.0,))
    )


def _obedience_run(rng, positive_moves: float, negative_moves: float, n=20, dim=6):
    """Calibration and neutral answers on one axis along e_0: the default sits at 0, the positive
    instruction moves answers by `positive_moves`, the negative one by -`negative_moves` (noise sd 0.3)."""
    rows, states, neutral_rows, neutral_states = [], [], [], []
    for split, count in (("calibration", n), ("evaluation", 8)):
        for q in range(count):
            default = rng.normal(scale=0.3, size=dim)
            for pole, move in ((1, positive_moves), (-1, -negative_moves)):
                rows.append({"axis": "warm_cold", "pole": pole, "split": split, "q_index": q})
                states.append(default + rng.normal(scale=0.3, size=dim) + np.eye(dim)[0] * move)
            if split == "calibration":
                neutral_rows.append({"axis": "warm_cold", "pole": 0, "split": "neutral", "q_index": q})
                neutral_states.append(default + rng.normal(scale=0.3, size=dim))
    return _stage(rows, states), _stage(neutral_rows, neutral_states)


@pytest.mark.parametrize(("positive_moves", "negative_moves"), [(1.0, 1.0), (0.0, 2.0), (2.0, 0.0)])
def test_the_neutral_control_measures_how_far_each_instruction_moves_answers(positive_moves, negative_moves):
    """The same default style under different obedience: its position between the poles moves (that is
    what a position relative to the instructed poles means), and the neutral control says why: obey+ and
    obey- recover how far each instruction moved answers, in units of half the pole separation."""
    from styleprobe.protocol.calibration import fit_from_result

    result, neutral = _obedience_run(np.random.default_rng(11), positive_moves, negative_moves)
    _, evaluation = fit_from_result(result, "m", neutral=neutral, layers=[0])
    row = evaluation.loc["warm_cold"]
    half = (positive_moves + negative_moves) / 2
    assert row["obey_positive"] == pytest.approx(positive_moves / half, abs=0.3)
    assert row["obey_negative"] == pytest.approx(negative_moves / half, abs=0.3)
    assert row["neutral"] == pytest.approx((row["obey_negative"] - row["obey_positive"]) / 2, abs=0.15)
    assert row["obey_positive_low"] < row["obey_positive"] < row["obey_positive_high"]
    assert row["n_neutral"] == 20 and row["validation"] == "valid"


def test_calibration_answers_the_neutral_control_beside_the_poles(both_readings):
    _, instructed = both_readings
    assert instructed.neutral is not None and len(instructed.neutral.records) == len(AXES) * 4
    assert (instructed.neutral.records["split"] == "neutral").all()
    assert {"neutral", "obey_positive", "obey_negative"} <= set(instructed.evaluation.columns)
    assert instructed.axes.calibration["warm_cold"]["n_neutral"] == 4


def test_whitespace_only_answers_are_never_fitted():
    """An answer of only whitespace has measured tokens but no text: it must not move the axis."""
    from styleprobe.protocol.calibration import fit_from_result

    result, _ = _obedience_run(np.random.default_rng(12), 1.0, 1.0)
    axes = fit_from_result(result, "m", layers=[0])[0]
    silent = result.records.copy()
    first = (silent["split"] == "calibration").to_numpy().nonzero()[0][0]
    silent.loc[first, "empty"] = True
    moved = result.per_layer.copy()
    moved[first] += 100.0  # whatever a whitespace answer's states are, they must not count
    again = fit_from_result(pipeline.StageResult(silent, moved, result.aggregation), "m", layers=[0])[0]
    kept = np.ones(len(silent), bool)
    kept[first] = False
    without = fit_from_result(result.select(kept), "m", layers=[0])[0]
    np.testing.assert_allclose(again.vectors, without.vectors, atol=1e-6)
    assert not np.allclose(without.vectors, axes.vectors, atol=1e-9)  # leaving one answer out shows
