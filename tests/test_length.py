"""The length confound (notebook 04): axes that co-vary only through answer length stop co-varying once
length is regressed out."""

import numpy as np
import pandas as pd
import pytest
from reloading import assert_paper_survives_reload
from statsmodels.stats.multitest import multipletests

from styleprobe.analyses.length import cross_axis_correlations, length_correlations, measure
from styleprobe.protocol.validity import MARK

AXES = ["verbose_concise", "formal_casual", "warm_cold"]


def _answers(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    tokens = rng.integers(10, 200, n)
    z = (tokens - tokens.mean()) / tokens.std()
    return pd.DataFrame(
        {
            "verbose_concise": 0.4 * z + rng.normal(0, 0.1, n),  # both follow length, nothing else shared
            "formal_casual": -0.3 * z + rng.normal(0, 0.1, n),
            "warm_cold": rng.normal(0, 0.3, n),  # independent of length
            "n_tokens": tokens,
            "finished": tokens < 190,  # the budget is 190 tokens
        }
    )


def test_length_explains_the_correlation_of_two_length_driven_axes():
    answers = _answers()
    names = AXES
    per_axis = length_correlations(answers, names)
    assert per_axis.loc["verbose_concise", "r"] > 0.9 and per_axis.loc["formal_casual", "r"] < -0.9
    assert abs(per_axis.loc["warm_cold", "r"]) < 0.2 and per_axis.loc["warm_cold", "p"] > 0.01
    before, after = cross_axis_correlations(answers, names)
    assert before.loc["verbose_concise", "formal_casual"] < -0.8
    assert abs(after.loc["verbose_concise", "formal_casual"]) < 0.2
    assert list(after.index) == names and np.allclose(np.diag(after), 1)


def test_the_result_gives_the_papers_numbers_and_table_from_its_saved_fields(tmp_path):
    answers = _answers()
    answers.loc[0, "warm_cold"] = np.nan  # an empty answer: left out
    result = measure(answers.assign(constant=1.0), [*AXES, "constant"], budget=190)
    assert list(result.per_axis.index) == AXES and len(result.answers) == 199
    assert result.mean_abs_r_after < result.mean_abs_r_before
    numbers = result.paper()
    assert numbers["n_answers"] == 199 and numbers["n_usable_axes"] == 3
    assert numbers["change_percent"] == round(100 * result.relative_change) < -50
    assert numbers["n_significant"] == 2 and numbers["strongest_axis"] in ("verbose/concise", "formal/casual")
    assert numbers["mean_length"] == pytest.approx(answers["n_tokens"].iloc[1:].mean())
    n_cut = int((~answers["finished"].iloc[1:]).sum())
    assert (numbers["budget"], numbers["n_cut"], numbers["cut_percent"]) == (190, n_cut, round(n_cut / 1.99))
    assert "answers" not in result.to_dict()  # the answers are for the figures, not saved
    assert result.paper_tables()["length_confound_table"].digits == 3
    assert_paper_survives_reload(result, tmp_path)


def test_only_validated_axes_are_tested_and_interpreted():
    """An axis that failed validation is shown with its r, marked, but never counted, named strongest or
    Holm-adjusted; the sentences' counts and lists come from the same columns as the table."""
    result = measure(_answers(), AXES, budget=190, validated=["formal_casual", "warm_cold"])
    assert result.validated == ["formal_casual", "warm_cold"]
    assert np.isnan(result.per_axis.loc["verbose_concise", "p_holm"])  # the strongest r, not tested
    numbers = result.paper()
    assert numbers["strongest_axis"] == "formal/casual" and numbers["strongest_r"] < -0.9
    assert numbers["n_significant"] == 1 and numbers["significant"] == "formal/casual"
    assert numbers["n_validated"] == 2 and numbers["n_not_interpreted"] == 1
    assert numbers["not_interpreted"] == "verbose/concise"
    table = result.paper_tables()["length_confound_table"].frame
    assert list(table.index) == [f"verbose_concise{MARK}", "formal_casual", "warm_cold"]
    none = measure(_answers(), AXES, budget=190, validated=[]).paper()
    assert none["strongest_axis"] == "none" and np.isnan(none["strongest_r"]) and none["n_significant"] == 0


def test_length_correlations_are_holm_adjusted_over_the_tested_axes():
    answers = _answers(40)
    rng = np.random.default_rng(2)
    answers["weak"] = 0.05 * (answers["n_tokens"] - 100) / 60 + rng.normal(0, 0.1, 40)
    names = [*AXES, "weak"]
    table = length_correlations(answers, names)
    np.testing.assert_allclose(table["p_holm"], multipletests(table["p"], method="holm")[1])
    fewer = length_correlations(answers, names, tested=["warm_cold", "weak"])
    tested = ["warm_cold", "weak"]
    expected = multipletests(table.loc[tested, "p"], method="holm")[1]
    np.testing.assert_allclose(fewer.loc[tested, "p_holm"], expected)
    assert fewer.loc[["verbose_concise", "formal_casual"], "p_holm"].isna().all()
