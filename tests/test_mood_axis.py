"""Reading the original study's files and recomputing its published numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from styleprobe.formats import mood_axis
from styleprobe.stats import icc

HERE = Path(__file__).resolve().parent
ARTICLE = HERE / "data" / "mood_axis" / "article"
REPLICATION = ARTICLE / "benchmark_replication"
BASELINES = HERE.parent / "data" / "mood_axis" / "baselines"

PUBLISHED_ICC = mood_axis.load_replication_summary(REPLICATION / "replication_summary.json")
ICC_CASES = [
    (m, a) for m in PUBLISHED_ICC.index for a in PUBLISHED_ICC.columns if np.isfinite(PUBLISHED_ICC.at[m, a])
]
BASELINE_FILES = sorted(BASELINES.glob("*.json"))


@pytest.mark.parametrize(("model", "axis"), ICC_CASES)
def test_published_axis_icc_reproduced(model, axis):
    """ICC(2,1) with the 9 scenarios' last-turn values as subjects and the 5 seeds as raters."""
    long = mood_axis.load_replication(REPLICATION / f"{model}_replication.json")
    matrix = mood_axis.replication_seed_matrix(long, axis)
    assert matrix.shape == (9, 5)
    assert icc(matrix.to_numpy(), "ICC2") == pytest.approx(PUBLISHED_ICC.at[model, axis], abs=1e-6)


def test_published_icc_table_complete():
    assert len(ICC_CASES) == 4 * 3 + 2 * 7
    assert set(PUBLISHED_ICC.index) == {
        p.name.removesuffix("_replication.json") for p in REPLICATION.glob("*_rep*")
    }


def test_replication_long_format():
    long = mood_axis.load_replication(REPLICATION / "qwen_7b_replication.json")
    assert list(long.columns) == ["seed", "scenario", "turn", "axis", "value", "passed", "checked"]
    assert sorted(long["seed"].unique()) == [42, 123, 456, 789, 1024]
    assert long["scenario"].nunique() == 9
    # 3 one-turn + 6 two-turn scenarios, 3 axes, 5 seeds
    assert len(long) == (3 + 6 * 2) * 3 * 5
    first = long.query("seed == 42 and scenario == 'Warmth Increase' and axis == 'warm_cold'")
    assert first["value"].tolist() == pytest.approx([0.11445236951112747, 0.3321478068828583])
    assert first["checked"].tolist() == [False, True]


def test_replication_seed_matrix_rejects_unknown_axis():
    long = mood_axis.load_replication(REPLICATION / "qwen_7b_replication.json")
    with pytest.raises(ValueError, match="formal_casual"):
        mood_axis.replication_seed_matrix(long, "formal_casual")


def test_baselines_copied():
    assert len(BASELINE_FILES) == 16
    assert (BASELINES.parent / "LICENSE").is_file()


@pytest.mark.parametrize("path", BASELINE_FILES, ids=lambda p: p.name)
def test_baseline_mean_std_recomputed(path):
    """The files' per-axis std is the population std (ddof=0), mean/min/max are plain."""
    rec = mood_axis.load_baseline(path)
    assert rec.values.shape[0] == 30
    assert rec.convention == "uncentred"
    assert list(rec.summary.index) == list(rec.values.columns)
    v, s = rec.values, rec.summary
    np.testing.assert_allclose(v.mean(), s["mean"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(v.std(ddof=0), s["std"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(v.min(), s["min"], rtol=0, atol=0)
    np.testing.assert_allclose(v.max(), s["max"], rtol=0, atol=0)
    varying = s["std"] > 0  # deepseek_7b and gpt_oss_20b have axes clipped to ±1 on all 30 questions
    assert np.all(np.abs(v.std(ddof=1) - s["std"])[varying] > 1e-4)  # ddof=1 does not match
    assert len(rec.responses) in (0, 30)


def test_baseline_fields():
    rec = mood_axis.load_baseline(BASELINES / "qwen_7b_baseline.json")
    assert (rec.model, rec.model_id) == ("qwen_7b", "Qwen/Qwen2.5-7B-Instruct")
    assert len(rec.values.columns) == 7
    assert rec.responses[0]["question"] == "How do tides work?"
    small = mood_axis.load_baseline(BASELINES / "llama_1b_baseline.json")
    assert list(small.values.columns) == [
        "warm_cold",
        "confident_cautious",
        "verbose_concise",
        "direct_evasive",
    ]
    assert small.responses == []


@pytest.mark.parametrize("name", ["gpt_oss_20b_drift.json", "qwen_1.5b_drift.json"])
def test_drift_summary_recomputed(name):
    """Least-squares slope of value on turn per scenario; mean and ddof=0 std over scenarios."""
    long, summary = mood_axis.load_drift(ARTICLE / "extended_drift" / name)
    assert list(long.columns) == ["category", "scenario_id", "turn", "axis", "value", "n_tokens"]
    assert long["n_tokens"].isna().all()  # these two files carry no token counts
    for axis, row in summary.iterrows():
        per = long[long["axis"] == axis].sort_values("turn").groupby("scenario_id")
        slopes = per.apply(lambda g: np.polyfit(g["turn"], g["value"], 1)[0])
        start, end = per["value"].first(), per["value"].last()
        assert slopes.mean() == pytest.approx(row["mean_slope"], abs=1e-12)
        assert slopes.std(ddof=0) == pytest.approx(row["std_slope"], abs=1e-12)
        assert start.mean() == pytest.approx(row["mean_start"], abs=1e-12)
        assert end.mean() == pytest.approx(row["mean_end"], abs=1e-12)
        assert end.mean() - start.mean() == pytest.approx(row["mean_delta"], abs=1e-12)


def test_drift_shape():
    long, summary = mood_axis.load_drift(ARTICLE / "extended_drift" / "gpt_oss_20b_drift.json")
    assert long["scenario_id"].nunique() == 20
    assert sorted(long["turn"].unique()) == [1, 2, 3, 4, 5, 6]
    assert len(long) == 20 * 6 * 8
    assert len(summary) == 8


def test_axis_npz():
    names, vectors, scales = mood_axis.load_axis_npz(ARTICLE / "axis_stability" / "qwen_7b_set_A_axes.npz")
    meta = json.loads((ARTICLE / "axis_stability" / "qwen_7b_set_A_meta.json").read_text())
    assert names == list(meta["axes"])
    assert vectors.shape == (7, 3584)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scales, [meta["axes"][a]["scale"] for a in names], rtol=0, atol=0)


def test_malformed_files_raise(tmp_path):
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json"):
        mood_axis.load_baseline(bad_json)
    no_axes = tmp_path / "no_axes.json"
    no_axes.write_text(json.dumps({"model": "m", "model_id": "m", "n_questions": 2}))
    with pytest.raises(ValueError, match=r"no_axes\.json: malformed mood-axis baseline"):
        mood_axis.load_baseline(no_axes)
    short = tmp_path / "short.json"
    entry = {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "values": [0.0]}
    short.write_text(json.dumps({"model": "m", "model_id": "m", "n_questions": 2, "axes": {"a_b": entry}}))
    with pytest.raises(ValueError, match=r"short\.json"):
        mood_axis.load_baseline(short)
    for loader in (mood_axis.load_replication, mood_axis.load_drift, mood_axis.load_replication_summary):
        with pytest.raises(ValueError, match=r"no_axes\.json"):
            loader(no_axes)
    npz = tmp_path / "axes.npz"
    np.savez(npz, warm_cold=np.ones(3))
    with pytest.raises(ValueError, match=r"axes\.npz: malformed"):
        mood_axis.load_axis_npz(npz)
    with pytest.raises(FileNotFoundError):
        mood_axis.load_drift(tmp_path / "missing.json")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz"):
        mood_axis.load_axis_npz(tmp_path / "junk.npz")
