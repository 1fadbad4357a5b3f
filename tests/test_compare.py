import json

import numpy as np
import pandas as pd
import pytest

from styleprobe.axes import AxesError
from styleprobe.cli import main
from styleprobe.compare import compare_fingerprints, load_fingerprint
from styleprobe.data import load_axes

AXES = ["warm_cold", "verbose_concise", "formal_casual"]


def _frame(shift=0.0, seed=0, n=20):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(scale=0.3, size=(n, 3)), columns=AXES).rename_axis("q_index")
    frame["verbose_concise"] += shift
    return frame


def test_identical_fingerprints_flag_nothing_and_a_real_shift_is_flagged_alone():
    a = _frame()
    same = compare_fingerprints(a, a)
    assert not same["flagged"].any() and (same["difference"] == 0).all()
    shifted = compare_fingerprints(a, _frame(shift=-0.5) + np.random.default_rng(1).normal(0, 0.05, (20, 3)))
    assert shifted["flagged"].tolist() == [False, True, False]
    assert shifted.loc["verbose_concise", "ci_high"] < 0 and shifted.attrs["paired"]


def test_a_small_shift_within_the_threshold_is_not_flagged_and_unpaired_inputs_work():
    a, b = _frame(n=30), _frame(shift=0.1, seed=5, n=30)
    b.index = b.index + 100  # no shared questions: each side is resampled on its own
    table = compare_fingerprints(a, b, threshold=0.5)
    assert not table.attrs["paired"] and not table["flagged"].any()


def test_fingerprints_load_from_results_json_and_projection_csv(tmp_path):
    frame = _frame()
    results = tmp_path / "m.json"
    results.write_text(json.dumps({"baseline": {"per_question": frame.to_dict(orient="index")}}))
    pd.testing.assert_frame_equal(load_fingerprint(results), frame, check_names=False)
    long = pd.concat([frame.assign(seed=s) for s in (0, 1)]).reset_index()
    long.to_csv(tmp_path / "p.csv", index=False)
    pd.testing.assert_frame_equal(load_fingerprint(tmp_path / "p.csv"), frame, check_names=False)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(AxesError, match="not a fingerprint"):
        load_fingerprint(tmp_path / "bad.json")


def test_cli_exit_status_gates_on_a_flagged_shift(tmp_path, capsys):
    _frame().reset_index().assign(seed=0).to_csv(tmp_path / "a.csv", index=False)
    _frame(shift=0.8).reset_index().assign(seed=0).to_csv(tmp_path / "b.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "a.csv")]) == 0
    assert (
        main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--figure", str(tmp_path / "f")])
        == 1
    )
    out = capsys.readouterr().out
    assert "flagged: verbose_concise" in out and (tmp_path / "f.png").exists()
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "missing.csv")]) == 2


@pytest.mark.realmodel
def test_the_embedded_model_against_itself_and_under_a_style_system_prompt(tmp_path, capsys):
    """Two seeds of the same model differ by sampling noise only; a casual-style system prompt shifts the
    text (measured: formal/casual -0.28, CI [-0.44, -0.13]; SmolLM2 ignores terse or verbose prompts at this
    budget, which notebook 07's benchmark shows too)."""
    from pathlib import Path

    axes = Path(__file__).parents[1] / "axes" / "smollm2-135m-instruct.json"
    common = [
        "fingerprint",
        "--profile",
        "quick",
        "--axes-file",
        str(axes),
        "--runs-dir",
        str(tmp_path),
        "--figures-dir",
        str(tmp_path / "fig"),
        "--quiet",
    ]
    csv = tmp_path / "smollm2-135m-instruct" / "baseline-quick-projections.csv"
    assert main([*common, "--seeds", "0"]) == 0
    seed0 = tmp_path / "seed0.csv"
    csv.rename(seed0)
    assert main([*common, "--seeds", "1"]) == 0
    assert main(["compare", str(seed0), str(csv)]) == 0  # itself: no flagged shift
    casual = load_axes()["formal_casual"].instruction(-1, "B")  # a wording the axes were not fitted on
    assert main([*common, "--seeds", "0", "--system", casual]) == 0
    system_csv = tmp_path / "smollm2-135m-instruct" / "baseline-quick-system-projections.csv"
    assert main(["compare", str(seed0), str(system_csv)]) == 1  # a style shift is flagged
    assert "formal_casual" in capsys.readouterr().out.split("flagged:")[-1]
