import numpy as np
import pytest

import styleprobe.engine.pipeline as pipeline
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.profiles import get_profile

AXES = ["warm_cold", "formal_casual", "patient_irritated"]


@pytest.fixture(scope="module")
def both_readings(tiny, tmp_path_factory):
    """A tiny random model calibrated with the instruction in context and without it."""
    handle, runs = tiny("qwen2"), tmp_path_factory.mktemp("runs")
    prof = get_profile("smoke", n_evaluation=6)
    instructed = calibrate(handle, prof, runs, axes=AXES, read_with_system=True, progress=False)
    return handle, prof, runs, instructed


def test_the_default_calibration_rereads_the_same_answers_without_the_instruction(both_readings, monkeypatch):
    handle, prof, runs, instructed = both_readings
    monkeypatch.setattr(pipeline, "generate", lambda *a, **k: pytest.fail("answers must be reused"))
    plain = calibrate(handle, prof, runs, axes=AXES, progress=False)
    assert plain.result.records["response"].tolist() == instructed.result.records["response"].tolist()
    assert not np.allclose(plain.result.per_layer, instructed.result.per_layer)
    assert plain.axes.meta["context"] == "uninstructed" and instructed.axes.meta["context"] == "instructed"


def test_instruction_in_context_separates_answers_whose_text_has_no_style(both_readings):
    """A random-init model writes noise whatever the instruction, so any held-out separation of its answers
    comes from reading the instruction itself: the instructed reading's accuracy is inflated by it."""
    handle, prof, runs, instructed = both_readings
    plain = calibrate(handle, prof, runs, axes=AXES, read_with_system=False, progress=False)
    leak = instructed.evaluation["pairwise_accuracy"].mean()
    text_only = plain.evaluation["pairwise_accuracy"].mean()
    assert leak > 0.8 and leak - text_only > 0.2


def test_only_set_a_answers_the_held_out_questions():
    from styleprobe.protocol.calibration import calibration_items

    prof = get_profile("smoke")
    a = calibration_items(prof, AXES, "A")
    b = calibration_items(prof, AXES, "B")
    assert {it.meta["split"] for it in a} == {"calibration", "evaluation"}
    assert {it.meta["split"] for it in b} == {"calibration"}
    assert not {it.question for it in a} & {it.question for it in b}  # B asks its own questions
    assert len(b) == len(AXES) * 2 * prof.n_calibration
