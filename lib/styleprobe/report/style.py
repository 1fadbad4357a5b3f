"""How figures look in print: the widths they are drawn at, their fonts, readable labels, and the check
every saved figure passes.

The paper (`paper/main.tex`: 11pt article on A4 with 2.5 cm margins) has a text width of 16 cm. A figure is
drawn at its printed size, one of `WIDTHS`, and the paper includes its PDF at its natural size (scale 1), so
a font size in points here is the size on the page. `check` refuses a figure of another width, a visible
text under `MIN_FONT_PT`, or a text that runs off the figure."""

from __future__ import annotations

import contextlib

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure

from styleprobe.errors import StyleprobeError

CM = 1 / 2.54
TEXT_WIDTH_IN = (21.0 - 2 * 2.5) * CM
"""`paper/main.tex`: a4paper (21 cm wide) with `geometry`'s margin=2.5cm on each side."""
TEXT_HEIGHT_IN = (29.7 - 2 * 2.5) * CM
WIDTHS: dict[str, float] = {
    "full": TEXT_WIDTH_IN,
    "two_thirds": TEXT_WIDTH_IN * 2 / 3,
    "half": TEXT_WIDTH_IN / 2,
}
"""The print widths a figure may have, in inches."""
MIN_FONT_PT = 7.0
FONT_PT = 8.0
SMALL_PT = 7.0
PNG_DPI = 200

# Okabe & Ito's qualitative palette, distinguishable with the common colour-vision deficiencies
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

RC: dict[str, object] = {
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "figure.titlesize": FONT_PT,
    "figure.labelsize": FONT_PT,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "legend.fontsize": SMALL_PT,
    "legend.title_fontsize": SMALL_PT,
    "legend.frameon": False,
    "axes.linewidth": 0.6,
    "axes.titlepad": 4.0,
    "axes.prop_cycle": cycler(color=PALETTE),
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "patch.linewidth": 0.5,
    "grid.linewidth": 0.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "axes.formatter.min_exponent": 4,  # 0.0001 and 10000 in plain digits, not in powers of ten
    "axes.formatter.useoffset": False,  # ticks print their values, not "+1" and "1e-7" beside the axis
    "pdf.fonttype": 42,  # text stays text in the PDF (selectable, searchable)
    "savefig.dpi": PNG_DPI,
}

LABELS: dict[str, str] = {
    # columns and measures
    "pairwise_accuracy": "held-out pairwise accuracy",
    "sign_accuracy": "held-out sign accuracy",
    "dprime": "held-out d′",
    "projection": "projection (normalised units)",
    "shift": "projection shift (normalised units)",
    "text_shift": "text-metric shift (per 100\nwords; verbose/concise: words)",
    "perplexity": "perplexity under the\nunsteered model (log scale)",
    "repetition": "share of repeated word 3-grams",
    "alpha": "steering strength α (normalised units per block)",
    "share": "share of variance",
    "component": "principal component",
    "n_tokens": "answer length (tokens)",
    "turn": "user turn",
    # benchmark scenarios
    "system_positive": "system prompt: first pole",
    "system_negative": "system prompt: second pole",
    "increase": "user asks for more",
    "decrease": "user asks for less",
    # token aggregations of the ablation
    "last": "last token",
    "mean": "mean over tokens",
    "decay_0.9": "decay 0.9",
    "decay_0.8": "decay 0.8",
}
"""What figures print for the library's column, scenario and setting names: the one place for them."""


class FigureError(StyleprobeError):
    """A figure that would not print legibly at its size on the page."""


def label(name: str) -> str:
    """The readable label of a column, scenario or setting name (`LABELS`; otherwise the name with spaces
    for underscores)."""
    return LABELS.get(name, str(name).replace("_", " "))


def use() -> None:
    """Make the figure style the default of this process."""
    mpl.rcParams.update(RC)


def context() -> contextlib.AbstractContextManager:
    """The figure style for the figures made inside a `with` block."""
    return mpl.rc_context(RC)


def width(name: str) -> float:
    """The print width `name` (a key of `WIDTHS`) in inches."""
    if name not in WIDTHS:
        raise FigureError(f"unknown figure width {name!r}: one of {', '.join(WIDTHS)}")
    return WIDTHS[name]


def figure(size: str = "full", height: float = 2.5, **subplots) -> tuple[Figure, object]:
    """A figure `size` wide (a key of `WIDTHS`) and `height` inches high with constrained layout, and its
    axes (`plt.subplots` keywords: nrows, ncols, sharey, subplot_kw, ...). Like every figure made here, it
    makes the figure style the default (`use`), so the labels and ticks added to it later are styled too;
    inside `context()` the style ends with the block."""
    use()
    return plt.subplots(figsize=(width(size), height), layout="constrained", **subplots)


def empty_figure(size: str = "full", height: float = 2.5) -> Figure:
    """A figure as `figure` makes it, without axes (for grids of mixed axes: polar beside flat)."""
    use()
    return plt.figure(figsize=(width(size), height), layout="constrained")


def panels(n: int, ncols: int = 4, size: str = "full", panel_height: float = 1.5, **subplots) -> tuple:
    """A figure of `n` small panels, `ncols` a row (fewer when `n` is smaller), `size` wide: the figure and
    its `n` axes in reading order; the grid's spare cells are left blank."""
    ncols = min(n, ncols)
    nrows = -(-n // ncols)
    fig, grid = figure(size, panel_height * nrows + 0.4, nrows=nrows, ncols=ncols, squeeze=False, **subplots)
    cells = list(grid.flat)
    for spare in cells[n:]:
        spare.set_axis_off()
    return fig, cells[:n]


def legend_entries(ax) -> tuple[list, list[str]]:
    """The handles and labels of `ax`'s legend (which is removed, e.g. one seaborn drew), followed by its
    labelled artists that legend lacks."""
    handles, labels = [], []
    if (legend := ax.get_legend()) is not None:
        handles, labels = list(legend.legend_handles), [t.get_text() for t in legend.get_texts()]
        legend.remove()
    for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
        if text not in labels:
            handles.append(handle)
            labels.append(text)
    return handles, labels


def source_note(fig: Figure, model: str, profile: str | None = None, legend: bool = False, **kwargs) -> None:
    """Name the model (and protocol profile) the figure shows above it; with `legend`, as the title of one
    legend for all panels, of `legend_entries` of the first axes (or of `ax`, or the `handles` and `labels`
    given), since constrained layout does not stack a subtitle and a figure legend."""
    note = f"{model}, {profile} profile" if profile else model
    if not legend:
        fig.suptitle(note, fontsize=SMALL_PT, color="0.3")
        return
    handles, labels = kwargs.pop("handles", None), kwargs.pop("labels", None)
    if handles is None:
        handles, labels = legend_entries(kwargs.pop("ax", fig.axes[0]))
    ncol = kwargs.pop("ncol", min(len(handles), 4) or 1)
    fig.legend(handles, labels, loc="outside upper center", ncol=ncol, title=note, **kwargs)


def log_ticks_plain(axis) -> None:
    """Tick a log-scaled axis at 1, 2 and 5 times the powers of ten, in plain numbers (`20`, `0.5`), not as
    `2×10¹`."""
    axis.set_major_locator(mpl.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(mpl.ticker.NullFormatter())


# --- the check ---------------------------------------------------------------------------------------------


class _TextRecorder(RendererAgg):
    """An Agg renderer that keeps each line of text it draws: the line, its size in points and its extent
    (x0, y0, x1, y1) in inches from the figure's lower left corner."""

    def __init__(self, fig: Figure) -> None:
        super().__init__(int(fig.bbox.width), int(fig.bbox.height), fig.dpi)
        self.drawn: list[tuple[str, float, tuple[float, float, float, float]]] = []

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if s.strip():
            w, h, d = self.get_text_width_height_descent(s, prop, ismath)
            corners = np.array([[0, -d], [w, -d], [w, h - d], [0, h - d]])
            turn = np.radians(angle)
            rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
            placed = corners @ rotation.T + [x, self.height - y if self.flipy() else y]
            extent = (*placed.min(axis=0), *placed.max(axis=0))
            self.drawn.append((s, prop.get_size_in_points(), tuple(np.array(extent) / self.dpi)))
        return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)


def drawn_texts(fig: Figure) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """Each line of text the figure draws: (line, size in points, its extent (x0, y0, x1, y1) in inches
    from the figure's lower left corner)."""
    renderer = _TextRecorder(fig)
    fig.draw(renderer)
    return renderer.drawn


def check(fig: Figure) -> None:
    """Raise `FigureError` unless the figure is one of `WIDTHS` wide, fits the page's text height, draws no
    text under `MIN_FONT_PT` and no text beyond its edges (which saving at its size would cut off)."""
    w, h = fig.get_size_inches()
    if not any(abs(w - allowed) < 0.01 for allowed in WIDTHS.values()):
        widths = ", ".join(f"{name} {inches:.2f} in" for name, inches in WIDTHS.items())
        raise FigureError(f"figure is {w:.2f} in wide; draw it at a print width ({widths}): style.figure")
    if h > TEXT_HEIGHT_IN + 0.01:
        raise FigureError(f"figure is {h:.2f} in high, more than the page's {TEXT_HEIGHT_IN:.2f} in")
    texts = list(drawn_texts(fig))
    small = [(t, size) for t, size, _ in texts if size < MIN_FONT_PT - 1e-6]
    if small:
        shown = "; ".join(f"{t[:30]!r} at {size:g} pt" for t, size in small[:3])
        raise FigureError(f"{len(small)} figure text(s) under {MIN_FONT_PT:g} pt in print: {shown}")
    tolerance = 1 / 72  # one point
    outside = [
        t
        for t, _, box in texts
        if (box[0] < -tolerance or box[1] < -tolerance or box[2] > w + tolerance or box[3] > h + tolerance)
    ]
    if outside:
        shown = "; ".join(repr(t[:30]) for t in outside[:3])
        raise FigureError(f"{len(outside)} figure text(s) run off the {w:.2f} x {h:.2f} in figure: {shown}")
