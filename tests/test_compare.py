import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from styleprobe.analyses.compare import compare_fingerprints, flags, load_fingerprint, seed_flags
from styleprobe.apps.cli import main
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxesError, AxisSet, axes_id
from styleprobe.protocol.fingerprint import BaselineResult, summarise
from styleprobe.protocol.profiles import get_profile

AXES = ["warm_cold", "verbose_concise", "formal_casual"]


def _frame(shift=0.0, seed=0, n=20):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(scale=0.3, size=(n, 3)), columns=AXES).rename_axis("q_index")
    frame["verbose_concise"] += shift
    return frame


def test_identical_fingerprints_flag_nothing_and_a_real_shift_is_flagged_alone():
    a = _frame()
    same = compare_fingerprints(a, a)
    assert not same["flagged"].any() and (same["difference"] == 0).all()
    shifted = compare_fingerprints(a, _frame(shift=-0.5) + np.random.default_rng(1).normal(0, 0.05, (20, 3)))
    assert shifted["flagged"].tolist() == [False, True, False]
    assert shifted.loc["verbose_concise", "ci_high"] < 0 and shifted.attrs["paired"]


def test_a_small_shift_within_the_threshold_is_not_flagged_and_unpaired_inputs_work():
    a, b = _frame(n=30), _frame(shift=0.1, seed=5, n=30)
    b.index = b.index + 100  # no shared questions: each side is resampled on its own
    table = compare_fingerprints(a, b, threshold=0.5)
    assert not table.attrs["paired"] and not table["flagged"].any()


def _file(frame, path, model_id="org/m", axes_id="x1", validation=None):
    """A results file whose baseline section has `frame` as its per-question projections (and, given
    `validation`, {axis: held-out status}, its fingerprint table's validation column)."""
    result = BaselineResult(
        profile="smoke",
        seeds=[0],
        model_id=model_id,
        axes_id=axes_id,
        fingerprint=pd.DataFrame({"validation": pd.Series(validation or {}, dtype=object)}),
        icc=pd.DataFrame(),
        behavioural_correlation=pd.DataFrame(),
        pc1_share=np.nan,
        participation_ratio=np.nan,
        eigenvalues=[],
        per_question=frame,
        n_empty=0,
        baseline_tokens=8,
        poles={},
        axis_cosines=pd.DataFrame(),
    )
    return _write(result, path)


def _write(result: BaselineResult, path):
    path.write_text(json.dumps({"model": "m", "baseline": result.to_dict()}))
    return path


def test_fingerprints_load_from_the_baseline_section_of_a_results_file(tmp_path):
    frame = _frame()
    frame.loc[3, "warm_cold"] = np.nan  # an empty answer
    loaded = load_fingerprint(_file(frame, tmp_path / "m.json"))
    pd.testing.assert_frame_equal(loaded, frame, check_names=False)
    assert loaded.attrs == {
        "source": str(tmp_path / "m.json"),
        "model_id": "org/m",
        "axes_id": "x1",
        "validation": {},
        "per_seed": None,
    }
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(AxesError, match=r"bad\.json: not a fingerprint .*no 'baseline' section"):
        load_fingerprint(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({"baseline": {"per_question": frame.to_dict()}}))
    with pytest.raises(AxesError, match=r"old\.json: .*written by an older version; rerun notebook 02"):
        load_fingerprint(tmp_path / "old.json")


def test_cli_exit_status_gates_on_a_flagged_shift(tmp_path, capsys):
    a, b = _file(_frame(), tmp_path / "a.json"), _file(_frame(shift=0.8), tmp_path / "b.json")
    assert main(["compare", str(a), str(a)]) == 0
    assert main(["compare", str(a), str(b), "--figure", str(tmp_path / "f")]) == 1
    out = capsys.readouterr().out
    assert "flagged: verbose_concise" in out and (tmp_path / "f.png").exists()
    assert _status(["compare", str(a), str(tmp_path / "missing.json")]) == 2


def test_a_shift_on_an_axis_that_failed_validation_is_flagged_but_not_read_as_a_change_of_style(
    tmp_path, capsys
):
    status = {"warm_cold": "valid", "verbose_concise": "chance", "formal_casual": "valid"}
    a = _file(_frame(), tmp_path / "a.json", validation=status)
    b = _file(_frame(shift=0.8), tmp_path / "b.json", validation=status)
    assert compare_fingerprints(load_fingerprint(a), load_fingerprint(b))["validation"].to_dict() == status
    assert main(["compare", str(a), str(b)]) == 1  # the projection moved: the gate still fails
    out = capsys.readouterr().out
    assert "flagged: verbose_concise\u2020\n" in out and "no evidence of a change in that style" in out
    status["verbose_concise"] = "valid"
    a = _file(_frame(), tmp_path / "a.json", validation=status)
    b = _file(_frame(shift=0.8), tmp_path / "b.json", validation=status)
    assert main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "flagged: verbose_concise\n" in out and "no evidence" not in out


def _status(argv):
    """The CLI's exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


# -- an axis without data ------------------------------------------------------------------------------------
def test_an_axis_with_no_data_on_one_side_is_not_comparable_and_the_gate_does_not_pass(tmp_path, capsys):
    a, b = _frame(), _frame(seed=1)
    b["verbose_concise"] = np.nan
    table = compare_fingerprints(a, b)
    assert table.loc["verbose_concise", "status"] == "no data in B"
    assert not table.loc["verbose_concise", "flagged"] and np.isnan(
        table.loc["verbose_concise", "difference"]
    )
    assert table.attrs["not_comparable"] == {"verbose_concise": "no data in B"}
    assert (table.drop("verbose_concise")["status"] == "ok").all()
    assert compare_fingerprints(b, b).attrs["not_comparable"] == {"verbose_concise": "no data in A and B"}
    status = _status(["compare", str(_file(a, tmp_path / "a.json")), str(_file(b, tmp_path / "b.json"))])
    out, err = capsys.readouterr()
    assert status == 2 and "no data in B" in out  # the table is printed, the axis marked
    assert err.strip().splitlines() == [
        f"styleprobe: error: not comparable: verbose_concise (no data in B) (A = {tmp_path / 'a.json'}, "
        f"B = {tmp_path / 'b.json'})"
    ]


def test_an_axis_with_one_paired_value_is_not_comparable():
    a, b = _frame(n=5), _frame(seed=1, n=5)
    a.loc[1:, "warm_cold"] = np.nan
    table = compare_fingerprints(a, b)
    assert table.loc["warm_cold", "status"] == "fewer than 2 questions" and table.loc["warm_cold", "n_a"] == 1
    assert list(table.attrs["not_comparable"]) == ["warm_cold"]


# -- settings ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), -0.1, "0.2", True])
def test_the_threshold_is_checked(threshold):
    with pytest.raises(AxesError, match=r"threshold must be a finite number >= 0"):
        compare_fingerprints(_frame(), _frame(shift=1.0), threshold=threshold)


def test_a_zero_threshold_is_accepted():
    table = compare_fingerprints(_frame(), _frame(shift=-0.5, seed=3), threshold=0)
    assert table.loc["verbose_concise", "flagged"]


# -- the flag rule -------------------------------------------------------------------------------------------
def test_flags_uses_simultaneous_t_intervals():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(15, 3)), rng.normal(size=(15, 3)) + np.array([0.0, 0.0, 1.5])
    table = flags(a, b, threshold=0.2)
    assert table.attrs["ci"] == pytest.approx(1 - 0.05 / 3)
    for j in range(3):
        expected = scipy.stats.ttest_rel(b[:, j], a[:, j]).confidence_interval(1 - 0.05 / 3)
        assert table.loc[j, ["ci_low", "ci_high"]].tolist() == pytest.approx([expected.low, expected.high])
    assert table["flagged"].tolist() == [False, False, True]
    welch = flags(list(a.T), [b[:10, j] for j in range(3)], paired=False)
    expected = scipy.stats.ttest_ind(b[:10, 2], a[:, 2], equal_var=False).confidence_interval(1 - 0.05 / 3)
    assert welch.loc[2, ["ci_low", "ci_high"]].tolist() == pytest.approx([expected.low, expected.high])
    # a shift without spread is known exactly
    exact = flags(a, a + 0.5)
    assert exact["flagged"].all() and (exact["ci_low"] == exact["ci_high"]).all()
    with pytest.raises(ValueError, match="at least 2 values"):
        flags([[1.0]], [[2.0]])


def test_flags_under_the_null_fire_at_most_at_the_family_wise_rate():
    # 7 axes x 15 questions drawn alike on both sides: today's rule (a percentile bootstrap 95 % CI per
    # axis, no multiplicity control) flags some axis in 46 % of such comparisons
    rng = np.random.default_rng(0)
    draws = 400
    fired = [
        flags(rng.normal(size=(15, 7)), rng.normal(size=(15, 7)), threshold=0)["flagged"].any()
        for _ in range(draws)
    ]
    rate = np.mean(fired)
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / draws), rate


def _runs(rng, n_runs: int, shift: float = 0.0, n: int = 15, seeds: int = 5, offset: float = 0.3):
    """Pairs of fingerprints, 2 x `n_runs` x seeds x questions x 7 axes: the same questions on both sides
    (their effects drawn once per pair), an offset per seed that moves a whole run, and answer noise; B
    moved by `shift` on the first axis."""
    questions = rng.normal(0, 1, (1, n_runs, 1, n, 7))
    noise = rng.normal(0, offset, (2, n_runs, seeds, 1, 7)) + rng.normal(0, 0.95, (2, n_runs, seeds, n, 7))
    values = questions + noise
    values[1, ..., 0] += shift
    return values


def test_with_seed_offsets_question_level_flags_fire_and_seed_level_flags_hold_their_rate():
    rng = np.random.default_rng(11)
    draws, level = 1000, 0.05
    a, b = _runs(rng, draws)
    found = seed_flags(a.mean(-2), b.mean(-2), threshold=0)
    rate = found["flagged"].any(-1).mean()
    assert rate <= level + 2 * np.sqrt(level * (1 - level) / draws), rate
    one_seed = np.mean(
        [flags(x[0], y[0], threshold=0)["flagged"].any() for x, y in zip(a[:300], b[:300], strict=True)]
    )
    assert one_seed > 0.15  # a run's offset reads as a change when seeds are not a random effect
    with pytest.raises(ValueError, match="at least 3 seeds"):
        seed_flags(a[0, :1].mean(-2, keepdims=True), b[0, :1].mean(-2, keepdims=True))


def test_compare_treats_seeds_as_random_when_both_files_record_them():
    rng = np.random.default_rng(12)
    runs = _runs(rng, 1, n=10, seeds=3)[:, 0, ..., :3]
    frames = []
    for run in runs:
        long = pd.DataFrame(
            [
                {"seed": s, "q_index": q, **dict(zip(AXES, run[s, q], strict=True))}
                for s in range(3)
                for q in range(10)
            ]
        )
        frame = long.groupby("q_index")[AXES].mean()
        frame.attrs["per_seed"] = long
        frames.append(frame)
    table = compare_fingerprints(*frames)
    assert table.attrs["seeds"] == (3, 3)
    expected = seed_flags(runs[0].mean(-2), runs[1].mean(-2))
    np.testing.assert_allclose(table["ci_low"], expected["ci_low"])
    frames[0].attrs["per_seed"] = None
    bare = compare_fingerprints(*frames)
    assert bare.attrs["seeds"] is None and any("not a random effect" in n for n in bare.attrs["notes"])


def test_compare_fingerprints_flags_over_the_comparable_axes():
    a, b = _frame(), _frame(seed=1)
    b["verbose_concise"] = np.nan
    table = compare_fingerprints(a, b)
    assert table.attrs["ci"] == pytest.approx(1 - 0.05 / 2)  # two comparable axes
    found = flags(a[["warm_cold", "formal_casual"]].to_numpy(), b[["warm_cold", "formal_casual"]].to_numpy())
    np.testing.assert_allclose(table.loc[["warm_cold", "formal_casual"], "ci_low"], found["ci_low"])


# -- pairing -------------------------------------------------------------------------------------------------
def test_one_shared_question_among_others_is_refused():
    a, b = _frame(n=10), _frame(seed=1, n=10)
    b.index = b.index + 9  # shares q_index 9 only
    with pytest.raises(AxesError, match=r"share only one question \(q_index 9\)"):
        compare_fingerprints(a, b)


def test_a_partial_overlap_is_paired_over_the_shared_questions_and_reported(tmp_path, capsys):
    a, b = _frame(n=20), _frame(shift=0.05, n=20)
    b.index = b.index + 5  # questions 5..19 shared, 0..4 only in A, 20..24 only in B
    table = compare_fingerprints(a, b)
    assert table.attrs["paired"] and table.attrs["n_questions"] == 15 and table.attrs["left_out"] == (5, 5)
    assert (table["n_a"] == 15).all() and (table["n_b"] == 15).all()
    expected = (b.loc[5:19] - a.loc[5:19]).mean()
    np.testing.assert_allclose(table["difference"], expected[table.index])
    np.testing.assert_allclose(table["mean_a"], a.loc[5:19].mean()[table.index])
    assert any(
        "paired over the 15 shared questions" in n and "5 questions" in n for n in table.attrs["notes"]
    )
    main(["compare", str(_file(a, tmp_path / "a.json")), str(_file(b, tmp_path / "b.json"))])
    assert "paired over the 15 shared questions; left out: 5 questions" in capsys.readouterr().out


def test_disjoint_question_sets_are_compared_unpaired_and_said_so():
    a, b = _frame(n=10), _frame(seed=1, n=10)
    b.index = b.index + 100
    table = compare_fingerprints(a, b)
    assert not table.attrs["paired"] and table.attrs["n_questions"] == (10, 10)
    assert any("no shared questions: unpaired" in n for n in table.attrs["notes"])


def test_questions_without_any_value_do_not_count_as_shared():
    a, b = _frame(n=10), _frame(seed=1, n=10)
    a.loc[3] = np.nan  # an empty answer in A
    table = compare_fingerprints(a, b)
    assert table.attrs["paired"] and table.attrs["n_questions"] == 9 and table.attrs["left_out"] == (0, 1)


# -- identity ------------------------------------------------------------------------------------------------
def _axes(model_id="org/parent", centre=0.0):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(3, 4)).astype(np.float32)
    return AxisSet(
        names=list(AXES),
        poles=[("a", "b")] * 3,
        vectors=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
        centres=np.full(3, centre),
        scales=np.ones(3),
        model_id=model_id,
        hidden_size=4,
        layers=[0],
        aggregation={"layers": [0], "layer_weights": [1.0], "decay": 0.9},
    )


def _results(shift=0.0, n=12):
    rng = np.random.default_rng(3)
    records = pd.DataFrame(
        {"q_index": range(n), "n_measured": 5, "n_tokens": 5, "empty": False, "finished": True}
    )
    states = rng.normal(scale=0.3, size=(n, 1, 4)).astype(np.float32) + shift
    return {0: StageResult(records, states, Aggregation((0,), (1.0,), 0.9))}


def test_axes_id_follows_the_axes_content_not_the_object(tmp_path):
    axes = _axes()
    assert axes_id(axes) == axes_id(_axes()) == axes_id(AxisSet.load(axes.save(tmp_path / "copy.json")))
    assert axes_id(_axes(centre=0.1)) != axes_id(axes) != axes_id(_axes(model_id="org/child"))
    assert axes_id(axes.subset(["warm_cold"])) != axes_id(axes)


def _fingerprint(axes, model_id="org/parent", shift=0.0) -> BaselineResult:
    return summarise(axes, _results(shift), model_id, profile=get_profile("smoke"))


def test_a_fingerprint_carries_model_and_axes_identity(tmp_path):
    axes = _axes()
    frame = load_fingerprint(_write(_fingerprint(axes), tmp_path / "p.json"))
    assert list(frame.columns) == AXES and len(frame) == 12
    assert frame.attrs["model_id"] == "org/parent" and frame.attrs["axes_id"] == axes_id(axes)


def test_fingerprints_on_different_axes_are_refused(tmp_path):
    a = _write(_fingerprint(_axes()), tmp_path / "a.json")
    b = _write(_fingerprint(_axes(centre=0.3)), tmp_path / "b.json")
    with pytest.raises(AxesError, match=r"projected on different axes \(axes id"):
        compare_fingerprints(load_fingerprint(a), load_fingerprint(b))
    assert _status(["compare", str(a), str(b)]) == 2


def test_different_models_on_the_same_axes_are_compared_and_named(tmp_path, capsys):
    axes = _axes()
    parent = _fingerprint(axes)
    child = dataclasses.replace(
        parent, model_id="org/child"
    )  # the fine-tuned model read with its parent's axes
    a, b = _write(parent, tmp_path / "a.json"), _write(child, tmp_path / "b.json")
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert f"B = {b} (model org/child, axes id {axes_id(axes)})" in out
    assert "A and B are different models (org/parent vs org/child), projected on the same axes" in out
    assert "warning" not in out


def test_frames_without_identity_are_compared_with_a_warning():
    a, b = _frame(), _frame(seed=1)
    notes = compare_fingerprints(a, b).attrs["notes"]
    assert any("whether A and B share axes cannot be checked" in n for n in notes)
    assert any("A and B: no record of the model" in n for n in notes)


@pytest.mark.realmodel
def test_the_embedded_model_against_itself_and_under_a_system_prompt(tmp_path, capsys):
    """Two seeds of the same model differ by sampling noise only; answering in another language moves the
    projections (measured with the committed axes: verbose/concise -4.6, CI [-8.4, -0.9], and
    empathetic/analytical -4.1 [-6.3, -2.0] at 99.3 %). No SmolLM2 axis passes held-out validation, so the
    gate flags the moved projection and says it is no evidence of a change in style; a casual-style prompt
    is not flagged at all (formal/casual -0.64 [-1.65, 0.36])."""
    from pathlib import Path

    axes = Path(__file__).parents[1] / "axes" / "smollm2-135m-instruct.json"
    common = [
        "fingerprint",
        "--profile",
        "quick",
        "--axes-file",
        str(axes),
        "--root",
        str(tmp_path),
        "--quiet",
    ]
    assert main([*common, "--seeds", "0"]) == 0
    seed0 = tmp_path / "results" / "smollm2-135m-instruct.json"  # the model's baseline, as notebook 02's
    seed1, system = tmp_path / "seed1.json", tmp_path / "system.json"
    assert main([*common, "--seeds", "1", "--out", str(seed1)]) == 0
    assert main(["compare", str(seed0), str(seed1)]) == 0  # itself: no flagged shift
    capsys.readouterr()
    assert main([*common, "--seeds", "0", "--system", "Answer in French.", "--out", str(system)]) == 0
    assert main(["compare", str(seed0), str(system)]) == 1  # the projections moved
    out = capsys.readouterr().out.split("flagged:")[-1]
    assert "\u2020" in out.splitlines()[0] and "no evidence of a change in that style" in out
