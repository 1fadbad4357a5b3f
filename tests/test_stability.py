import numpy as np
import pandas as pd
import pytest
from validation_fixtures import AXES, synthetic_result

from styleprobe.analyses import stability
from styleprobe.protocol.calibration import fit_from_result
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import load_axes, load_questions


def _fit(result):
    return fit_from_result(result, "synthetic", layers=[0])[0]


def test_set_cosines_are_near_one_for_independent_samples_of_one_direction():
    sets = {s: _fit(synthetic_result(seed=k, signal=6.0)) for k, s in enumerate("ABC")}
    table = stability.set_cosines(sets)
    assert list(table.columns) == ["A~B", "A~C", "B~C", "mean"]
    assert (table["mean"] > 0.8).all()
    weak = {s: _fit(synthetic_result(seed=k, signal=0.0)) for k, s in enumerate("AB")}
    assert (stability.set_cosines(weak)["mean"].abs() < 0.8).all()  # pure noise: no shared direction
    with pytest.raises(ValueError, match="at least two"):
        stability.set_cosines({"A": sets["A"]})


def test_projection_agreement_is_pearson_per_axis_and_skips_constant_columns():
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 1.0, 1.0, 1.0]})
    y = pd.DataFrame({"a": [2.0, 4.0, 6.0, 8.5], "b": [0.0, 1.0, 2.0, 3.0]})
    table = stability.projection_agreement({"A": x, "B": y})
    assert table.loc["a", "A~B"] == pytest.approx(np.corrcoef(x["a"], y["a"])[0, 1])
    assert np.isnan(table.loc["b", "A~B"])


def test_convergence_reaches_the_full_axis_and_never_uses_evaluation_answers():
    result = synthetic_result(n_cal=10, signal=4.0)
    full = _fit(result)
    conv = stability.convergence(result, full, (2, 5, 30), n_repeats=4)
    assert sorted(conv["n"].unique()) == [2, 5, 10]  # 30 does not fit; the full set is always the last size
    assert len(conv) == (4 + 4 + 1) * len(AXES)
    last = conv[conv["n"] == 10]
    np.testing.assert_allclose(last["cosine"], 1.0, atol=1e-6)
    means = conv.groupby("n")["cosine"].mean()
    assert means[2] < means[5] < means[10]  # more questions, closer to the full axis
    # the held-out accuracy is scored on evaluation answers only, which every subset keeps
    assert conv["pairwise_accuracy"].between(0, 1).all()


def test_formulation_items_cover_five_wordings_on_held_out_questions():
    prof = get_profile("smoke")
    items = stability.formulation_items(prof, list(AXES))
    assert len(items) == len(AXES) * 5 * prof.n_evaluation * 2
    bank, specs = load_questions(), load_axes()
    held_out = {q for a in AXES for q in bank.evaluation[a]}
    assert {it.question for it in items} <= held_out
    warm = [it for it in items if it.meta["axis"] == "warm_cold" and it.meta["formulation"] == "minimal"]
    assert {it.system for it in warm} == set(specs["warm_cold"].formulations["minimal"])


def test_formulation_scores_report_accuracy_and_cosine_per_wording():
    standard = synthetic_result(seed=0, signal=5.0)
    axes = _fit(standard)
    forms = synthetic_result(seed=1, n_cal=0, signal=5.0)
    forms.records["formulation"] = np.where(forms.records["q_index"] < 3, "plain", "role")
    scores = stability.formulation_scores(axes, standard, forms)
    assert set(scores["formulation"]) == {"standard", "plain", "role"}
    assert (scores["pairwise_accuracy"] > 0.8).all() and (scores["cosine"] > 0.5).all()
