"""Per-answer logs (`--log-samples`): one JSON line per answer with what was asked, what came back and where
it projects, so answers can be read and re-scored without opening the run store.

Each line: the answer's `id` and its own fields (`seed`, `q_index`; `axis`, `pole` and `split` for
calibration answers), `question`, `system` (the system prompt it was answered under; null: none),
`response`, `n_tokens`, `empty` (no visible text), `cut` (stopped by the token budget instead of ending),
`clipped` (the axes whose projection lies at or beyond ±1: clipped to it by a clipping normalisation) and
`projection` ({axis: value} as the fingerprint takes it, null for an empty answer: in the axes' normalised
unit, which the fingerprint table converts to within-pole spreads on an axis not given in pole units). A
log is written whole or not at all, beside the file it belongs to (`<stem>.samples.jsonl`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from styleprobe.engine.pipeline import StageResult
from styleprobe.engine.store import atomic_write_text
from styleprobe.protocol.axes import AxisSet

OWN_FIELDS = ("seed", "q_index", "axis", "pole", "split")  # an answer's place in its stage, where it has one


def samples_path(output: Path) -> Path:
    """Where the samples of `output` (an axes or results file) go: `<stem>.samples.jsonl` beside it."""
    output = Path(output)
    return output.with_name(f"{output.stem}.samples.jsonl")


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def sample_rows(result: StageResult, axes: AxisSet, model_id: str | None = None) -> list[dict]:
    """One row per answer of `result`, projected on `axes` (the answers of `model_id`, checked)."""
    states = axes.states(result)
    values = axes.project(states, model_id)
    beyond = np.abs(axes.project(states, model_id, clip=False)) >= 1
    records = result.records
    silent = records["empty"].to_numpy(bool) | (records["n_measured"] == 0).to_numpy()
    rows = []
    for k, record in enumerate(records.to_dict(orient="records")):
        projection = {
            name: None if silent[k] else _number(float(values[k, i])) for i, name in enumerate(axes.names)
        }
        rows.append(
            {
                "id": record["id"],
                **{key: record[key] for key in OWN_FIELDS if key in record},
                "question": record["question"],
                "system": record["system"],
                "response": record["response"],
                "n_tokens": int(record["n_tokens"]),
                "empty": bool(silent[k]),
                "cut": not bool(record["finished"]),
                "clipped": [] if silent[k] else [n for i, n in enumerate(axes.names) if beyond[k, i]],
                "projection": projection,
            }
        )
    return rows


def write_samples(path: Path, rows: Iterable[dict]) -> Path:
    """Write `rows` as JSON lines to `path` atomically; returns `path`."""
    text = "".join(json.dumps(_plain(row), ensure_ascii=False, allow_nan=False) + "\n" for row in rows)
    atomic_write_text(path, text)
    return Path(path)


def _plain(value):
    """NumPy scalars as Python numbers (NaN as null), containers converted throughout."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _number(value)
    return value
