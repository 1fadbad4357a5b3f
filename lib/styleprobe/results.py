"""`results/<model>.json`: the small machine-readable summary each notebook adds its section to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe.paths import RESULTS_DIR
from styleprobe.store import write_json


def _plain(obj):
    """JSON-ready copies of numpy and pandas values (NaN becomes null)."""
    if isinstance(obj, pd.DataFrame):
        return _plain(obj.to_dict(orient="index"))
    if isinstance(obj, pd.Series):
        return _plain(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def results_path(slug: str, results_dir: Path | None = None) -> Path:
    return Path(results_dir or RESULTS_DIR) / f"{slug}.json"


def load_results(slug: str, results_dir: Path | None = None) -> dict:
    path = results_path(slug, results_dir)
    return json.loads(path.read_text()) if path.exists() else {"model": slug}


def update_results(slug: str, section: str, payload, results_dir: Path | None = None) -> Path:
    """Replace one section of the model's results file (written atomically) and return its path."""
    data = load_results(slug, results_dir)
    data[section] = _plain(payload)
    path = results_path(slug, results_dir)
    write_json(path, data)
    return path


def all_results(results_dir: Path | None = None) -> dict[str, dict]:
    """Every model's results, by slug."""
    folder = Path(results_dir or RESULTS_DIR)
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
