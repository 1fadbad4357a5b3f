import numpy as np
import pandas as pd
import pytest
from validation_fixtures import AXES, synthetic_result

from styleprobe.analyses import robustness
from styleprobe.protocol.calibration import fit_from_result
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol
from styleprobe.result import axis_label


def test_formulation_items_cover_five_wordings_on_held_out_questions():
    prof, protocol = get_profile("smoke"), Protocol.load()
    items = robustness.formulation_items(protocol, prof, list(AXES))
    assert len(items) == len(AXES) * 5 * prof.n_evaluation * 2
    held_out = {q for a in AXES for q in protocol.questions.evaluation[a]}
    assert {it.question for it in items} <= held_out
    warm = [it for it in items if it.meta["axis"] == "warm_cold" and it.meta["formulation"] == "minimal"]
    assert {it.system for it in warm} == set(protocol.axes["warm_cold"].formulations["minimal"])
    assert (
        len(robustness.formulation_items(protocol, prof)) == len(protocol.names) * 5 * prof.n_evaluation * 2
    )


def test_formulation_scores_report_accuracy_and_cosine_per_wording():
    standard = synthetic_result(seed=0, signal=5.0)
    axes = fit_from_result(standard, "synthetic", layers=[0])[0]
    forms = synthetic_result(seed=1, n_cal=0, signal=5.0)
    forms.records["formulation"] = np.where(forms.records["q_index"] < 3, "plain", "role")
    scores = robustness.formulation_scores(axes, standard, forms)
    assert set(scores["formulation"]) == {"standard", "plain", "role"}
    assert (scores["pairwise_accuracy"] > 0.8).all() and (scores["cosine"] > 0.5).all()


WORDINGS = ("plain", "minimal", "role", "behavioural", "example")


def _result(weak_wordings: dict[str, int], validation: dict[str, str]) -> robustness.RobustnessResult:
    """Scores where each axis is weak (accuracy 0.5) under its first k wordings and separable (0.9) under
    the others and the standard set."""
    rows = [
        {"formulation": form, "axis": axis, "pairwise_accuracy": 0.5 if i < k else 0.9}
        for axis, k in weak_wordings.items()
        for i, form in enumerate(("standard", *WORDINGS), start=-1)
    ]
    scores = pd.DataFrame(rows).assign(dprime=1.0, cosine=0.5)
    return robustness.RobustnessResult(scores, pd.Series(validation))


def test_robustness_paper_counts_wordings_and_persistent_axes():
    weak = {"warm_cold": 0, "verbose_concise": 5, "formal_casual": 3, "patient_irritated": 2}
    result = _result(weak, {"warm_cold": "valid", "verbose_concise": "chance", "formal_casual": "valid"})
    assert list(result.accuracy.index) == list(weak)  # the protocol's order
    assert result.persistence.to_dict() == {a: k / 5 for a, k in weak.items()}
    numbers = result.paper()
    assert numbers["robustness_n_formulations"] == 5  # the standard set is not a wording
    assert numbers["robustness_accuracy"] == pytest.approx((10 * 0.9 + 10 * 0.5) / 20)  # 10 weak cells of 20
    assert numbers["robustness_persistent_axes"] == "verbose/concise\u2020, formal/casual"
    assert robustness.persistent_axes(result.persistence) == ["verbose_concise", "formal_casual"]
    assert _result({"warm_cold": 0}, {"warm_cold": "valid"}).paper()["robustness_persistent_axes"] == "none"


def test_the_persistence_sentence_states_the_rule_that_selects_its_axes():
    # formal/casual is weak under 3 of 5 wordings: selected by the code's rule, not "under every wording"
    weak = {"warm_cold": 1, "verbose_concise": 5, "formal_casual": 3, "patient_irritated": 2}
    result = _result(weak, dict.fromkeys(weak, "valid"))
    sentence = result.paper()["robustness_persistent_sentence"]
    least = robustness.fewest_wordings(5)
    assert least == 3 and f"under at least {least} of the 5 wordings" in sentence
    assert f"below {robustness.WEAK_ACCURACY:g}" in sentence and "every" not in sentence
    listed = sentence.split(": ", 1)[1].rstrip(".").split(", ")
    assert listed == [axis_label(a) for a, k in weak.items() if k >= least]
    assert sorted(listed) != sorted(axis_label(a) for a, k in weak.items() if k == 5)  # the predicates differ
    marked = _result(weak, {**dict.fromkeys(weak, "valid"), "formal_casual": "chance"})
    assert "formal/casual\u2020" in marked.persistent_sentence() and "marked" in marked.persistent_sentence()
    assert "marked" not in sentence
