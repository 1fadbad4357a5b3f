"""The clean copies of executed notebooks that readers open: outputs kept, run timings and bars dropped."""

from __future__ import annotations

import nbformat

from styleprobe.apps.reproduce import execute
from styleprobe.report.notebooks import clean, publish, published


def _executed() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=1)
    cell.metadata["papermill"] = {"duration": 1.5, "status": "completed"}
    cell.metadata["execution"] = {"iopub.execute_input": "2026-12-01T08:00:00"}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="1\n"),
        nbformat.v4.new_output("stream", name="stderr", text="answers:  50%|#####     | 1/2 [00:01<00:01]\r"),
        nbformat.v4.new_output("stream", name="stderr", text="UserWarning: few answers\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["papermill"] = {"start_time": "2026-12-01T08:00:00", "duration": 3.0}
    return notebook


def test_the_clean_copy_keeps_what_the_cells_show_and_drops_timings_and_progress_bars():
    notebook = clean(_executed())
    outputs = notebook.cells[0].outputs
    assert [o.get("text", "image") for o in outputs] == ["1\n", "UserWarning: few answers\n", "image"]
    assert "papermill" not in notebook.metadata and not notebook.cells[0].metadata


def test_publishing_the_same_run_twice_writes_the_same_file(tmp_path):
    executed = tmp_path / "run.ipynb"
    nbformat.write(_executed(), executed)
    target = published(tmp_path / "results", "some-model", "02_baseline")
    first = publish(executed, target).read_bytes()
    notebook = _executed()
    notebook.metadata["papermill"]["duration"] = 9.0  # another run of the same work
    nbformat.write(notebook, executed)
    assert publish(executed, target).read_bytes() == first
    assert target == tmp_path / "results" / "notebooks" / "some-model" / "02_baseline.ipynb"


def test_a_notebook_run_by_reproduce_is_published_for_its_model(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path / "cache"))
    parameters = {"model": "random:qwen2", "profile": "smoke", "root": str(tmp_path)}
    execute("01_calibration", tmp_path / "runs" / "01.ipynb", parameters, progress=False)
    copy = nbformat.read(published(tmp_path / "results", "random-qwen2", "01_calibration"), as_version=4)
    assert any(c.get("outputs") for c in copy.cells) and "papermill" not in copy.metadata
