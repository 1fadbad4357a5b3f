import pytest

from styleprobe.protocol.profiles import PROFILES, get_profile


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
