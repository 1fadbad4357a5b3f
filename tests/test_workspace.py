import numpy as np
import pandas as pd
import pytest

from styleprobe.analyses.length import LengthResult
from styleprobe.protocol.axes import AxesError
from styleprobe.result import ResultsError
from styleprobe.workspace import Workspace


def test_workspace_resolves_folders_and_explains_missing_axes(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "ws"))
    ws = Workspace.open("random:llama", profile="smoke", root=tmp_path, sizes={"calibration_tokens": 8})
    assert ws.runs.root == tmp_path / "runs" / "random-llama"
    assert ws.axes_file == tmp_path / "axes" / "random-llama.json"
    assert ws.figures == tmp_path / "figures" / "random-llama"
    assert ws.paper_dir == tmp_path.resolve() / "paper" / "generated"
    assert ws.profile.name == "smoke+calibration_tokens=8"
    with pytest.raises(AxesError, match="run notebook 01_calibration"):
        ws.axes()
    with pytest.raises(ResultsError, match="run notebook 04_length_confound first"):
        LengthResult.load(ws)

    result = LengthResult(
        per_axis=pd.DataFrame({"r": [0.5], "p": [0.2], "p_holm": [0.2]}, index=["warm_cold"]),
        mean_abs_r_before=0.2,
        mean_abs_r_after=float("nan"),
        relative_change=0.1,
        n_answers=3,
        mean_length=6.0,
        validated=["warm_cold"],
        budget=8,
        n_cut=1,
    )
    path = ws.save(result)
    assert (
        path == tmp_path / "results" / "random-llama.json" and '"mean_abs_r_after": null' in path.read_text()
    )
    loaded = LengthResult.load(ws)
    assert ws.has(LengthResult) and np.isnan(loaded.mean_abs_r_after) and loaded.n_answers == 3
    numbers = ws.paper_dir / "random-llama" / "numbers-04_length_confound@length_confound.tex"
    assert r"\defresult{random-llama/04_length_confound/mean_abs_r_after}{n/a}" in numbers.read_text()
    assert (ws.paper_dir / "random-llama" / "length_confound_table.tex").exists()
