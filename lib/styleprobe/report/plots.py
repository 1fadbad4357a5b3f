"""Figures shared by the CLI and the notebooks."""

from __future__ import annotations

import io
from collections.abc import Collection
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from styleprobe.engine.store import atomic_write_bytes
from styleprobe.protocol.validity import mark


def axis_labels(names: Collection[str], valid: Collection[str] | None = None) -> list[str]:
    """Axis names as figures show them (`warm/cold`), marked (`validity.mark`) when not in `valid` (None:
    no axis marked)."""
    return [mark(str(n).replace("_", "/"), valid is None or n in valid) for n in names]


def radar(
    fingerprints: dict[str, pd.Series],
    ax: plt.Axes | None = None,
    title: str | None = None,
    valid: Collection[str] | None = None,
) -> plt.Axes:
    """One polygon per model: normalised mean projection per axis on a [-1, 1] radial scale; axes not in
    `valid` (the validated axes; None: all) are marked in their label."""
    names = list(next(iter(fingerprints.values())).index)
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5), subplot_kw={"projection": "polar"})
    for label, series in fingerprints.items():
        values = series.reindex(names).to_numpy(dtype=float)
        ax.plot(np.append(angles, angles[0]), np.append(values, values[0]), label=label)
        ax.fill(np.append(angles, angles[0]), np.append(values, values[0]), alpha=0.15)
    ax.set_xticks(angles, axis_labels(names, valid), fontsize=8)
    ax.set_ylim(-1, 1)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1], ["-1", "", "0", "", "1"], fontsize=7)
    ax.set_rlabel_position(360 / len(names) / 2)  # radial labels between two axes, not on one
    if title:
        ax.set_title(title, fontsize=10)
    if len(fingerprints) > 1:
        ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=7)
    return ax


def save_figure(fig: plt.Figure, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save as `<stem>.png` and `<stem>.pdf` (parents created), each file written whole or not at all, so
    a reader never sees half a figure. A dot in the stem stays (`figures/qwen2.5-7b/radar`)."""
    stem = Path(stem)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    for path, fmt in zip(paths, formats, strict=True):
        # no creation date in PDFs, so a re-run that draws the same figure writes the same file
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_inches="tight", dpi=150, metadata=metadata)
        atomic_write_bytes(path, buffer.getvalue())
    return paths
