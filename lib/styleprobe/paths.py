"""Where the repository keeps data, axes, runs and figures (each overridable by an environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("STYLEPROBE_DATA_DIR", REPO_ROOT / "data"))
AXES_DIR = Path(os.environ.get("STYLEPROBE_AXES_DIR", REPO_ROOT / "axes"))
RUNS_DIR = Path(os.environ.get("STYLEPROBE_RUNS_DIR", REPO_ROOT / "runs"))
FIGURES_DIR = Path(os.environ.get("STYLEPROBE_FIGURES_DIR", REPO_ROOT / "figures"))
RESULTS_DIR = Path(os.environ.get("STYLEPROBE_RESULTS_DIR", REPO_ROOT / "results"))
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
