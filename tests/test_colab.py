"""The Colab path: the .ipynb copies Colab opens, each with the guarded install cell added."""

from __future__ import annotations

import site
import subprocess
import sys

import jupytext
import nbformat
from waiting import WAIT

from styleprobe.apps.colab import COLAB_DIR, INSTALL_CELL, colab_notebook, sources
from styleprobe.paths import REPO_ROOT


def test_each_colab_copy_runs_the_install_cell_first_and_the_source_does_not():
    assert len(sources()) >= 12
    for source in sources():
        code = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{source.name}: code before the parameters"
        assert all(c.source != INSTALL_CELL for c in code), f"{source.name} holds the install cell itself"
        copy = colab_notebook(source)
        assert copy.cells[0].cell_type == "markdown"  # the title stays on top
        code = [c for c in copy.cells if c.cell_type == "code"]
        assert code[0].source == INSTALL_CELL, f"{source.name}: the copy's first code cell is not the install"
        assert "parameters" in code[1].metadata.get("tags", []), source.name


def test_the_colab_copies_are_the_current_notebooks():
    for source in sources():
        copy = COLAB_DIR / f"{source.stem}.ipynb"
        assert copy.exists(), f"{copy} missing: run `make colab`"
        nb = nbformat.read(copy, as_version=4)
        expected = colab_notebook(source)
        assert nbformat.writes(nb) == nbformat.writes(expected), (
            f"{copy.name} is out of date: run `make colab`"
        )
        assert nb.metadata["accelerator"] == "GPU" and not any(c.get("outputs") for c in nb.cells)


def test_the_install_cell_installs_styleprobe_where_it_is_missing(tmp_path):
    """A fresh environment that sees the dependencies but not styleprobe: the cell clones the repository,
    installs it and makes it importable in the same process."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (next((venv / "lib").glob("python*")) / "site-packages" / "deps.pth").write_text(
        site.getsitepackages()[0]
    )
    work = tmp_path / "work"
    work.mkdir()
    check = "\nimport styleprobe.paths\nprint(styleprobe.paths.REPO_ROOT)"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", INSTALL_CELL + check],
        cwd=work,
        env={"PATH": "/usr/bin:/bin", "STYLEPROBE_REPOSITORY": str(REPO_ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(work / "styleprobe")
