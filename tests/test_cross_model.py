"""Notebook 10's analysis: every model's saved baseline and calibration beside the study's baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from styleprobe import stats
from styleprobe.analyses import cross_model
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import BaselineResult
from styleprobe.report.results import update_results
from styleprobe.result import ResultsError
from styleprobe.workspace import Workspace


def save_model(
    ws: Workspace, slug: str, per_question: pd.DataFrame, accuracy: float, ci_low: float | None = None
) -> None:
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
    low = accuracy - 0.1 if ci_low is None else ci_low
    evaluation = pd.DataFrame({"pairwise_accuracy": accuracy, "accuracy_ci_low": low}, index=names)
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
    save_model(ws, "model-a", per_question["model-a"], accuracy=0.9)
    save_model(ws, "model-b", per_question["model-b"], accuracy=0.75, ci_low=0.45)  # no valid axis
    result = cross_model.run(ws)
    imported = cross_model.imported_baselines(ws.protocol)
    assert result.ours == ["model-a", "model-b"] and result.n_imported == len(imported) == 15
    assert (
        list(result.means.index) == ["model-a", "model-b", *imported] and list(result.means.columns) == names
    )
    np.testing.assert_allclose(result.means.loc["model-a"], per_question["model-a"].mean())
    assert result.accuracy.loc["model-b", "mean"] == pytest.approx(0.75)
    assert result.valid.loc["model-a"].all() and not result.valid.loc["model-b"].any()

    # ours on both conventions, the study's models on its own (the covariance) only
    shares = result.spectra.groupby(["model", "scale"])["share"]
    np.testing.assert_allclose(shares.sum(), 1.0)
    assert shares.size()[("model-b", "correlation")] == len(names) - 1  # the constant axis is left out
    assert shares.size()[("model-b", "covariance")] == len(names)  # ... and kept, as the study did
    assert set(result.spectra.loc[result.spectra["model"].isin(imported), "scale"]) == {"covariance"}
    dims = result.dimensionality
    for slug, frame in per_question.items():
        varying = frame.loc[:, frame.nunique() > 1].to_numpy()
        assert dims.loc[slug, "pc1_share_covariance"] == pytest.approx(stats.pc1_share(frame, "covariance"))
        assert dims.loc[slug, "participation_ratio_correlation"] == pytest.approx(
            stats.participation_ratio(varying, "correlation")
        )
    assert dims.loc[list(imported), "pc1_share_correlation"].isna().all()
    assert dims.loc[list(imported), "participation_ratio_covariance"].notna().all()

    ws.save(result)
    numbers = (ws.paper_dir / "cross_model" / "numbers-10_cross_model@cross_model.tex").read_text()
    assert r"\defresult{cross_model/10_cross_model/ours}{model-a, model-b}" in numbers
    assert r"\defresult{cross_model/10_cross_model/n_imported}{15}" in numbers
    assert r"\defresult{cross_model/10_cross_model/n_ours_without_valid_axis}{1}" in numbers
    paper = result.paper()
    study = dims.loc[list(imported), "pc1_share_covariance"]
    assert paper["imported_pc1_percent_max"] == round(100 * study.max())
    assert paper["ours_pc1_percent_correlation_min"] == round(
        100 * dims.loc[result.ours, "pc1_share_correlation"].min()
    )
    means_table = (ws.paper_dir / "cross_model" / "cross_model_means.tex").read_text()
    assert "model & warm & verbose" in means_table and means_table.rstrip().endswith(r"\spmarked")
    model_b_row = next(line for line in means_table.splitlines() if line.startswith("model-b"))
    assert model_b_row.count(r"\textdagger{}") == len(names)
    model_a_row = next(line for line in means_table.splitlines() if line.startswith("model-a"))
    assert r"\textdagger{}" not in model_a_row
    dims_table = (ws.paper_dir / "cross_model" / "cross_model_dimensionality.tex").read_text()
    assert "PC1 cov. & PR cov. & PC1 corr. & PR corr." in dims_table
    again = cross_model.CrossModelResult.load(ws)
    assert again.paper() == result.paper()
    pd.testing.assert_frame_equal(again.means, result.means, check_names=False)
    pd.testing.assert_frame_equal(again.valid, result.valid, check_names=False)
    assert cross_model.run(ws, include_imported=False).n_imported == 0


def test_the_studys_models_read_on_its_convention_give_its_published_dimensionality(tmp_path):
    """The study's README (commit 2af2fc9) and data/article/entropy_analysis/RESULTS.md (063c0a8): DeepSeek
    7B effective dimensionality 3.66, Yi 9B 1.85, Qwen 7B 1.91 (test_stats checks all six it publishes)."""
    ws = Workspace.cross_model(root=tmp_path)
    names = ws.protocol.names
    save_model(ws, "model-a", pd.DataFrame(np.eye(4, len(names)), columns=names), accuracy=0.9)
    dims = cross_model.run(ws).dimensionality["participation_ratio_covariance"]
    published = {"deepseek_7b (imported)": 3.66, "yi_9b (imported)": 1.85, "qwen_7b (imported)": 1.91}
    assert {m: round(dims[m], 2) for m in published} == published
