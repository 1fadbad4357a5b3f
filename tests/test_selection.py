"""Choosing each axis's reading and estimator: only calibration answers choose, a per-axis axis set projects
as if each axis were fitted on its own reading, and axes files of earlier versions load and project as
before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from styleprobe.engine.extraction import EMBEDDING, Aggregation, Readings
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol import selection
from styleprobe.protocol.axes import AxesError, AxisSet, axes_id
from styleprobe.protocol.calibration import GRID_DECAYS, fit_from_result, heldout_scores

ROOT = Path(__file__).resolve().parents[1]
GRID = Readings.grid([EMBEDDING, 0, 1, 2, 3], GRID_DECAYS)
# where each synthetic axis's style lies in the grid: (block, decay)
PLANTED = {"warm_cold": (2, 1.0), "formal_casual": (1, 0.0)}
ESTIMATORS = ["mean_diff", "zscore", "lda"]


def grid_result(rng, n_calibration=12, n_evaluation=6, dim=24) -> StageResult:
    """Calibration and evaluation answers of two axes, read at every block of a 4-block model with every
    pooling: noise everywhere but at each axis's planted (block, pooling), where the poles differ."""
    rows, grids = [], []
    direction = {name: rng.normal(size=dim) for name in PLANTED}
    for name, (block, decay) in PLANTED.items():
        for split, n in (("calibration", n_calibration), ("evaluation", n_evaluation)):
            for q in range(n):
                for pole in (1, -1):
                    cell = rng.normal(size=(len(GRID.decays), len(GRID.layers), dim))
                    cell[GRID.decays.index(decay), GRID.layers.index(block)] += 1.2 * pole * direction[name]
                    rows.append({"axis": name, "pole": pole, "split": split, "q_index": q})
                    grids.append(cell)
    records = pd.DataFrame(rows).assign(empty=False, n_measured=5, n_tokens=5, finished=True)
    return StageResult(records, np.stack(grids).astype(np.float32), GRID)


def choose(result: StageResult):
    return fit_from_result(result, "m", estimator=ESTIMATORS, reading=selection.candidate_readings(4))


def test_each_axis_chooses_the_reading_that_carries_its_style():
    axes, evaluation = choose(grid_result(np.random.default_rng(0)))
    for name, (block, decay) in PLANTED.items():
        assert axes.reading(name) == Aggregation((block,), (1.0,), decay)
    assert axes.per_axis and axes.layers == [1, 2] and axes.steering_layers == [[2], [1]]
    assert set(axes.estimators) <= set(ESTIMATORS)
    assert (evaluation["pairwise_accuracy"] > 0.8).all() and (evaluation["nested_accuracy"] > 0.8).all()
    assert list(evaluation["reading"]) == ["block 2, mean", "block 1, last"]


def test_changing_evaluation_answers_changes_no_choice_and_no_axis():
    """Evaluation questions never choose anything: whatever their answers' states (here: replaced by
    answers whose poles point the other way at another block), the chosen readings, estimators, vectors,
    centres and scales stay the same; only the held-out scores move."""
    rng = np.random.default_rng(1)
    result = grid_result(rng)
    axes, evaluation = choose(result)
    evaluation_rows = (result.records["split"] == "evaluation").to_numpy()
    changed = result.per_layer.copy()
    flipped = -changed[evaluation_rows]
    flipped[:, :, GRID.layers.index(3)] += 50 * rng.normal(size=flipped.shape[-1])
    changed[evaluation_rows] = flipped
    again, moved = choose(StageResult(result.records, changed, GRID))
    assert again.readings == axes.readings and again.estimators == axes.estimators
    np.testing.assert_array_equal(again.vectors, axes.vectors)
    np.testing.assert_array_equal(again.centres, axes.centres)
    np.testing.assert_array_equal(again.scales, axes.scales)
    assert (moved["nested_accuracy"] == evaluation["nested_accuracy"]).all()
    assert (moved["pairwise_accuracy"] < 0.5).all()  # the evaluation answers did change


def test_a_per_axis_axis_set_projects_like_each_axis_fitted_on_its_reading_alone():
    result = grid_result(np.random.default_rng(2))
    axes, _ = choose(result)
    states = axes.states(result)
    assert states.shape == (len(result.records), 2, 24)
    together = axes.project(states, clip=False)
    for i, name in enumerate(axes.names):
        mine = (result.records["axis"] == name).to_numpy()
        alone, _ = fit_from_result(
            result.select(mine).with_reading(axes.reading(name)),
            "m",
            estimator=axes.estimator(name),
            layers=[0],
        )
        np.testing.assert_allclose(alone.vectors[0], axes.vectors[i], atol=1e-6)
        assert (alone.centres[0], alone.scales[0]) == pytest.approx((axes.centres[i], axes.scales[i]))
        values = alone.project(result.select(mine).with_reading(axes.reading(name)).states, clip=False)[:, 0]
        np.testing.assert_allclose(values, together[mine, i], atol=1e-4)
    # per-axis states are needed: one aggregation's states are refused, not silently projected
    with pytest.raises(AxesError, match="own block"):
        axes.project(states[:, 0])
    per_axis = result.with_reading(axes.reading())  # what a reader of these axes gets in one pass
    np.testing.assert_allclose(axes.states(per_axis), states, atol=0)
    numbers = ["pairwise_accuracy", "dprime", "sign_accuracy"]
    np.testing.assert_allclose(heldout_scores(axes, per_axis)[numbers], heldout_scores(axes, result)[numbers])


def test_per_axis_axes_round_trip_through_their_files(tmp_path):
    axes, _ = choose(grid_result(np.random.default_rng(3)))
    back = AxisSet.load(axes.save(tmp_path / "per-axis"))
    assert back.reading() == axes.reading() and back.estimators == axes.estimators
    assert back.steering_layers == axes.steering_layers and axes_id(back) == axes_id(axes)
    if axes.steering is not None:
        np.testing.assert_array_equal(back.steering, axes.steering)
    sub = back.subset(["formal_casual"])
    # one axis left still reads its own way: its aggregation, and Readings (named) for readers of the set
    assert sub.layers == [1] and sub.reading("formal_casual") == Aggregation((1,), (1.0,), 0.0)
    assert sub.reading() == Readings((Aggregation((1,), (1.0,), 0.0),), ("formal_casual",))


def test_axes_files_of_earlier_versions_load_project_and_save_unchanged(tmp_path):
    """The committed SmolLM2 axes were written before readings and estimators existed: they load as the
    study's reading and estimator, keep the id the committed fingerprint records, project with the same
    formula, and are written back byte for byte."""
    path = ROOT / "axes" / "smollm2-135m-instruct.json"
    axes = AxisSet.load(path)
    assert axes.reading() == Aggregation() and not axes.per_axis
    assert axes.estimator(0) == "study" and axes.steering is None
    assert axes.steering_blocks("warm_cold") == [26, 27, 28, 29]
    assert axes_id(axes) == "3f098f7eea8e08af"  # the axes_id of results/smollm2-135m-instruct.json
    states = np.random.default_rng(4).normal(size=(5, axes.hidden_size))
    expected = (states @ axes.vectors.T.astype(np.float64) - axes.centres) / axes.scales
    np.testing.assert_allclose(axes.project(states), expected, rtol=1e-12)
    copy = axes.save(tmp_path / "copy")
    assert copy.read_bytes() == path.read_bytes()
    assert copy.with_suffix(".safetensors").read_bytes() == path.with_suffix(".safetensors").read_bytes()
