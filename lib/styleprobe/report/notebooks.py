"""Executed notebooks a reader can open without running anything: a clean copy of every notebook that
`styleprobe reproduce` runs, written to `results/notebooks/<model>/<notebook>.ipynb` and committed with the
results (GitHub and nbviewer render them). Clean: no run timings or progress bars, so that a re-run that
computes the same thing leaves git clean."""

from __future__ import annotations

from pathlib import Path

import nbformat

from styleprobe.engine.store import atomic_write_text

FOLDER = "notebooks"  # under the results folder


def published_folder(results: Path, owner: str) -> Path:
    """Where the clean copies of the notebooks run for `owner` (a model's folder name, or cross_model) go."""
    return Path(results) / FOLDER / owner


def published(results: Path, owner: str, notebook: str) -> Path:
    return published_folder(results, owner) / f"{notebook}.ipynb"


def is_progress(output: nbformat.NotebookNode) -> bool:
    """A stderr stream that only draws progress bars (tqdm redraws with carriage returns)."""
    return output.get("name") == "stderr" and ("\r" in output.get("text", "") or "it/s]" in output.text)


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without papermill's timings and status, cell execution times, progress bars and
    random cell ids (numbered instead)."""
    notebook.metadata.pop("papermill", None)
    for i, cell in enumerate(notebook.cells):
        cell.id = f"cell-{i:02d}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and is_progress(o))]
    return notebook


def publish(executed: Path, target: Path) -> Path:
    """Write the clean copy of the executed notebook to `target`, whole or not at all."""
    notebook = clean(nbformat.read(executed, as_version=4))
    atomic_write_text(target, nbformat.writes(notebook) + "\n")
    return target
