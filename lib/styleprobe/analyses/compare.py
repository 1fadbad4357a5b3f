"""Fingerprint regression check: per axis, the difference between two fingerprints with a t CI, and
which differences are large enough to flag (for gating a model builder's CI pipeline). The flag rule is
`flags`, a function of the values alone, so its false-positive rate can be simulated (notebook 12).

A fingerprint carries its identity: the id of the model that answered (`model_id`) and a digest of the
axes it was projected on (`styleprobe.protocol.axes.axes_id`). Projections on different axes are not
comparable, so `compare_fingerprints` refuses them; two models projected on the same axes (a fine-tuned
model and its parent, both read with the parent's axes) are compared, and the output says they
are different models."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
from numpy.typing import ArrayLike

from styleprobe import stats
from styleprobe.errors import first_line
from styleprobe.protocol.axes import AxesError
from styleprobe.protocol.fingerprint import BaselineResult

DEFAULT_THRESHOLD = 0.2
"""A shift is flagged when its simultaneous CI excludes 0 and |difference| exceeds this (normalised units)."""
ALPHA = 0.05
"""Family-wise error rate of the flags over the axes compared (Bonferroni: each axis at ALPHA / m)."""


def _columns(values: Sequence[ArrayLike] | np.ndarray) -> list[np.ndarray]:
    if isinstance(values, np.ndarray) and values.ndim == 2:
        return [np.asarray(column, dtype=float) for column in values.T]
    return [np.asarray(v, dtype=float).ravel() for v in values]


def _constant(v: np.ndarray) -> bool:
    """No spread beyond rounding (b - a of a shifted copy differs in the last bits)."""
    return bool(np.ptp(v) <= 1e-12 * np.max(np.abs(v)))


def _interval(x: np.ndarray, y: np.ndarray, paired: bool, level: float) -> tuple[float, float, float]:
    """Difference B - A and its t interval at `level`; a difference without spread is known exactly."""
    if paired:
        diff, exact = float(np.mean(y - x)), _constant(y - x)
    else:
        diff, exact = float(y.mean() - x.mean()), _constant(x) and _constant(y)
    if exact:
        return diff, diff, diff
    lo, hi = stats.mean_ci(y - x, level) if paired else stats.mean_difference_ci(y, x, level)
    return diff, lo, hi


def flags(
    a_values: Sequence[ArrayLike] | np.ndarray,
    b_values: Sequence[ArrayLike] | np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    paired: bool = True,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """The flag rule over m axes: one array of values per axis on each side (a questions x axes array is
    read by column), each with at least 2 values; paired sides have equal lengths per axis.

    Per axis, the difference B - A (paired: the mean of b - a; unpaired: mean(b) - mean(a)) and its t
    interval (paired: `stats.mean_ci` of b - a; unpaired: Welch, `stats.mean_difference_ci`) at confidence
    1 - alpha / m. The m intervals hold together with
    probability >= 1 - alpha (Bonferroni), so when A and B read the same distribution the chance that any
    axis is flagged is at most alpha. An axis is flagged when its interval excludes 0 and |difference| >
    threshold. A difference without spread (every b - a equal; unpaired: both sides constant) is known
    exactly: its interval is the difference itself.

    Why t and not the bootstrap, measured on null comparisons of 7 axes (normal or beta(2, 5) values alike
    on both sides, paired and unpaired): BCa intervals at 1 - 0.05 / 7 flag some axis in 33-51 % of them at
    5 questions, 9-15 % at 15 and 7-12 % at 30 (300 draws each); these t intervals in 3.3-6.7 % at 5, 15
    and 30 (1000 draws each, simulation error about 0.7 %). For a skewed paired difference (beta(2, 5)
    against normal), the 95 % t interval covers 0.93-0.94 at 5-30 questions, BCa 0.85-0.91.

    Returns one row per axis (0..m-1): difference, ci_low, ci_high, flagged; `attrs["ci"]` = 1 - alpha / m."""
    a_cols, b_cols = _columns(a_values), _columns(b_values)
    if len(a_cols) != len(b_cols) or not a_cols:
        raise ValueError(
            f"flags needs the same number (>= 1) of axes on both sides, got {len(a_cols)}, {len(b_cols)}"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    level = 1 - alpha / len(a_cols)
    lengths = {len(c) for c in a_cols + b_cols}
    if paired and len(lengths) == 1 and lengths.pop() >= 2:  # one matrix: every axis at once
        out = pd.DataFrame(
            paired_flags(np.column_stack(a_cols), np.column_stack(b_cols), threshold, alpha=alpha)
        )
        out.attrs["ci"] = level
        return out
    rows = []
    for x, y in zip(a_cols, b_cols, strict=True):
        if min(len(x), len(y)) < 2 or (paired and len(x) != len(y)):
            raise ValueError(
                f"each axis needs at least 2 values per side (paired: as many), got {len(x)}, {len(y)}"
            )
        diff, lo, hi = _interval(x, y, paired, level)
        flagged = bool((lo > 0 or hi < 0) and abs(diff) > threshold)
        rows.append({"difference": diff, "ci_low": lo, "ci_high": hi, "flagged": flagged})
    out = pd.DataFrame(rows, columns=["difference", "ci_low", "ci_high", "flagged"])
    out.attrs["ci"] = level
    return out


def paired_flags(
    a: np.ndarray, b: np.ndarray, threshold: float = DEFAULT_THRESHOLD, *, alpha: float = ALPHA
) -> dict[str, np.ndarray]:
    """`flags` for paired [..., n, m] questions x axes values without NaN, vectorised over leading axes:
    per axis the mean of b - a with its t interval (`stats.mean_ci`) at 1 - alpha / m; a difference
    without spread is known exactly. Returns difference, ci_low, ci_high, flagged ([..., m] each)."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    level = 1 - alpha / diff.shape[-1]
    moved = np.moveaxis(diff, -2, -1)
    mean = moved.mean(-1)
    low, high = stats.mean_ci(moved, level)
    exact = np.ptp(moved, axis=-1) <= 1e-12 * np.max(np.abs(moved), axis=-1)
    low, high = np.where(exact, mean, low), np.where(exact, mean, high)
    return {
        "difference": mean,
        "ci_low": low,
        "ci_high": high,
        "flagged": ((low > 0) | (high < 0)) & (np.abs(mean) > threshold),
    }


def seed_flags(
    a_seeds: np.ndarray,
    b_seeds: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    alpha: float = ALPHA,
) -> dict[str, np.ndarray]:
    """The flag rule with seeds as a random effect: per-seed means [..., k_a, m] and [..., k_b, m] (each
    seed's mean over the same questions on both sides, for m axes), compared per axis by a pooled-variance
    two-sample t interval of mean(b) - mean(a) over seeds at confidence 1 - alpha / m (Bonferroni), on
    k_a + k_b - 2 degrees of freedom. The questions' own effects are the same in every seed mean and cancel;
    what varies between seed means is a run's offset and its answers' noise, so a seed that shifts a whole
    run is a source of error here, not a change. Flagged: the interval excludes 0 and |difference| >
    threshold. Needs k_a + k_b >= 3. Vectorised over leading axes; returns difference, ci_low, ci_high,
    flagged ([..., m] each)."""
    a, b = np.asarray(a_seeds, dtype=float), np.asarray(b_seeds, dtype=float)
    k_a, k_b, m = a.shape[-2], b.shape[-2], a.shape[-1]
    dof = k_a + k_b - 2
    if dof < 1:
        raise ValueError(f"seeds as a random effect need at least 3 seeds in all, got {k_a} + {k_b}")
    diff = b.mean(-2) - a.mean(-2)
    ss = ((a - a.mean(-2, keepdims=True)) ** 2).sum(-2) + ((b - b.mean(-2, keepdims=True)) ** 2).sum(-2)
    half = scipy.stats.t.ppf(1 - alpha / (2 * m), dof) * np.sqrt(ss / dof * (1 / k_a + 1 / k_b))
    low, high = diff - half, diff + half
    return {
        "difference": diff,
        "ci_low": low,
        "ci_high": high,
        "flagged": ((low > 0) | (high < 0)) & (np.abs(diff) > threshold),
    }


def load_fingerprint(path: Path) -> pd.DataFrame:
    """Per-question projections (rows: question index, columns: axes, seed-averaged) of the baseline
    section (a `BaselineResult`) of a results file: `results/<model>.json` written by notebook 02 or
    `styleprobe fingerprint`, or the file of `styleprobe fingerprint --out`.

    `attrs` holds `source` (the path), the result's `model_id` and `axes_id`, `validation` (per axis, its
    held-out status, `protocol.validity.heldout_status`; empty for files written without it) and
    `per_seed` (every answer's projection with its seed and question, `BaselineResult.per_seed`; None for
    files written without it)."""
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
    validation = result.fingerprint.get("validation")
    frame.attrs.update(
        source=str(path),
        model_id=result.model_id or None,
        axes_id=result.axes_id or None,
        validation={} if validation is None else {str(k): str(v) for k, v in validation.items()},
        per_seed=result.per_seed if len(result.per_seed) else None,
    )
    return frame


def _check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise AxesError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if threshold < 0:
        raise AxesError(f"threshold must be a finite number >= 0, got {threshold!r}")


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
) -> pd.DataFrame:
    """Per shared axis: mean of each, difference b - a with its t CI, `flagged`, `status` and the
    questions used (`n_a`, `n_b`). The CIs and flags are `flags` over the comparable axes: simultaneous
    intervals at 1 - ALPHA / m (Bonferroni over the m comparable axes, `attrs["ci"]`), an axis flagged
    when its interval excludes 0 and |difference| > threshold; with no difference between A and B, the
    chance of any flag is at most ALPHA.

    `threshold` must be finite and >= 0 (AxesError otherwise).

    Identity (from `attrs`, see `load_fingerprint`): different `axes_id`s raise AxesError; different models
    on the same axes are compared and noted; frames without an identity are compared with a warning
    (`attrs["notes"]`).

    Pairing, by question index (the questions that hold any value on either side):
      - the same questions on both sides: paired over them;
      - some shared and some not (at least 2 shared): paired over the shared ones only, the means taken
        over those too; the questions left out are counted in `attrs["left_out"]` (only in A, only in B)
        and noted;
      - no shared question: unpaired, Welch's interval (the legitimately unpaired case);
      - exactly one shared question among others: refused (AxesError), as neither test fits.

    An axis that cannot be compared is kept in the table with `status` "no data in A", "no data in B",
    "no data in A and B" or "fewer than 2 questions" (paired: fewer than 2 questions with values on both
    sides; unpaired: fewer than 2 on one side), NaN statistics and `flagged` False; such axes are listed
    in `attrs["not_comparable"]` ({axis: status}), and the gate must not pass on them (the CLI prints the
    table and exits with status 2). Axes present on one side only are noted and left out.

    `validation` is each axis's held-out status from the files ("valid", "weak", "chance"; "not recorded"
    when neither file has it). A flag on an axis that is not "valid" says the projection moved, not that
    the style did: the CLI marks such axes."""
    _check_threshold(threshold)
    which = f"{_label(a, 'A')} and {_label(b, 'B')}"
    axes = [c for c in a.columns if c in b.columns]
    if not axes:
        raise AxesError(f"{which} share no axis")
    notes, identity = _identity(a, b)
    validation = a.attrs.get("validation") or b.attrs.get("validation") or {}  # same axes: same status
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

    rows, values = [], {}
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
            "validation": validation.get(axis, "not recorded"),
        }
        empty = [side for side, frame in (("A", a), ("B", b)) if frame[axis].isna().all()]
        if empty:
            row["status"] = "no data in " + " and ".join(empty)
        elif min(len(x), len(y)) < 2:
            row["status"] = "fewer than 2 questions"
        else:
            values[axis] = (x, y)
        rows.append(row)
    out = pd.DataFrame(rows).set_index("axis")
    level = 1 - ALPHA
    seeds = _seed_means(a, b, list(values)) if paired and values else None
    if seeds is not None:
        found = pd.DataFrame(seed_flags(*seeds, threshold), index=list(values))
        level = 1 - ALPHA / len(values)
    elif values:
        found = flags(
            [x for x, _ in values.values()],
            [y for _, y in values.values()],
            threshold,
            paired=paired,
        )
        found.index = list(values)
        level = found.attrs["ci"]
        notes.append(
            "seeds are not a random effect here (fewer than 3 seeds in all, or no per-seed record): a seed "
            "that shifts a whole run would read as a change (see docs/method.md, compare)"
        )
    if values:
        out.loc[found.index, found.columns] = found
        out["flagged"] = out["flagged"].astype(bool)
    out.attrs.update(
        paired=paired,
        n_questions=len(shared) if paired else (len(qa), len(qb)),
        left_out=left_out if paired else (0, 0),
        threshold=threshold,
        ci=level,
        not_comparable={ax: s for ax, s in out["status"].items() if s != "ok"},
        notes=notes,
        seeds=None if seeds is None else (seeds[0].shape[0], seeds[1].shape[0]),
        **identity,
    )
    return out


def _seed_means(a: pd.DataFrame, b: pd.DataFrame, axes: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Per side, each seed's mean over the questions of `a` and `b` (already the paired questions) with a
    value on both sides, per axis: [seeds, axes] arrays for `seed_flags`; None without a per-seed record on
    both sides or with fewer than 3 seeds in all."""
    records = [frame.attrs.get("per_seed") for frame in (a, b)]
    if any(r is None or not len(r) for r in records):
        return None
    means = []
    for record in records:
        columns = []
        for axis in axes:
            shared = a.index[a[axis].notna() & b[axis].notna()]
            columns.append(record[record["q_index"].isin(shared)].groupby("seed")[axis].mean())
        means.append(pd.concat(columns, axis=1).dropna().to_numpy())
    return tuple(means) if seeds_random(*(len(m) for m in means)) else None


def seeds_random(k_a: int, k_b: int) -> bool:
    """Whether `compare` treats seeds as a random effect (`seed_flags`) for fingerprints of k_a and k_b seeds:
    with a seed on each side and at least 3 in all; otherwise it compares questions (`flags`)."""
    return min(k_a, k_b) >= 1 and k_a + k_b >= 3
