import numpy as np
import pandas as pd
import pytest
from validation_fixtures import AXES, synthetic_result

from styleprobe.analyses import robustness
from styleprobe.protocol.calibration import fit_from_result
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol


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


def test_robustness_paper_counts_wordings_and_persistent_axes():
    rows = []
    for form in ("standard", "plain", "role", "minimal"):
        for axis, acc in (("warm_cold", 0.9), ("verbose_concise", 0.5)):
            good = form == "standard" or (axis == "verbose_concise" and form == "plain")
            rows.append({"formulation": form, "axis": axis, "pairwise_accuracy": 0.9 if good else acc})
    scores = pd.DataFrame(rows).assign(dprime=1.0, cosine=0.5)
    persistence = pd.Series({"warm_cold": 0.0, "verbose_concise": 2 / 3})
    result = robustness.RobustnessResult(scores, persistence)
    assert list(result.accuracy.index) == ["warm_cold", "verbose_concise"]  # the protocol's order
    numbers = result.paper()
    assert numbers["robustness_n_formulations"] == 3  # the standard set is not a wording
    assert numbers["robustness_accuracy"] == pytest.approx((3 * 0.9 + 0.9 + 2 * 0.5) / 6)
    assert numbers["robustness_persistent_axes"] == "verbose/concise"
    assert (
        robustness.RobustnessResult(scores, persistence * 0).paper()["robustness_persistent_axes"] == "none"
    )
