import matplotlib.pyplot as plt
import pandas as pd

from styleprobe.protocol.validity import MARK
from styleprobe.report.plots import axis_labels, radar, save_figure


def test_the_same_figure_saved_at_two_times_gives_the_same_files(tmp_path, monkeypatch):
    written = []
    for run, when in enumerate(["0", "86400"]):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", when)  # the time matplotlib would stamp into the PDF
        ax = radar({"m": pd.Series([0.1, -0.2, 0.3], index=["a_b", "c_d", "e_f"])})
        written.append([p.read_bytes() for p in save_figure(ax.figure, tmp_path / str(run) / "radar")])
        plt.close(ax.figure)
    assert written[0] == written[1] and written[0][1].startswith(b"%PDF")


def test_a_figure_keeps_a_dotted_stem_and_leaves_no_temporary_file(tmp_path):
    ax = radar({"m": pd.Series({"warm_cold": 0.2, "formal_casual": -0.4})})
    paths = save_figure(ax.figure, tmp_path / "qwen2.5-7b" / "radar.v2")
    assert [p.name for p in paths] == ["radar.v2.png", "radar.v2.pdf"]
    assert sorted(p.name for p in (tmp_path / "qwen2.5-7b").iterdir()) == ["radar.v2.pdf", "radar.v2.png"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and paths[1].read_bytes().startswith(b"%PDF")


def test_a_radar_marks_the_axes_that_failed_validation():
    values = pd.Series({"warm_cold": 0.2, "formal_casual": -0.4, "verbose_concise": 0.1})
    ax = radar({"m": values}, valid=["formal_casual"])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [f"warm/cold{MARK}", "formal/casual", f"verbose/concise{MARK}"]
    plt.close(ax.figure)
    assert axis_labels(["warm_cold"]) == ["warm/cold"]  # nothing known about validity: nothing marked
