import pytest

from styleprobe.axes import AxesError
from styleprobe.workspace import Workspace


def test_workspace_resolves_folders_and_explains_missing_axes(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "ws"))
    ws = Workspace.open(
        "random:llama",
        profile="smoke",
        runs_dir=tmp_path / "r",
        axes_dir=tmp_path / "a",
        figures_dir=tmp_path / "f",
        results_dir=tmp_path / "res",
        calibration_tokens=8,
    )
    assert ws.runs == tmp_path / "r" / "random-llama" and ws.axes_file == tmp_path / "a" / "random-llama.json"
    assert ws.profile.name == "smoke+calibration_tokens=8"
    with pytest.raises(AxesError, match="run notebook 01_calibration"):
        ws.axes()
    path = ws.update_results("section", {"x": float("nan"), "y": 1})
    assert path == tmp_path / "res" / "random-llama.json" and '"x": null' in path.read_text()
