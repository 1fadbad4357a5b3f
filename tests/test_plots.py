"""Figures: drawn at a print width of the paper with no text under 7 pt, checked when saved; the radar's
scale, intervals and missing values; the paper includes every figure at its drawn size."""

import re
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Polygon
from PIL import Image

from styleprobe.paths import NOTEBOOKS_DIR
from styleprobe.protocol.spec import Protocol
from styleprobe.protocol.validity import MARK
from styleprobe.report import paper, style
from styleprobe.report.plots import MISSING, POLE_NOTE, axis_labels, radar, save_figure

AXES = ["warm_cold", "verbose_concise", "confident_cautious", "proactive_reluctant", "empathetic_analytical"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_the_same_figure_saved_at_two_times_gives_the_same_files(tmp_path, monkeypatch):
    written = []
    for run, when in enumerate(["0", "86400"]):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", when)  # the time matplotlib would stamp into the PDF
        ax = radar({"m": pd.Series([0.1, -0.2, 0.3], index=["a_b", "c_d", "e_f"])})
        written.append([p.read_bytes() for p in save_figure(ax.figure, tmp_path / str(run) / "radar")])
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
    labels = [t.get_text().replace("\n", "") for t in ax.get_xticklabels()]
    assert labels == [f"warm/cold{MARK}", "formal/casual", f"verbose/concise{MARK}"]
    assert axis_labels(["warm_cold"]) == ["warm/cold"]  # nothing known about validity: nothing marked


# --- print size and the check ------------------------------------------------------------------------------


def test_the_print_widths_come_from_the_papers_page_and_margins():
    main = (paper.PAPER_DIR / "main.tex").read_text()
    assert re.search(r"\\documentclass\[[^\]]*a4paper", main)  # 21 cm wide
    margin = float(re.search(r"\\usepackage\[margin=([\d.]+)cm\]\{geometry\}", main).group(1))
    assert pytest.approx(21.0 - 2 * margin) == style.TEXT_WIDTH_IN * 2.54
    assert style.WIDTHS["full"] == style.TEXT_WIDTH_IN and style.WIDTHS["half"] == style.TEXT_WIDTH_IN / 2


def test_a_figure_is_saved_at_its_print_size(tmp_path):
    with style.context():
        fig, ax = style.figure("two_thirds", 2.0)
        ax.plot([1, 2, 3])
        ax.set_xlabel("turn")
    png, pdf = save_figure(fig, tmp_path / "f")
    width_in, height_in = style.WIDTHS["two_thirds"], 2.0
    expected = (width_in * style.PNG_DPI, height_in * style.PNG_DPI)
    assert Image.open(png).size == pytest.approx(expected, abs=1)  # whole pixels
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)", pdf.read_bytes())
    assert (float(box[1]), float(box[2])) == pytest.approx((width_in * 72, height_in * 72), abs=0.5)


def test_a_figure_with_4_pt_tick_labels_is_refused(tmp_path):
    with style.context():
        fig, ax = style.figure("full", 2.0)
        ax.plot([1, 2, 3])
        ax.tick_params(labelsize=4)
    with pytest.raises(style.FigureError, match=r"under 7 pt in print: '[^']+' at 4 pt"):
        save_figure(fig, tmp_path / "small")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_figure_of_another_width_is_refused(tmp_path):
    with style.context():
        fig, ax = plt.subplots(figsize=(13, 5))
        ax.plot([1, 2, 3])
    with pytest.raises(style.FigureError, match=r"13.00 in wide; draw it at a print width \(full 6.30 in"):
        save_figure(fig, tmp_path / "wide")


@pytest.mark.parametrize("first_line", ["", "a short first line\n"])
def test_a_text_that_runs_off_the_figure_is_refused(first_line):
    with style.context():
        fig, ax = style.figure("half", 2.0)
        ax.set_title(
            f"{first_line}a title far too long to fit on a figure half the width of the text of the paper"
        )
    with pytest.raises(style.FigureError, match=r"run off the 3\.15 x 2\.00 in figure: 'a title far"):
        style.check(fig)


def test_a_figure_taller_than_the_page_is_refused():
    fig, _ = style.figure("full", 12)
    with pytest.raises(style.FigureError, match=r"12\.00 in high"):
        style.check(fig)


def test_an_unknown_width_is_a_one_line_error():
    with pytest.raises(
        style.FigureError, match="unknown figure width 'double': one of full, two_thirds, half"
    ):
        style.figure("double")


def test_the_style_prints_every_text_at_7_pt_or_more():
    with style.context():
        fig, axs = style.panels(7, sharey=True)
        for ax in axs:
            ax.plot([1, 2], [3, 4], label="a line")
            ax.set_title("warm/cold")
        fig.supxlabel(style.label("turn"))
        style.source_note(fig, "random-qwen2", "smoke", legend=True)
    sizes = [size for _, size, _ in style.drawn_texts(fig)]
    assert min(sizes) == style.MIN_FONT_PT and len(sizes) > 20
    style.check(fig)
    assert fig.legends[0].get_title().get_text() == "random-qwen2, smoke profile"


def test_a_figure_made_in_the_style_styles_what_is_added_to_it_later():
    with mpl.rc_context():  # the defaults come back after the test
        mpl.rcdefaults()
        fig, ax = style.figure("half", 2.0)
        ax.set_xlabel("added later")
        ax.plot([1, 1 + 1e-7])
        fig.canvas.draw()
        assert ax.yaxis.get_offset_text().get_text() == ""  # tick values, no "+1" offset beside them
        assert ax.xaxis.label.get_size() == style.FONT_PT
        assert {t.get_size() for t in ax.get_yticklabels()} == {style.SMALL_PT}


def test_log_ticks_print_plain_numbers():
    with style.context():
        fig, ax = style.figure("half", 2.0)
        ax.plot([1, 2, 3], [3, 60, 700])
        ax.set_yscale("log")
        style.log_ticks_plain(ax.yaxis)
        fig.canvas.draw()
    shown = [t.get_text() for t in ax.get_yticklabels() if 3 <= t.get_position()[1] <= 700]
    assert shown == ["5", "10", "20", "50", "100", "200", "500"]


def test_figures_print_readable_labels_not_column_names():
    assert style.label("pairwise_accuracy") == "held-out pairwise accuracy"
    assert style.label("system_positive") == "system prompt: first pole"
    assert "normalised units" in style.label("projection")
    assert style.label("hostile_user") == "hostile user"  # unknown: spaces for underscores


# --- the radar ---------------------------------------------------------------------------------------------


def _boxes(ax: plt.Axes, texts) -> list:
    renderer = ax.figure.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text().strip()]


def test_a_radar_draws_missing_values_as_missing_not_as_zero():
    values = pd.Series([0.5, np.nan, 0.2, np.nan, np.nan], index=AXES)
    ax = radar({"imported": values})
    line = ax.get_lines()[0]
    assert np.isnan(line.get_ydata()[[1, 3, 4]]).all()  # a gap in the outline, not a point at 0
    assert not [p for p in ax.patches if isinstance(p, Polygon)]  # no filled polygon through the gaps
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert [MISSING in text for text in labels] == [False, True, False, True, True]
    full = radar({"ours": values.fillna(0.1)})
    assert [p for p in full.patches if isinstance(p, Polygon)]  # a complete one is filled


def test_the_baseline_radar_shows_the_interval_along_each_spoke():
    mean = pd.Series([0.5, -0.2, 0.1, 0.0, 0.3], index=AXES)
    ax = radar({"m": mean}, intervals={"m": (mean - 0.1, mean + 0.2)})
    bars = [
        line
        for line in ax.get_lines()
        if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]
    ]
    assert len(bars) == len(AXES)
    assert np.allclose([b.get_ydata() for b in bars], np.c_[mean - 0.1, mean + 0.2])


def test_a_radar_labels_its_centre_and_says_which_pole_is_positive():
    ax = radar({"a": pd.Series(0.2, index=AXES), "b": pd.Series(-0.3, index=AXES)}, title="reply vs baseline")
    assert "−1" in [t.get_text() for t in ax.texts]  # the centre is -1 and says so
    assert ax.get_legend().get_title().get_text() == POLE_NOTE
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    spokes = _boxes(ax, ax.get_xticklabels())
    rings = _boxes(ax, ax.get_yticklabels())
    title = ax.title.get_window_extent()
    assert not any(legend.overlaps(box) for box in [*spokes, title])
    assert not any(ring.overlaps(spoke) for ring in rings for spoke in spokes)
    style.check(ax.figure)  # its own figure: half the text width, nothing under 7 pt


SMOLLM2_AXES = Protocol.load().names  # the 7 axes of the committed SmolLM2 axes
# scores the embedded SmolLM2 gave in the explorer: a reply and its baseline far beyond the ±1 scale
FAR_REPLY = pd.Series([-14.79, 3.2, 13.23, -2.5, 0.4, -5.0, 0.8], index=SMOLLM2_AXES)
FAR_BASELINE = pd.Series([-6.17, 1.5, 4.0, -1.2, 0.3, -2.0, 0.5], index=SMOLLM2_AXES)


def ringed(ax: plt.Axes) -> set[tuple[float, float]]:
    """The (angle, radius) points a radar rings: hollow markers without a line."""
    return {
        (round(float(x), 6), float(y))
        for line in ax.get_lines()
        if line.get_linestyle() == "None" and line.get_markerfacecolor() == "none"
        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True)
    }


def at_the_edge(series: pd.Series) -> set[tuple[float, float]]:
    """Where a radar should draw the values of `series` at or beyond ±1: on their spoke at ±1."""
    angles = np.linspace(0, 2 * np.pi, len(series), endpoint=False)
    values = series.to_numpy()
    return {
        (round(float(a), 6), float(np.sign(v))) for a, v in zip(angles, values, strict=True) if abs(v) >= 1
    }


def test_a_radar_draws_values_beyond_its_scale_at_the_edge_marked():
    ax = radar({"reply": FAR_REPLY, "baseline": FAR_BASELINE}, title="reply vs baseline")
    ax.figure.canvas.draw()
    assert ax.get_ylim() == (-1, 1)
    drawn = np.concatenate([line.get_ydata() for line in ax.get_lines()])
    assert np.nanmax(np.abs(drawn)) <= 1  # nothing past the rim (or through the centre)
    # the values beyond ±1 sit at the outer ring or the centre, ringed; no value within the scale is
    assert ringed(ax) == at_the_edge(FAR_REPLY) | at_the_edge(FAR_BASELINE)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("beyond ±1" in text for text in legend)  # and the legend says what a ring means
    spokes = _boxes(ax, ax.get_xticklabels())
    others = [
        *_boxes(ax, ax.get_yticklabels()),
        ax.get_legend().get_window_extent(),
        ax.title.get_window_extent(),
    ]
    assert not any(a.overlaps(b) for i, a in enumerate(spokes) for b in spokes[i + 1 :])
    assert not any(spoke.overlaps(other) for spoke in spokes for other in others)


def test_a_radar_within_its_scale_rings_nothing():
    ax = radar({"m": pd.Series([0.5, -0.99, 0.2], index=AXES[:3])})
    assert not ringed(ax)
    assert not any("beyond" in t.get_text() for t in ax.get_legend().get_texts())


# --- notebooks and paper -----------------------------------------------------------------------------------


def test_notebooks_make_figures_only_at_a_print_width_and_save_them_checked():
    for source in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")):
        text = source.read_text()
        assert "savefig(" not in text, f"{source.name}: save figures with ws.save_figure (it checks them)"
        for maker in (
            "figsize=",
            "plt.figure(",
            "plt.subplots(",
            "sns.relplot(",
            "sns.displot(",
            "sns.catplot(",
        ):
            assert maker not in text, f"{source.name}: {maker} sizes a figure of its own; use style.figure"


def test_the_paper_includes_every_figure_at_its_drawn_size():
    for tex in sorted((paper.PAPER_DIR / "sections").glob("*.tex")):
        for options in re.findall(r"\\includegraphics(\[[^\]]*\])?\{", tex.read_text()):
            assert not options, (
                f"{Path(tex).name}: \\includegraphics{options} rescales a figure drawn to size"
            )
