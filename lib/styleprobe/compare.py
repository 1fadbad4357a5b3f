"""Fingerprint regression check: per axis, the difference between two fingerprints with a bootstrap CI, and
which differences are large enough to flag (for gating a model builder's CI pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe.axes import AxesError

DEFAULT_THRESHOLD = 0.2
"""A shift is flagged when its 95 % CI excludes 0 and |difference| exceeds this (normalised units)."""


def load_fingerprint(path: Path) -> pd.DataFrame:
    """Per-question projections (rows: question index, columns: axes, seed-averaged) from a results file
    (`results/<model>.json`, section `baseline`) or a projections CSV written by `styleprobe fingerprint`."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            frame = pd.DataFrame.from_dict(data["baseline"]["per_question"], orient="index")
            frame.index = frame.index.astype(int)
        else:
            raw = pd.read_csv(path)
            axes = [c for c in raw.columns if c not in ("seed", "q_index", "n_tokens")]
            frame = raw.groupby("q_index")[axes].mean()
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise AxesError(
            f"{path}: not a fingerprint (results .json with a baseline section, or projections .csv): {err}"
        ) from None
    if frame.empty:
        raise AxesError(f"{path}: the fingerprint holds no answers")
    return frame.rename_axis("q_index").astype(float)


def compare_fingerprints(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per shared axis: mean of each, difference b - a with a percentile bootstrap 95 % CI (paired over the
    shared questions when both answered the same question indices, else each resampled on its own), and
    `flagged` = CI excludes 0 and |difference| > threshold."""
    axes = [c for c in a.columns if c in b.columns]
    if not axes:
        raise AxesError("the two fingerprints share no axis")
    shared = a.index.intersection(b.index)
    paired = len(shared) >= 2
    rng = np.random.default_rng(seed)
    rows = []
    for axis in axes:
        if paired:
            d = (b.loc[shared, axis] - a.loc[shared, axis]).dropna().to_numpy()
            reps = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
            diff = float(d.mean())
        else:
            x, y = a[axis].dropna().to_numpy(), b[axis].dropna().to_numpy()
            reps = y[rng.integers(0, len(y), (n_boot, len(y)))].mean(1) - x[
                rng.integers(0, len(x), (n_boot, len(x)))
            ].mean(1)
            diff = float(y.mean() - x.mean())
        lo, hi = np.quantile(reps, [0.025, 0.975])
        rows.append(
            {
                "axis": axis,
                "mean_a": float(a[axis].mean()),
                "mean_b": float(b[axis].mean()),
                "difference": diff,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "flagged": bool((lo > 0 or hi < 0) and abs(diff) > threshold),
            }
        )
    out = pd.DataFrame(rows).set_index("axis")
    out.attrs.update(
        paired=paired, n_questions=len(shared) if paired else (len(a), len(b)), threshold=threshold
    )
    return out
