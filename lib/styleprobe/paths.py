"""Where styleprobe finds its data and where it writes by default (each overridable by an environment
variable).

The data (axes, questions, lexicon, judge rubrics, drift scenarios, model presets, the original study's
files) ship inside the package as `styleprobe/data`, so an installed wheel works from any folder; in a
checkout `data/` points at the same folder. `STYLEPROBE_DATA_DIR` names another data folder. Outputs go
under one root: the checkout when styleprobe runs from one, else the current folder (`STYLEPROBE_ROOT`
overrides both); `runs/`, `axes/`, `figures/` and `results/` below it may each be moved by their own
variable."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
_CHECKOUT = Path(__file__).resolve().parents[2]
IN_CHECKOUT = (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "notebooks").is_dir()
REPO_ROOT = _CHECKOUT if IN_CHECKOUT else None  # notebooks/ and paper/ exist only in a checkout
NOTEBOOKS_DIR = _CHECKOUT / "notebooks"
# The project's public address, set here only: the Colab copies' install cell clones it, and a test keeps
# README.md's Colab links and badges, CITATION.cff and pyproject.toml's URLs in agreement with it.
REPOSITORY = "https://github.com/styleprobe/styleprobe"


def data_dir() -> Path:
    """The data folder: `STYLEPROBE_DATA_DIR`, else the package's own."""
    return Path(os.environ.get("STYLEPROBE_DATA_DIR") or PACKAGE_DATA)


def default_root() -> Path:
    """Where outputs go by default: `STYLEPROBE_ROOT`, else the checkout, else the current folder."""
    root = os.environ.get("STYLEPROBE_ROOT")
    if root:
        return Path(root)
    return REPO_ROOT if REPO_ROOT is not None else Path.cwd()


@dataclass(frozen=True)
class Folders:
    """Where runs, axes, figures and results go (the paper's generated files go beside the results)."""

    runs: Path
    axes: Path
    figures: Path
    results: Path


def folders(root: str | Path | None = None) -> Folders:
    """`runs/`, `axes/`, `figures/` and `results/` under `root`; None: the default root, each folder
    overridable by `STYLEPROBE_RUNS_DIR`, `STYLEPROBE_AXES_DIR`, `STYLEPROBE_FIGURES_DIR`,
    `STYLEPROBE_RESULTS_DIR`."""
    if root is not None:
        root = Path(root)
        return Folders(root / "runs", root / "axes", root / "figures", root / "results")
    base = default_root()
    env = os.environ.get
    return Folders(
        Path(env("STYLEPROBE_RUNS_DIR") or base / "runs"),
        Path(env("STYLEPROBE_AXES_DIR") or base / "axes"),
        Path(env("STYLEPROBE_FIGURES_DIR") or base / "figures"),
        Path(env("STYLEPROBE_RESULTS_DIR") or base / "results"),
    )
