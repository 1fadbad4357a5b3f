"""Notebook 07's estimator comparison: every estimator at the study's reading and at a chosen one, the
nested choice beside the study's, and the learning curve over pooled instruction sets, all scored on
evaluation answers that chose nothing."""

from __future__ import annotations

import numpy as np
from test_selection import PLANTED, grid_result

from styleprobe.analyses import estimator_comparison as comparison
from styleprobe.protocol import estimators as est


def test_the_nested_choice_finds_the_planted_reading_where_the_study_reading_sees_noise():
    """The style lies at one block with one pooling (`grid_result`), which the study's reading (last 4
    blocks, decay 0.9) does not read: the study is near chance, the choice made on calibration folds
    is near perfect, for every estimator and for the nested choice of both."""
    table = comparison.compare(grid_result(np.random.default_rng(0), n_calibration=15), "m", 4)
    assert len(table) == len(PLANTED) * (2 * len(est.ESTIMATORS) + 1)
    by = table.set_index(["estimator", "reading", "axis"])["pairwise_accuracy"].sort_index()
    assert by.loc[("study", "study")].max() < 0.8
    assert by.loc[("nested choice", "chosen")].min() > 0.9
    for name in est.ESTIMATORS:
        assert by.loc[(name, "chosen")].mean() > by.loc[(name, "study")].mean() + 0.2, name
    assert (table["accuracy_ci_low"] <= table["pairwise_accuracy"]).all()
    assert (table["pairwise_accuracy"] <= table["accuracy_ci_high"]).all()
    result = comparison.EstimatorComparisonResult("test", table, comparison.pd.DataFrame())
    assert list(result.means().index[:2]) == [("study", "study"), ("study", "chosen")]


def test_pooled_sets_keep_their_questions_apart_and_only_the_first_sets_evaluation_answers():
    grids = {s: grid_result(np.random.default_rng(i)) for i, s in enumerate("ABC")}
    both = comparison.pooled(grids)
    rec = both.records
    assert (rec["split"] == "evaluation").sum() == (grids["A"].records["split"] == "evaluation").sum()
    cal = rec[rec["split"] == "calibration"]
    assert cal.groupby("axis")["q_index"].nunique().tolist() == [36, 36]  # 3 sets x 12 questions
    np.testing.assert_array_equal(both.per_layer[: len(grids["A"].records)], grids["A"].per_layer)


def test_the_learning_curve_draws_n_questions_per_pole_and_scores_both_methods():
    answers = grid_result(np.random.default_rng(2), n_calibration=12)
    curve = comparison.learning_curve(answers, "m", 4, sizes=(5, 10, 20), repeats=2)
    assert sorted(curve["n"].unique()) == [5, 10, 12]  # 20 exceeds the 12 questions: all of them instead
    counts = curve.groupby(["n", "method"]).size()
    assert counts[(5, "study")] == 2 * len(PLANTED) and counts[(12, "nested choice")] == len(PLANTED)
    means = comparison.EstimatorComparisonResult("test", comparison.pd.DataFrame(), curve).curve_means()
    assert means.loc[12, "nested choice"] > 0.9 and means.loc[12, "study"] < 0.8
