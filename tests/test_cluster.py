"""`styleprobe reproduce --ray`: models as Ray tasks on a local cluster give the results of the serial run,
a task whose worker dies is retried and resumes, and a failing model does not stop the others. One local
cluster serves the whole session (`ray_cluster` in conftest.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from styleprobe.apps.cluster import ModelRun, gpus_for, model_outputs, run_model, run_on_ray, summary
from styleprobe.apps.reproduce import notebook_parameters, reproduce, resolve_notebook
from styleprobe.engine.models import load_presets

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one worker starts the session's one cluster

MODELS = ["random:llama", "random:qwen2"]
NOTEBOOKS = ["01", "02"]
PARAMETERS = {"profile": "smoke", "seeds": [0, 1]}


@pytest.fixture(scope="module")
def cluster(ray_cluster):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's own tasks, by value


def _results(root: Path, slug: str) -> dict:
    """A model's results without what differs between runs of the same work (times, paths)."""
    data = json.loads((root / "results" / f"{slug}.json").read_text())
    return {k: v for k, v in data.items() if k in ("calibration", "baseline")}


@pytest.fixture(scope="module")
def serial(tmp_path_factory, ray_cluster) -> Path:
    """The same work run here, in the environment of the cluster's workers (its cache, one thread)."""
    root = tmp_path_factory.mktemp("serial")
    parameters = {**PARAMETERS, "root": str(root)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ray_cluster.items():
            patch.setenv(key, value)
        reproduce(MODELS, parameters, NOTEBOOKS, runs_dir=root / "runs", log=lambda _: None)
    return root


def test_models_run_as_ray_tasks_give_the_serial_results(cluster, serial, tmp_path):
    lines: list[str] = []
    runs = run_on_ray(MODELS, {**PARAMETERS, "root": str(tmp_path)}, NOTEBOOKS, log=lines.append)
    assert [r.status for r in runs] == ["done", "done"], summary(runs)
    assert any(line.startswith("paper") for line in lines)  # the driver checks the paper's inputs last
    assert all(r.notebooks == ["01_calibration", "02_baseline"] for r in runs)
    for slug in ("random-llama", "random-qwen2"):
        assert _results(tmp_path, slug) == _results(serial, slug)


def test_without_a_shared_root_the_outputs_come_back_to_the_driver(cluster, serial, tmp_path):
    runs = run_on_ray(
        MODELS[:1], {**PARAMETERS, "root": str(tmp_path)}, NOTEBOOKS, shared_root=False, log=lambda _: None
    )
    assert runs[0].status == "done" and runs[0].files, summary(runs)
    assert _results(tmp_path, "random-llama") == _results(serial, "random-llama")
    assert not (tmp_path / "runs").exists()  # the run store stayed on the node
    assert {p.relative_to(tmp_path) for p in model_outputs(tmp_path, "random-llama")} == set(
        map(Path, runs[0].files)
    )
    assert "results/notebooks/random-llama/02_baseline.ipynb" in runs[0].files  # readers' copies come too


def dies_once(marker_dir: str):
    """A task that, on its first attempt, runs the first notebook, notes the stage files it wrote and kills
    its worker as an out-of-memory kill would; later attempts run normally."""

    def task(
        model: str, parameters: dict, notebooks: list[str], root: str, shared: bool, skip=()
    ) -> ModelRun:
        marker = Path(marker_dir) / "attempts"
        attempts = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(attempts + 1))
        if attempts == 0:
            first = resolve_notebook(notebooks[0])
            taken = {k: v for k, v in parameters.items() if k in notebook_parameters(first)}
            assert run_model(model, taken, [first], root, shared).status == "done"
            batches = {str(p): p.stat().st_mtime_ns for p in Path(root, "runs").rglob("*.safetensors")}
            (Path(marker_dir) / "batches.json").write_text(json.dumps(batches))
            os._exit(1)
        return run_model(model, parameters, notebooks, root, shared, skip)

    return task


def test_a_task_whose_worker_dies_is_retried_and_resumes(cluster, serial, tmp_path):
    marker = tmp_path / "marker"
    marker.mkdir()
    root = tmp_path / "root"
    parameters = {**PARAMETERS, "root": str(root)}
    runs = run_on_ray(MODELS[:1], parameters, NOTEBOOKS, task=dies_once(str(marker)), log=lambda _: None)
    assert runs[0].status == "done", runs[0].error
    assert (marker / "attempts").read_text() == "2"
    before = json.loads((marker / "batches.json").read_text())
    assert before and all(Path(p).stat().st_mtime_ns == t for p, t in before.items())  # not redone
    assert _results(root, "random-llama") == _results(serial, "random-llama")


def test_a_failing_model_is_reported_and_the_others_go_on(cluster, tmp_path):
    lines: list[str] = []
    parameters = {"profile": "smoke", "root": str(tmp_path)}
    runs = run_on_ray(["random:nosuch", "random:llama"], parameters, ["01"], log=lines.append)
    assert [r.status for r in runs] == ["failed", "done"], summary(runs)
    assert "unknown random architecture 'nosuch'" in runs[0].error
    table = summary(runs)
    assert "random:nosuch" in table and "done: 1, failed: 1" in table
    assert any(line.startswith("random:nosuch: failed") for line in lines)


def test_gpus_come_from_the_preset_unless_overridden():
    presets = load_presets()
    assert gpus_for("qwen2.5-7b-instruct") == presets["qwen2.5-7b-instruct"].gpus == 1
    assert gpus_for("smollm2-135m-instruct") == 0 and gpus_for("org/unknown") == 0
    assert gpus_for("qwen2.5-7b-instruct", 2) == 2


def test_a_bad_plan_is_refused_before_any_task_starts(cluster, tmp_path):
    from styleprobe.errors import UsageError

    with pytest.raises(UsageError, match="unknown notebook parameter 'seeds'"):
        run_on_ray(["random:llama"], {"seeds": [0], "root": str(tmp_path)}, ["01"], log=lambda _: None)
