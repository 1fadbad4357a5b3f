"""Where the repository keeps data, axes, runs and figures (each overridable by an environment variable)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("STYLEPROBE_DATA_DIR", REPO_ROOT / "data"))
AXES_DIR = Path(os.environ.get("STYLEPROBE_AXES_DIR", REPO_ROOT / "axes"))
RUNS_DIR = Path(os.environ.get("STYLEPROBE_RUNS_DIR", REPO_ROOT / "runs"))
FIGURES_DIR = Path(os.environ.get("STYLEPROBE_FIGURES_DIR", REPO_ROOT / "figures"))
RESULTS_DIR = Path(os.environ.get("STYLEPROBE_RESULTS_DIR", REPO_ROOT / "results"))
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


@dataclass(frozen=True)
class Folders:
    """Where runs, axes, figures and results go (the paper's generated files go beside the results)."""

    runs: Path
    axes: Path
    figures: Path
    results: Path


def folders(root: str | Path | None = None) -> Folders:
    """`runs/`, `axes/`, `figures/` and `results/` under `root`; None: the repository's (or the environment
    variables')."""
    if root is None:
        return Folders(RUNS_DIR, AXES_DIR, FIGURES_DIR, RESULTS_DIR)
    root = Path(root)
    return Folders(root / "runs", root / "axes", root / "figures", root / "results")
