"""`make reproduce` on a clean checkout: the default run writes under build/reproduce, outside the tracked
tree, so `git status` stays clean; its results page, executed notebooks and the paper's inputs are there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import WAIT

from styleprobe.paths import REPO_ROOT

VENV = Path(sys.executable).parent.parent


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A clean checkout of the working tree: its tracked files (as they are now), committed."""
    if REPO_ROOT is None or shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("needs a git checkout, git and make")
    files = _git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    copy = tmp_path / "checkout"
    for name in filter(None, files):
        source = REPO_ROOT / name
        if source.is_file() or source.is_symlink():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name, follow_symlinks=False)
    _git(copy, "init", "-q")
    _git(copy, "add", "-A")
    _git(copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "clean")
    return copy


def test_the_default_reproduce_leaves_the_checkout_clean(checkout, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout / "lib"),  # the copy's package, not the one the venv was installed from
        "STYLEPROBE_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    command = ["make", "reproduce", f"VENV={VENV}", "-o", f"{VENV}/.installed"]
    command += ["MODELS=random:llama", "PROFILE=smoke", "NOTEBOOKS=01", "SKIP="]
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _git(checkout, "status", "--porcelain", "--ignored=no") == ""
    out = checkout / "build" / "reproduce"
    assert "random-llama" in (out / "RESULTS.md").read_text()
    assert (out / "results" / "notebooks" / "random-llama" / "01_calibration.ipynb").is_file()
    assert (out / "paper" / "generated" / "random-llama").is_dir()
    assert "the paper cannot be built from this run's outputs alone" in done.stdout  # 10 did not run
    assert "missing result cross_model/10_cross_model" in done.stderr
