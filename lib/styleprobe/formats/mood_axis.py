"""Readers for the published files of the original mood-axis study (github.com/yunoshev/mood-axis, MIT).

Projections in these files are uncentred: value = clip((h . a) / scale, -1, 1) with scale the IQR of the
calibration projections. Axis names are ``<positive>_<negative>``. Malformed files raise StudyFileError (a
ValueError with a one-line message naming the file).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from styleprobe.errors import StyleprobeError, first_line

DRIFT_SUMMARY_FIELDS = ("mean_slope", "std_slope", "mean_start", "mean_end", "mean_delta")


class StudyFileError(StyleprobeError, ValueError):
    """A file of the original study is malformed; the message is one line naming the file."""


@dataclass
class BaselineRecord:
    """One model's baseline: per-question projections on each axis the file carries."""

    model: str
    model_id: str
    values: pd.DataFrame  # questions (0..n-1) x axes
    summary: pd.DataFrame  # the file's own per-axis mean, std (ddof=0), min, max
    responses: list[dict[str, Any]] = field(default_factory=list)
    convention: str = "uncentred"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:  # a missing file stays FileNotFoundError
        raise StudyFileError(f"{path}: cannot read JSON ({type(e).__name__}: {e})") from e


def _bad(path: Path, what: str, e: Exception | None = None) -> StudyFileError:
    detail = f" ({type(e).__name__}: {first_line(e)})" if e is not None else ""
    return StudyFileError(f"{path}: malformed mood-axis {what} file{detail}")


def _number(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise TypeError(f"expected a finite number, got {x!r}")
    return float(x)


def load_baseline(path: str | Path) -> BaselineRecord:
    """Read ``article/baselines/<model>_baseline.json``."""
    path = Path(path)
    d = _read_json(path)
    try:
        axes = d["axes"]
        cols = {axis: [_number(v) for v in entry["values"]] for axis, entry in axes.items()}
        stats = {
            axis: {k: _number(entry[k]) for k in ("mean", "std", "min", "max")}
            for axis, entry in axes.items()
        }
        n_questions = int(d["n_questions"])
        model, model_id = str(d["model"]), str(d["model_id"])
        responses = list(d.get("responses") or [])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise _bad(path, "baseline", e) from e
    lengths = sorted({len(v) for v in cols.values()})
    if lengths != [n_questions]:
        raise _bad(
            path, "baseline", ValueError(f"axis lengths {lengths} differ from n_questions {n_questions}")
        )
    if responses and len(responses) != n_questions:
        raise _bad(path, "baseline", ValueError(f"{len(responses)} responses for {n_questions} questions"))
    values = pd.DataFrame(cols).rename_axis(index="question", columns="axis")
    summary = pd.DataFrame(stats).T.rename_axis(index="axis")
    return BaselineRecord(model, model_id, values, summary, responses)


def load_replication(path: str | Path) -> pd.DataFrame:
    """Read ``<model>_replication.json`` into long format.

    Columns: seed, scenario, turn (1-based position in ``mood_values``), axis, value, passed (the scenario's
    pass flag for that seed), checked (whether that turn's checks test that axis).
    """
    path = Path(path)
    d = _read_json(path)
    rows = []
    try:
        for run in d["runs"]:
            seed = int(run["seed"])
            for name, sc in run["scenarios"].items():
                checks = sc.get("checks") or [{}] * len(sc["mood_values"])
                for turn, (moods, check) in enumerate(zip(sc["mood_values"], checks, strict=True), start=1):
                    for axis, value in moods.items():
                        rows.append(
                            (seed, name, turn, axis, _number(value), bool(sc["passed"]), axis in check)
                        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise _bad(path, "replication", e) from e
    if not rows:
        raise _bad(path, "replication", ValueError("no runs"))
    return pd.DataFrame(rows, columns=["seed", "scenario", "turn", "axis", "value", "passed", "checked"])


def replication_seed_matrix(long: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Scenarios x seeds matrix of ``axis``'s value at each scenario's last turn (the study's ICC input).

    The study's per-axis ICC(2,1) uses all 9 scenarios as subjects (not only those testing the axis), the
    final entry of ``mood_values`` of each, and the 5 seeds as raters.
    """
    sub = long[long["axis"] == axis]
    if sub.empty:
        raise ValueError(f"axis {axis!r} not in the replication data")
    last = sub[sub["turn"] == sub.groupby(["scenario", "seed"])["turn"].transform("max")]
    matrix = last.pivot(index="scenario", columns="seed", values="value")
    if matrix.isna().any().any():
        raise ValueError(f"axis {axis!r}: scenarios x seeds matrix is incomplete")
    return matrix


def load_replication_summary(path: str | Path) -> pd.DataFrame:
    """Read ``replication_summary.json``: models x axes table of the study's published ICC(2,1)."""
    path = Path(path)
    d = _read_json(path)
    try:
        table = {model: {a: _number(v) for a, v in s["axis_icc"].items()} for model, s in d.items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise _bad(path, "replication summary", e) from e
    return pd.DataFrame(table).T.rename_axis(index="model", columns="axis")


def load_drift(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``<model>_drift.json``.

    Returns the long table (category, scenario_id, turn, axis, value, n_tokens; n_tokens float, NaN where
    the file has none) and the file's own ``drift_summary`` (axes x mean_slope, std_slope, mean_start,
    mean_end, mean_delta; the study fitted a least-squares slope of value on turn per scenario and took the
    ddof=0 std of the slopes).
    """
    path = Path(path)
    d = _read_json(path)
    rows = []
    try:
        for sc in d["scenarios"]:
            for t in sc["turns"]:
                n_tok = t.get("n_tokens")
                n_tok = float("nan") if n_tok is None else _number(n_tok)
                for axis, value in t["values"].items():
                    rows.append(
                        (sc["category"], sc["scenario_id"], int(t["turn"]), axis, _number(value), n_tok)
                    )
        summary = pd.DataFrame(
            {a: {k: _number(s[k]) for k in DRIFT_SUMMARY_FIELDS} for a, s in d["drift_summary"].items()}
        ).T
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise _bad(path, "drift", e) from e
    if not rows:
        raise _bad(path, "drift", ValueError("no scenarios"))
    long = pd.DataFrame(rows, columns=["category", "scenario_id", "turn", "axis", "value", "n_tokens"])
    return long, summary.rename_axis(index="axis")


def load_axis_npz(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read an axis_stability ``.npz``: axis names (``_axes`` order), n_axes x hidden vectors, scales."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise _bad(path, "axis .npz", ValueError("not an .npz (zip) archive"))
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(a) for a in z["_axes"]]
            vectors = np.stack([np.asarray(z[a]) for a in names])
            scales = np.array([float(z[f"{a}_scale"]) for a in names])
    except FileNotFoundError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise _bad(path, "axis .npz", e) from e
    if vectors.ndim != 2 or not np.all(np.isfinite(vectors)) or not np.all(np.isfinite(scales)):
        raise _bad(path, "axis .npz", ValueError(f"vectors of shape {vectors.shape} or scales not finite"))
    if not np.all(np.linalg.norm(vectors, axis=1) > 0) or not np.all(scales > 0):
        raise _bad(path, "axis .npz", ValueError("a zero vector or a scale <= 0"))
    return names, vectors, scales
