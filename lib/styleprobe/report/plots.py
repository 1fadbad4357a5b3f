"""Figures shared by the CLI, the explore app and the notebooks, and the one way figures are saved."""

from __future__ import annotations

import io
from collections.abc import Collection
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from styleprobe.engine.store import atomic_write_bytes
from styleprobe.protocol.validity import mark
from styleprobe.report import style

POLE_NOTE = "+1 (outer ring): first pole of the label\n−1 (centre): second pole"
MISSING = "(no value)"
BEYOND = {"marker": "o", "ms": 6, "mfc": "none", "mew": 1.0}
"""How a radar marks a value at or beyond ±1, drawn at the edge of its scale: a ring around the point."""
BEYOND_NOTE = "at or beyond ±1, drawn at the edge"


def axis_label(name: str, valid: bool = True) -> str:
    """An axis name as figures show it (`warm_cold` -> `warm/cold`), marked (`validity.mark`) when not
    valid."""
    return mark(str(name).replace("_", "/"), valid)


def axis_labels(names: Collection[str], valid: Collection[str] | None = None) -> list[str]:
    """`axis_label` of each name, marked when not in `valid` (None: no axis marked)."""
    return [axis_label(n, valid is None or n in valid) for n in names]


def _spoke_label(text: str, missing: bool) -> str:
    """A radar spoke's label: long names broken after the slash, `MISSING` below an axis without values."""
    if len(text) > 12 and "/" in text:
        text = text.replace("/", "/\n", 1)
    return f"{text}\n{MISSING}" if missing else text


def _align_spoke_labels(ax: plt.Axes, angles: np.ndarray, missing: list[bool]) -> None:
    """Spoke labels grow away from the disc (left-aligned on the right side, ...); missing ones in grey."""
    for text, angle, gone in zip(ax.get_xticklabels(), angles, missing, strict=True):
        x, y = np.cos(angle), np.sin(angle)
        text.set_horizontalalignment("left" if x > 0.2 else "right" if x < -0.2 else "center")
        text.set_verticalalignment("bottom" if y > 0.2 else "top" if y < -0.2 else "center")
        if gone:
            text.set_color("0.5")


def _draw_curve(ax: plt.Axes, angles: np.ndarray, values: np.ndarray, name: str) -> Line2D:
    """One model's polygon within the ±1 scale: a value at or beyond ±1 is drawn at the edge (the outer
    ring or the centre) with the `BEYOND` marker; a missing value breaks the outline there and the polygon
    is not filled, so no value is drawn where there is none. Returns the outline."""
    shown = np.clip(values, -1, 1)
    closed_angles, closed = np.append(angles, angles[0]), np.append(shown, shown[0])
    (line,) = ax.plot(closed_angles, closed, marker="o", ms=2.5, label=name)
    if np.isfinite(values).all():
        ax.fill(closed_angles, closed, alpha=0.12, color=line.get_color())
    beyond = np.abs(values) >= 1  # NaN compares False
    if beyond.any():
        ax.plot(angles[beyond], shown[beyond], ls="", color=line.get_color(), **BEYOND, zorder=5)
    return line


def _draw_intervals(ax: plt.Axes, angles: np.ndarray, low: np.ndarray, high: np.ndarray, colour: str) -> None:
    """The interval of each value as a thick radial bar along its spoke (within the ±1 range shown)."""
    low, high = np.clip(low, -1, 1), np.clip(high, -1, 1)
    for angle, lo, hi in zip(angles, low, high, strict=True):
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([angle, angle], [lo, hi], color=colour, lw=3, alpha=0.4, solid_capstyle="butt")


def _below_spoke_labels(labels: list[str], angles: np.ndarray) -> float:
    """How far below the disc (in font sizes) the legend goes to clear the spoke labels under it."""
    lines = [text.count("\n") + 1 for text, angle in zip(labels, angles, strict=True) if np.sin(angle) < -0.2]
    return 1.2 + 1.3 * max(lines, default=0)


def _draw_rings(ax: plt.Axes, angles: np.ndarray, labels: bool = True) -> None:
    """The radial scale: rings at −0.5, 0, +0.5 and +1 labelled between two spokes, and the centre (−1)
    marked and labelled (unlabelled without `labels`)."""
    ax.set_ylim(-1, 1)
    ring_labels = ["−0.5", "0", "+0.5", "+1"] if labels else [""] * 4
    ax.set_yticks([-0.5, 0, 0.5, 1], ring_labels, fontsize=style.SMALL_PT, color="0.35")
    ax.set_rlabel_position(np.degrees(angles[1] / 2) if len(angles) > 1 else 22.5)  # between two spokes
    ax.plot([0], [-1], marker="o", ms=2.5, color="0.35", zorder=4)
    if labels:
        ax.annotate(
            "−1", (0, -1), xytext=(3, 2), textcoords="offset points", fontsize=style.SMALL_PT, color="0.35"
        )


def radar(
    fingerprints: dict[str, pd.Series],
    ax: plt.Axes | None = None,
    title: str | None = None,
    valid: Collection[str] | None = None,
    intervals: dict[str, tuple[pd.Series, pd.Series]] | None = None,
    note: bool = True,
    labels: bool = True,
) -> plt.Axes:
    """One polygon per model: normalised mean projection per axis on a [-1, 1] radial scale (centre −1,
    outer ring +1; a value at or beyond ±1 is drawn at that edge, ringed, and the note says so). Axes not in
    `valid` (the validated axes; None: all) are marked in their label; a value that is NaN is drawn as
    missing (the outline broken there, no fill, the axis labelled `MISSING` when no model has it).
    `intervals` gives per model (low, high) series drawn as bars along the spokes; `note` says under the
    radar which pole +1 is. `labels=False` leaves out the spoke and ring labels and the note (small
    multiples beside one labelled radar). Without `ax`, a figure of half the paper's text width is made in
    the figure style."""
    names = list(dict.fromkeys(n for series in fingerprints.values() for n in series.index))
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    with style.context():
        if ax is None:
            _, ax = style.figure("half", 3.4, subplot_kw={"projection": "polar"})
        present, beyond, curves = np.zeros(len(names), bool), False, []
        for name, series in fingerprints.items():
            values = series.reindex(names).to_numpy(dtype=float)
            present |= np.isfinite(values)
            beyond |= bool((np.abs(values) >= 1).any())
            curves.append(_draw_curve(ax, angles, values, name))
            if intervals and name in intervals:
                low, high = (s.reindex(names).to_numpy(dtype=float) for s in intervals[name])
                _draw_intervals(ax, angles, low, high, curves[-1].get_color())
        spokes = [
            _spoke_label(text, not ok) for text, ok in zip(axis_labels(names, valid), present, strict=True)
        ]
        ax.set_xticks(angles, spokes if labels else [""] * len(spokes), fontsize=style.SMALL_PT)
        ax.tick_params(axis="x", pad=1)
        _align_spoke_labels(ax, angles, list(~present))
        _draw_rings(ax, angles, labels)
        note = note and labels
        if title:
            ax.set_title(title, pad=14 if labels else 4)
        handles = curves if len(curves) > 1 else []
        if note and beyond:
            handles.append(Line2D([], [], ls="", color="0.35", label=BEYOND_NOTE, **BEYOND))
        if handles or note:
            _legend_below(ax, handles, POLE_NOTE if note else None, _below_spoke_labels(spokes, angles))
    return ax


def _legend_below(ax: plt.Axes, handles: list, title: str | None, pad: float) -> None:
    """The legend under the radar, `pad` font sizes below it: in two columns, or one where two would be
    wider than the figure (long model names)."""
    for ncol in (min(len(handles), 2) or 1, 1):
        legend = ax.legend(
            handles=handles,
            title=title,
            loc="upper center",
            bbox_to_anchor=(0.5, 0),
            borderaxespad=pad,
            ncol=ncol,
        )
        if legend.get_window_extent(ax.figure.canvas.get_renderer()).width <= ax.figure.bbox.width:
            return


def benchmark_shifts(
    scenarios: pd.DataFrame, names: list[str], order: Collection[str], labels: list[str]
) -> plt.Figure:
    """Notebook 07's benchmark figure: per axis (`names`, shown as `labels`) and scenario (in `order`), the
    shift towards the named pole with its interval (left) and the contrast with the opposite instruction,
    filled where the scenario passed (right)."""
    fig, (a, b) = style.figure("full", 3.0, ncols=2, sharey=True)
    dots = {"fmt": "o", "ms": 3, "capsize": 1.5}
    for k, scenario in enumerate(order):
        sub = scenarios[scenarios["scenario"] == scenario].set_index("axis").reindex(names)
        x = np.arange(len(names)) + (k - 1.5) * 0.2
        shift_err = [sub["shift"] - sub["ci_low"], sub["ci_high"] - sub["shift"]]
        contrast_err = [sub["contrast"] - sub["contrast_low"], sub["contrast_high"] - sub["contrast"]]
        a.errorbar(x, sub["shift"], yerr=shift_err, label=style.label(scenario), **dots)
        bars = b.errorbar(x, sub["contrast"], yerr=contrast_err, mfc="none", **dots)
        passed = sub["passed"].fillna(False).to_numpy(bool)
        b.plot(x[passed], sub["contrast"][passed], "o", ms=3, color=bars[0].get_color())
    a.set_title("shift towards the named pole vs no instruction")
    b.set_title("contrast with the opposite instruction\n(filled: passed)")
    for ax in (a, b):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(names)), labels, rotation=30, ha="right")
    a.set_ylabel("shift towards the named pole\n(normalised units, 95 % t CI)")
    return fig


def save_figure(fig: plt.Figure, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Check the figure for print (`style.check`: a print width, no text under 7 pt, nothing cut off),
    then save it at that size as `<stem>.png` and `<stem>.pdf` (parents created), each file written whole
    or not at all, so a reader never sees half a figure. A dot in the stem stays
    (`figures/qwen2.5-7b/radar`)."""
    style.check(fig)
    stem = Path(stem)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    for path, fmt in zip(paths, formats, strict=True):
        # no creation date in PDFs, so a re-run that draws the same figure writes the same file
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=style.PNG_DPI, metadata=metadata)
        atomic_write_bytes(path, buffer.getvalue())
    return paths
