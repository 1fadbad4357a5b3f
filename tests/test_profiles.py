import pytest

from styleprobe.protocol.profiles import DRIFT_PROFILES, PROFILES, drift_profile, get_profile


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
    assert (paper.n_calibration, paper.n_evaluation, paper.n_baseline, len(paper.seeds)) == (30, 10, 30, 5)
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
