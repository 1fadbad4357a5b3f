"""Notebook 07's analyses run end to end on a tiny random model: the run store's folders keep their names
(so existing runs resume), the results hold their sections' keys, and a second run generates nothing."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from reloading import assert_paper_survives_reload

import styleprobe.engine.pipeline as pipeline
from styleprobe import paths
from styleprobe.analyses import ablation, calibration_context, robustness, stability
from styleprobe.analyses import instruction_benchmark as benchmark
from styleprobe.errors import UsageError
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol
from styleprobe.report import paper
from styleprobe.workspace import Workspace

AXES = ["warm_cold", "verbose_concise"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def ws(tiny, tmp_path_factory):
    protocol = Protocol.load()
    protocol = replace(protocol, axes={n: protocol.axes[n] for n in AXES})
    sizes = dict(n_calibration=3, n_evaluation=2, n_baseline=3, calibration_tokens=6, baseline_tokens=6)
    profile = get_profile("smoke", **sizes)
    handle = tiny("qwen2")
    return Workspace(handle, profile, protocol, handle.slug, paths.folders(tmp_path_factory.mktemp("root")))


def _printed(numbers) -> dict:
    return {k: paper.format_value(v) for k, v in paper.flatten(numbers).items()}


@pytest.fixture
def stored_baseline(monkeypatch):
    """Notebook 02's result as stability.run reads it: its seeds and its ICC."""
    icc = pd.DataFrame({"icc": [0.3, 0.6], "ci_low": [0.1, 0.2], "ci_high": [0.5, 0.9]}, index=AXES)
    stored = SimpleNamespace(seeds=SEEDS, icc=icc)
    monkeypatch.setattr(stability.BaselineResult, "load", classmethod(lambda cls, ws: stored))
    return stored


def test_stability_reads_the_baseline_icc_and_adds_the_benchmark_icc(ws, stored_baseline, tmp_path):
    result = stability.run(ws, seeds=SEEDS, benchmark_seeds=[0, 1], convergence_sizes=[2], n_repeats=3)
    assert list(result.set_accuracy.columns) == ["A", "B", "C"] and list(result.set_accuracy.index) == AXES
    assert list(result.set_cosines.columns) == ["A~B", "A~C", "B~C", "mean"]
    pd.testing.assert_series_equal(
        result.retest["baseline_icc"], stored_baseline.icc["icc"], check_names=False, check_index_type=False
    )
    assert {"snr", "benchmark_icc", "benchmark_n_subjects"} <= set(result.retest.columns)
    evaluation = calibrate(ws, context="uninstructed", progress=False).evaluation
    pd.testing.assert_series_equal(result.validation, evaluation["validation"], check_names=False)
    assert sorted(result.convergence["n"].unique()) == [2, 3] and len(result.subsets) == (3 + 1) * len(AXES)
    ws.save(result)
    assert _printed(stability.StabilityResult.load(ws).paper()) == _printed(result.paper())
    assert_paper_survives_reload(result, tmp_path)
    runs = ws.runs.root
    assert (runs / f"benchmark-{ws.profile.name}" / "seeds-0-1" / "turn-1-uninstructed").is_dir()
    with pytest.raises(UsageError, match="seeds"):
        stability.run(ws, seeds=[0])


def test_benchmark_reuses_its_stored_answers(ws, monkeypatch):
    first = benchmark.run(ws, seeds=[0, 1])
    monkeypatch.setattr(pipeline, "generate", lambda *a, **k: pytest.fail("answers must be reused"))
    result = benchmark.run(ws, seeds=[0, 1])
    pd.testing.assert_frame_equal(result.scenarios, first.scenarios)
    assert len(result.scenarios) == len(AXES) * len(benchmark.SCENARIOS) and result.names == AXES
    counted = {"warm_cold", "verbose_concise"} & set(result.validated())  # of the study's subset
    assert result.study_subset["study_total"] == 3 * len(counted)  # x system_positive, increase, decrease


def test_robustness_and_ablation_keep_their_run_folders(ws):
    robust = robustness.run(ws)
    assert set(robust.scores["formulation"]) == {
        "standard",
        "plain",
        "minimal",
        "role",
        "behavioural",
        "example",
    }
    assert list(robust.persistence.index) == AXES and robust.persistence.between(0, 1).all()
    name = ws.profile.name
    assert (ws.runs.root / f"formulations-{name}").is_dir()
    assert (ws.runs.root / f"formulations-{name}-uninstructed").is_dir()
    abl = ablation.run(ws)
    n_layers = ws.model.n_layers
    assert abl.n_configurations == len(abl.ranking) == (n_layers + 2 * 4) * 4  # k = 2, 3, 4, 6 fit 6 blocks
    assert abl.default_mean_rank_across_models == abl.default_rank  # the only model under the root
    assert (ws.runs.root / f"reread-all-layers-A-uninstructed-{name}").is_dir()


def test_context_ablation_saves_the_other_readings_axes(ws):
    result = calibration_context.run(ws, seeds=SEEDS)
    assert list(result.per_axis.index) == AXES
    np.testing.assert_allclose(result.means, result.per_axis.mean())
    other = AxisSet.load(ws.runs.axes("instructed"))
    assert other.meta["context"] == "instructed" and other.names == AXES
    standard = calibrate(ws, context="uninstructed", progress=False).axes
    cosine = np.sum(other.vectors * standard.vectors, axis=1)
    np.testing.assert_allclose(result.per_axis["cosine_between_readings"], cosine, atol=1e-6)
