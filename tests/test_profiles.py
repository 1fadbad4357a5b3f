import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from styleprobe.analyses.robustness import formulation_items
from styleprobe.paths import data_dir
from styleprobe.protocol.calibration import calibration_items
from styleprobe.protocol.profiles import (
    DRIFT_PROFILES,
    PROFILES,
    check_question_counts,
    drift_profile,
    get_profile,
)
from styleprobe.protocol.spec import DataError, Protocol
from styleprobe.workspace import Workspace


def test_profiles_and_overrides():
    assert get_profile("paper") is PROFILES["paper"]
    assert get_profile("quick", n_baseline=None) is PROFILES["quick"]
    custom = get_profile("quick", calibration_tokens=64, n_baseline=15)
    assert custom.calibration_tokens == 64 and custom.n_baseline == 15
    assert custom.name == "quick+calibration_tokens=64"  # n_baseline=15 is the profile's own value
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")


def test_paper_profile_is_the_full_protocol():
    paper = PROFILES["paper"]
    assert (paper.n_calibration, paper.n_evaluation, paper.n_baseline, len(paper.seeds)) == (30, 30, 30, 5)
    assert (paper.calibration_tokens, paper.baseline_tokens) == (200, 384)


def test_a_misspelt_size_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown profile size n_calib; choose from n_calibration"):
        get_profile("quick", n_calib=8)


@pytest.mark.parametrize(
    ("size", "value"), [("n_baseline", 0), ("n_baseline", -3), ("calibration_tokens", 1.5), ("seeds", [])]
)
def test_a_size_that_is_not_a_positive_count_is_refused(size, value):
    with pytest.raises(ValueError, match=f"profile size {size} must be"):
        get_profile("quick", **{size: value})
    assert get_profile("quick", seeds=[0, 1]).seeds == (0, 1)


def test_drift_sizes_go_with_the_profile_and_are_overridden_the_same_way():
    assert drift_profile("smoke") is DRIFT_PROFILES["smoke"]
    assert drift_profile(get_profile("quick", n_baseline=3)) is DRIFT_PROFILES["quick"]  # by the base name
    changed = drift_profile("quick", max_new_tokens=16, n_controls=None)
    assert changed.name == "quick+max_new_tokens=16" and changed.max_new_tokens == 16
    assert changed.n_turns == DRIFT_PROFILES["quick"].n_turns
    paper = DRIFT_PROFILES["paper"]
    assert (paper.n_scenarios, paper.n_controls, paper.n_conflict, paper.n_recovery) == (20, 10, 12, 4)
    assert drift_profile("smoke", n_recovery=0).n_turns == DRIFT_PROFILES["smoke"].n_conflict
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        drift_profile("huge")
    with pytest.raises(ValueError, match="profile size n_controls must be a positive integer"):
        drift_profile("smoke", n_controls=0)
    with pytest.raises(ValueError, match="profile size n_recovery must be an integer >= 0"):
        drift_profile("smoke", n_recovery=-1)
    with pytest.raises(ValueError, match="unknown profile size n_baseline; choose from n_scenarios"):
        drift_profile("smoke", n_baseline=3)


def test_a_profile_may_take_every_evaluation_question():
    protocol = Protocol.load()
    profile = get_profile("smoke", n_evaluation=30)
    check_question_counts(profile, protocol)
    items = calibration_items(profile, protocol, splits=("evaluation",))
    assert len(items) == len(protocol.names) * 30 * 2
    for name in protocol.names:
        asked = {it.question for it in items if it.meta["axis"] == name}
        assert asked == set(protocol.questions.evaluation[name])


@pytest.mark.parametrize(
    ("size", "what", "where"),
    [
        ("n_evaluation", "evaluation questions per axis", " for warm_cold"),
        ("n_calibration", "calibration questions per axis", " for warm_cold"),
        ("n_baseline", "baseline questions", ""),
        ("n_benchmark", "baseline questions", ""),
    ],
)
def test_a_profile_asking_for_more_questions_than_the_data_hold_is_a_one_line_error(size, what, where):
    profile = get_profile("smoke", **{size: 31})
    with pytest.raises(DataError) as exc:
        check_question_counts(profile, Protocol.load())
    path = data_dir() / "questions.yaml"
    assert str(exc.value) == f"profile smoke+{size}=31 asks for 31 {what} ({size}), but {path} has 30{where}"


def test_the_short_axis_is_named_and_nothing_runs(tmp_path):
    """With one axis's evaluation list cut to 5 in a copied data folder, a profile asking for 6 fails before
    any model is loaded or any item is built, naming that axis; 5 is fine."""
    data = tmp_path / "data"
    shutil.copytree(data_dir(), data)
    questions = yaml.safe_load((data / "questions.yaml").read_text(encoding="utf-8"))
    questions["evaluation"]["formal_casual"] = questions["evaluation"]["formal_casual"][:5]
    (data / "questions.yaml").write_text(yaml.safe_dump(questions, sort_keys=False), encoding="utf-8")
    protocol = Protocol.load(data)
    check_question_counts(get_profile("smoke", n_evaluation=5), protocol)
    six = get_profile("smoke", n_evaluation=6)
    short = f"6 evaluation questions per axis (n_evaluation), but {data / 'questions.yaml'} has 5"
    expected = re.escape(short) + " for formal_casual$"
    with pytest.raises(DataError, match=expected):
        calibration_items(six, protocol)
    with pytest.raises(DataError, match=expected):
        formulation_items(protocol, six)
    with pytest.raises(DataError, match=expected):
        Workspace.open("no-such-model", profile="smoke", sizes={"n_evaluation": 6}, data=data, root=tmp_path)


def test_each_profile_can_validate_an_axis_and_the_docs_say_how_far():
    """A perfectly separated axis must be able to pass the validation rule at every profile's evaluation
    size, and docs/method.md's lower ends of a perfect separation are what the interval gives."""
    from styleprobe import stats
    from styleprobe.protocol.validity import MIN_ACCURACY

    def perfect_low(n: int) -> float:
        return stats.pairwise_accuracy_ci(np.arange(n) + n, np.arange(n))[0]

    for name in ("quick", "paper"):
        assert perfect_low(get_profile(name).n_evaluation) > MIN_ACCURACY, name
    method = " ".join((Path(__file__).parents[1] / "docs" / "method.md").read_text().split())
    five, ten, thirty = (f"{perfect_low(n):.2f}" for n in (5, 10, 30))
    assert (five, ten, thirty) == ("0.64", "0.80", "0.93")
    assert f"lower end of only {five} at n = 5, {ten} at 10 and {thirty} at 30" in method
