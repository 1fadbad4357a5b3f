"""Several processes on one root at once lose nothing: run stages, results sections, axes pairs, and first
calibrations of a model with an empty cache. The processes start together on a barrier (a multiprocessing
Barrier, or a start file for the command-line runs), never on sleeps, and are compared with a serial run.
The test waits for the processes to end, then reads what they wrote: no bound but WAIT, which only a hang
reaches, so a busy machine makes them slower, never failed."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import transformers
from waiting import WAIT

N = 4  # processes
ROUNDS = 12  # barrier-synchronised rounds per process in the store-level tests


def _axis_set(k: int):
    """Writer k's axes: every vector entry and the model id say k, so a mixed pair is visible."""
    from styleprobe.protocol.axes import AxisSet

    return AxisSet(
        names=["warm_cold", "formal_casual"],
        poles=[("warm", "cold"), ("formal", "casual")],
        vectors=np.full((2, 8), k, dtype=np.float32),
        centres=np.full(2, k, dtype=np.float64),
        scales=np.ones(2),
        model_id=f"model-{k}",
        hidden_size=8,
        layers=[1],
        aggregation={"decay": 0.9},
    )


def _check_axes(axes) -> str | None:
    k = int(axes.model_id.removeprefix("model-"))
    if not (np.all(axes.vectors == k) and np.all(axes.centres == k)):
        return f"mixed pair: json of {axes.model_id}, vectors {axes.vectors[0, 0]}"
    return None


def _worker(i: int, root: str, barrier) -> None:
    """One process of the store-level tests; writes its {job: outcome} to outcome-<i>.json beside the root."""
    from styleprobe.engine.store import RunMismatchError, Stage
    from styleprobe.protocol.axes import AxisSet
    from styleprobe.report.results import update_results

    root_ = Path(root)
    outcome: dict[str, list] = {"stage": [], "results": [], "axes": []}
    try:
        for r in range(ROUNDS):
            barrier.wait(WAIT)  # each process wants its own settings in the same new stage
            try:
                Stage(root_ / "runs" / f"stage{r}", {"writer": i, "round": r})
                outcome["stage"].append(r)
            except RunMismatchError:
                pass
            barrier.wait(WAIT)
            update_results("model", f"writer{i}-round{r}", {"i": i, "r": r}, root_ / "results")
            barrier.wait(WAIT)
            _axis_set(i).save(root_ / "axes" / "model.json")
            if problem := _check_axes(AxisSet.load(root_ / "axes" / "model.json")):
                outcome["axes"].append(problem)
    except Exception as err:
        outcome["error"] = [f"{type(err).__name__}: {err}"]
        barrier.abort()
    Path(f"{root}.outcome-{i}.json").write_text(json.dumps(outcome))


@pytest.fixture(scope="module")
def store_run(tmp_path_factory) -> tuple[Path, dict[int, dict[str, list]]]:
    """N processes at once, ROUNDS rounds each of: open one new stage each with its own settings, update
    its own section of one results file, write its own axes pair under one name and read it back."""
    root = tmp_path_factory.mktemp("store")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N)
    procs = [ctx.Process(target=_worker, args=(i, str(root), barrier)) for i in range(N)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(WAIT)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, f"{len(hung)} processes still running after {WAIT:.0f} s (STYLEPROBE_TEST_WAIT)"
    assert [p.exitcode for p in procs] == [0] * N
    outcomes = {i: json.loads(Path(f"{root}.outcome-{i}.json").read_text()) for i in range(N)}
    assert all("error" not in o for o in outcomes.values()), outcomes
    return root, outcomes


def test_of_concurrent_stages_with_other_settings_exactly_one_wins(store_run):
    from styleprobe.engine.store import read_manifest

    root, outcomes = store_run
    winners = {r: [i for i, o in outcomes.items() if r in o["stage"]] for r in range(ROUNDS)}
    assert all(len(w) == 1 for w in winners.values()), f"accepted, by round: {winners}"
    for r in range(ROUNDS):
        manifest = read_manifest(root / "runs" / f"stage{r}" / "manifest.json")
        assert manifest == {"settings": {"writer": winners[r][0], "round": r}}


def test_concurrent_results_updates_lose_no_section(store_run):
    from styleprobe.report.results import load_results

    root, _ = store_run
    expected = {f"writer{i}-round{r}": {"i": i, "r": r} for i in range(N) for r in range(ROUNDS)}
    assert load_results("model", root / "results") == {"model": "model", **expected}
    assert sorted(p.name for p in (root / "results").iterdir()) == ["model.json", "model.json.lock"]


def test_concurrent_axes_writers_never_leave_a_mixed_pair(store_run):
    from styleprobe.protocol.axes import AxisSet

    root, outcomes = store_run
    assert {i: o["axes"] for i, o in outcomes.items()} == {i: [] for i in range(N)}
    final = AxisSet.load(root / "axes" / "model.json")
    assert _check_axes(final) is None
    # the last writer's pair is byte for byte what a lone writer of the same axes writes
    k = int(final.model_id.removeprefix("model-"))
    alone = _axis_set(k).save(root / "alone" / "model.json")
    for suffix in (".json", ".safetensors"):
        assert (root / "axes" / f"model{suffix}").read_bytes() == alone.with_suffix(suffix).read_bytes()


STARTER = """
import pathlib, sys, time
from styleprobe.apps.cli import main  # the slow imports happen before the barrier
go, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
deadline = time.monotonic() + float(sys.argv[3])
while not go.exists():  # the barrier: every process is loaded and waits for the start file
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.002)
sys.exit(main(sys.argv[4:]))
"""


def _calibrate_args(where: Path) -> list[str]:
    return [
        "calibrate",
        "--root",
        str(where),
        "--quiet",
        "--model",
        "random:llama",
        "--profile",
        "smoke",
        "--axes",
        "warm_cold",
        "formal_casual",
    ]


def test_concurrent_first_calibrations_equal_a_serial_one(tmp_path, monkeypatch):
    from styleprobe.apps.cli import main
    from styleprobe.protocol.axes import AxisSet

    cache = tmp_path / "cache"
    env = {**os.environ, "STYLEPROBE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    shared, go = tmp_path / "shared", tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(N)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(go), str(r), str(WAIT), *_calibrate_args(shared)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        deadline = time.monotonic() + WAIT
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), "a process ended before the start"
            assert time.monotonic() < deadline, "the processes did not get ready"
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=WAIT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]

    serial = tmp_path / "serial"  # one run alone (in this process, also on one thread), same cache
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache))
    assert main(_calibrate_args(serial)) == 0

    together = AxisSet.load(shared / "axes" / "random-llama.json")
    alone = AxisSet.load(serial / "axes" / "random-llama.json")
    assert together.names == alone.names and len(alone.names) == 2
    np.testing.assert_array_equal(together.vectors, alone.vectors)
    np.testing.assert_array_equal(together.centres, alone.centres)
    np.testing.assert_array_equal(together.scales, alone.scales)
    for suffix in (".json", ".safetensors"):
        name = f"random-llama{suffix}"
        assert (shared / "axes" / name).read_bytes() == (serial / "axes" / name).read_bytes()
    # the model was built once into place: no partial folder is left beside it
    built = cache / "models" / f"transformers{transformers.__version__.split('.')[0]}"
    assert sorted(p.name for p in built.iterdir()) == ["random-llama", "random-llama.lock"]
