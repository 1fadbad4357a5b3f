"""Notebook 10's analysis: every model's saved baseline and calibration beside the study's baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from styleprobe.analyses import cross_model
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import BaselineResult
from styleprobe.report.results import update_results
from styleprobe.result import ResultsError
from styleprobe.workspace import Workspace


def save_model(ws: Workspace, slug: str, per_question: pd.DataFrame, accuracy: float) -> None:
    names = list(per_question.columns)
    baseline = BaselineResult(
        profile="smoke",
        seeds=[0],
        model_id=slug,
        axes_id="x",
        fingerprint=pd.DataFrame(),
        icc=pd.DataFrame(),
        behavioural_correlation=pd.DataFrame(),
        pc1_share=0.5,
        participation_ratio=1.5,
        eigenvalues=[],
        per_question=per_question,
        n_empty=0,
        baseline_tokens=8,
        poles={},
        axis_cosines=pd.DataFrame(),
    )
    evaluation = pd.DataFrame({"pairwise_accuracy": accuracy}, index=names)
    calibration = CalibrationResult(
        model_id=slug,
        profile="smoke",
        normalisation="median_iqr",
        evaluation=evaluation,
        axis_cosines=pd.DataFrame(),
        mean_abs_axis_cosine=0.1,
        n_answers=10,
        n_empty=0,
        mean_tokens_by_pole={},
        settings={},
        pca_explained=[],
        tokens_by_pole=pd.DataFrame(),
    )
    for result in (baseline, calibration):
        update_results(slug, result.name, result.to_dict(), ws.results_dir)


def test_cross_model_result(tmp_path):
    ws = Workspace.cross_model(root=tmp_path)
    with pytest.raises(ResultsError, match="run notebooks 01 and 02"):
        cross_model.run(ws)
    names = ws.protocol.names
    rng = np.random.default_rng(0)
    per_question = {
        "model-a": pd.DataFrame(rng.uniform(-1, 1, (6, len(names))), columns=names),
        "model-b": pd.DataFrame(rng.uniform(-1, 1, (6, len(names))), columns=names).assign(warm_cold=1.0),
    }
    for i, (slug, frame) in enumerate(per_question.items()):
        save_model(ws, slug, frame, accuracy=0.5 + 0.25 * i)
    result = cross_model.run(ws)
    imported = cross_model.imported_baselines(ws.protocol)
    assert result.ours == ["model-a", "model-b"] and result.n_imported == len(imported) == 15
    assert (
        list(result.means.index) == ["model-a", "model-b", *imported] and list(result.means.columns) == names
    )
    np.testing.assert_allclose(result.means.loc["model-a"], per_question["model-a"].mean())
    assert result.accuracy.loc["model-b", "mean"] == pytest.approx(0.75)
    shares = result.spectra.groupby("model")["share"]
    np.testing.assert_allclose(shares.sum(), 1.0)
    assert shares.size()["model-b"] == len(names) - 1  # the constant axis is left out
    assert result.pc1_share["model-a"] == pytest.approx(shares.max()["model-a"])

    ws.save(result)
    numbers = (ws.paper_dir / "cross_model" / "numbers-10_cross_model@cross_model.tex").read_text()
    assert r"\defresult{cross_model/10_cross_model/ours}{model-a, model-b}" in numbers
    assert r"\defresult{cross_model/10_cross_model/n_imported}{15}" in numbers
    means_table = (ws.paper_dir / "cross_model" / "cross_model_means.tex").read_text()
    assert "model & warm & verbose" in means_table and "PC1" in means_table
    again = cross_model.CrossModelResult.load(ws)
    assert again.paper() == result.paper()
    pd.testing.assert_frame_equal(again.means, result.means, check_names=False)
    assert cross_model.run(ws, include_imported=False).n_imported == 0
