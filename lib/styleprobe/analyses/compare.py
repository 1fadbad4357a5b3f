"""Fingerprint regression check: per axis, the difference between two fingerprints with a bootstrap CI, and
which differences are large enough to flag (for gating a model builder's CI pipeline).

A fingerprint carries its identity: the id of the model that answered (`model_id`) and a digest of the
axes it was projected on (`styleprobe.protocol.axes.axes_id`). Projections on different axes are not
comparable, so `compare_fingerprints` refuses them; two models projected on the same axes (a fine-tuned
model and its parent, both read with the parent's axes) are compared, and the output says they
are different models."""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe.errors import first_line, is_integer
from styleprobe.protocol.axes import AxesError
from styleprobe.protocol.fingerprint import BaselineResult

DEFAULT_THRESHOLD = 0.2
"""A shift is flagged when its 95 % CI excludes 0 and |difference| exceeds this (normalised units)."""
MIN_BOOT = 100
"""The fewest bootstrap resamples accepted: fewer cannot place the 2.5 % and 97.5 % percentiles."""


def load_fingerprint(path: Path) -> pd.DataFrame:
    """Per-question projections (rows: question index, columns: axes, seed-averaged) of the baseline
    section (a `BaselineResult`) of a results file: `results/<model>.json` written by notebook 02 or
    `styleprobe fingerprint`, or the file of `styleprobe fingerprint --out`.

    `attrs` holds `source` (the path) and the result's `model_id` and `axes_id`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        result = BaselineResult.from_dict(data[BaselineResult.name])
        frame = result.per_question.astype(float)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        reason = f"no {err} section" if isinstance(err, KeyError) else first_line(err)
        raise AxesError(f"{path}: not a fingerprint (a results file with a baseline): {reason}") from None
    if frame.empty or frame.shape[1] == 0:
        raise AxesError(f"{path}: the fingerprint holds no answers")
    frame = frame.rename_axis("q_index")
    frame.attrs.update(source=str(path), model_id=result.model_id or None, axes_id=result.axes_id or None)
    return frame


def _check_settings(threshold: float, n_boot: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise AxesError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if threshold < 0:
        raise AxesError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if not (is_integer(n_boot) and n_boot >= MIN_BOOT):
        raise AxesError(f"n_boot must be an integer >= {MIN_BOOT}, got {n_boot!r}")


def _label(frame: pd.DataFrame, side: str) -> str:
    return f"{side} ({frame.attrs['source']})" if frame.attrs.get("source") else side


def _identity(a: pd.DataFrame, b: pd.DataFrame) -> tuple[list[str], dict]:
    """Refuse fingerprints projected on different axes; notes on different models and unknown identity."""
    names = {side: _label(frame, side) for side, frame in (("A", a), ("B", b))}
    model = {side: frame.attrs.get("model_id") for side, frame in (("A", a), ("B", b))}
    axes = {side: frame.attrs.get("axes_id") for side, frame in (("A", a), ("B", b))}
    if axes["A"] and axes["B"] and axes["A"] != axes["B"]:
        raise AxesError(
            f"{names['A']} and {names['B']} were projected on different axes (axes id {axes['A']} vs "
            f"{axes['B']}): projections on different axes are not comparable; fingerprint both with the same "
            "--axes-file"
        )
    notes = []
    unknown = [side for side in ("A", "B") if not axes[side]]
    if unknown:
        notes.append(
            f"warning: {' and '.join(names[s] for s in unknown)}: no record of the axes it was "
            "projected on: whether A and B share axes cannot be checked"
        )
    if not (model["A"] and model["B"]):
        notes.append(
            f"warning: {' and '.join(s for s in ('A', 'B') if not model[s])}: no record of the model"
        )
    elif model["A"] != model["B"]:
        shared_axes = f"on the same axes (axes id {axes['A']})" if not unknown else "on axes not recorded"
        notes.append(f"A and B are different models ({model['A']} vs {model['B']}), projected {shared_axes}")
    return notes, {"models": (model["A"], model["B"]), "axes_ids": (axes["A"], axes["B"])}


def compare_fingerprints(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per shared axis: mean of each, difference b - a with a percentile bootstrap 95 % CI, `flagged` = CI
    excludes 0 and |difference| > threshold, `status` and the questions used (`n_a`, `n_b`).

    Settings: `threshold` must be finite and >= 0, `n_boot` an integer >= 100 (AxesError otherwise).

    Identity (from `attrs`, see `load_fingerprint`): different `axes_id`s raise AxesError; different models
    on the same axes are compared and noted; frames without an identity are compared with a warning
    (`attrs["notes"]`).

    Pairing, by question index (the questions that hold any value on either side):
      - the same questions on both sides: paired over them;
      - some shared and some not (at least 2 shared): paired over the shared ones only, the means taken
        over those too; the questions left out are counted in `attrs["left_out"]` (only in A, only in B)
        and noted;
      - no shared question: unpaired, each side resampled on its own (the legitimately unpaired case);
      - exactly one shared question among others: refused (AxesError), as neither test fits.

    An axis that cannot be compared is kept in the table with `status` "no data in A", "no data in B",
    "no data in A and B" or "fewer than 2 questions" (paired: fewer than 2 questions with values on both
    sides; unpaired: fewer than 2 on one side), NaN statistics and `flagged` False; such axes are listed
    in `attrs["not_comparable"]` ({axis: status}), and the gate must not pass on them (the CLI prints the
    table and exits with status 2). Axes present on one side only are noted and left out."""
    _check_settings(threshold, n_boot)
    which = f"{_label(a, 'A')} and {_label(b, 'B')}"
    axes = [c for c in a.columns if c in b.columns]
    if not axes:
        raise AxesError(f"{which} share no axis")
    notes, identity = _identity(a, b)
    only = {side: [c for c in x.columns if c not in axes] for side, x in (("A", a), ("B", b))}
    notes += [f"warning: axes only in {side} left out: {', '.join(c)}" for side, c in only.items() if c]

    qa = a.index[a[axes].notna().any(axis=1)]
    qb = b.index[b[axes].notna().any(axis=1)]
    shared = qa.intersection(qb)
    left_out = (len(qa.difference(shared)), len(qb.difference(shared)))
    if len(shared) == 1 and any(left_out):
        raise AxesError(
            f"{which} share only one question (q_index {shared[0]}) among {len(qa)} and {len(qb)}: a "
            "paired comparison needs at least 2 shared questions, an unpaired one disjoint question sets"
        )
    paired = len(shared) >= 2 or (len(shared) == 1 and not any(left_out))
    if paired and any(left_out):
        notes.append(
            f"paired over the {len(shared)} shared questions; left out: {left_out[0]} questions with "
            f"values only in A, {left_out[1]} only in B"
        )
    elif not paired:
        notes.append(f"no shared questions: unpaired comparison ({len(qa)} questions in A, {len(qb)} in B)")
    if paired:
        a, b = a.loc[shared], b.loc[shared]

    rng = np.random.default_rng(seed)
    rows = []
    for axis in axes:
        has_a, has_b = a[axis].notna(), b[axis].notna()
        if paired:  # the questions with a value on both sides
            has_a = has_b = has_a & has_b
        x, y = a.loc[has_a, axis].to_numpy(), b.loc[has_b, axis].to_numpy()
        row = {
            "axis": axis,
            "mean_a": float(x.mean()) if len(x) else np.nan,
            "mean_b": float(y.mean()) if len(y) else np.nan,
            "difference": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "flagged": False,
            "status": "ok",
            "n_a": len(x),
            "n_b": len(y),
        }
        empty = [side for side, frame in (("A", a), ("B", b)) if frame[axis].isna().all()]
        if empty:
            row["status"] = "no data in " + " and ".join(empty)
        elif min(len(x), len(y)) < 2:
            row["status"] = "fewer than 2 questions"
        else:
            if paired:
                d = y - x
                reps = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
                diff = float(d.mean())
            else:
                reps = y[rng.integers(0, len(y), (n_boot, len(y)))].mean(1) - x[
                    rng.integers(0, len(x), (n_boot, len(x)))
                ].mean(1)
                diff = float(y.mean() - x.mean())
            lo, hi = np.quantile(reps, [0.025, 0.975])
            row.update(
                difference=diff,
                ci_low=float(lo),
                ci_high=float(hi),
                flagged=bool((lo > 0 or hi < 0) and abs(diff) > threshold),
            )
        rows.append(row)
    out = pd.DataFrame(rows).set_index("axis")
    out.attrs.update(
        paired=paired,
        n_questions=len(shared) if paired else (len(qa), len(qb)),
        left_out=left_out if paired else (0, 0),
        threshold=threshold,
        n_boot=int(n_boot),
        not_comparable={ax: s for ax, s in out["status"].items() if s != "ok"},
        notes=notes,
        **identity,
    )
    return out
