import pytest

from styleprobe.protocol.axes import AxesError
from styleprobe.workspace import Workspace


def test_workspace_resolves_folders_and_explains_missing_axes(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "ws"))
    ws = Workspace.open("random:llama", profile="smoke", root=tmp_path, sizes={"calibration_tokens": 8})
    assert ws.runs == tmp_path / "runs" / "random-llama"
    assert ws.axes_file == tmp_path / "axes" / "random-llama.json"
    assert ws.figures == tmp_path / "figures" / "random-llama"
    assert ws.paper_dir == tmp_path.resolve() / "paper" / "generated"
    assert ws.profile.name == "smoke+calibration_tokens=8"
    with pytest.raises(AxesError, match="run notebook 01_calibration"):
        ws.axes()
    path = ws.update_results("section", {"x": float("nan"), "y": 1})
    assert path == tmp_path / "results" / "random-llama.json" and '"x": null' in path.read_text()
