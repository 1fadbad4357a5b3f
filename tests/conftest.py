"""Shared fixtures: tiny random-init models (built from configs, cached for the session)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
import torch
from waiting import WAIT

import styleprobe.testing  # noqa: F401  (registers the `random:` test models with load_model)

# Keep tests away from the user's cache, except for the dequantised embedded model (slow to rebuild).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models run fastest on one thread (thread start-up dominates); real-model tests ask for more.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny(cache):
    """`tiny("llama")` -> a loaded ModelHandle of a random-init model of that architecture."""
    from styleprobe.testing import load_random_model

    loaded = {}

    def get(arch: str):
        if arch not in loaded:
            loaded[arch] = load_random_model(arch, cache / arch)
        return loaded[arch]

    return get


# A local Ray node starts a raylet and Python agents; the raylet gives the agents a fixed window (15 s) to
# report their ports and exits when they miss it, which a busy machine can make them do. Ray then raises a
# bare Exception after its own wait: a failed start, not a defect, so the cluster is started again until WAIT.
RAY_SLOW_START = "timed out during startup"
RAY_NODE_PATH = Path(__file__).parent / "ray_node"  # what the cluster's processes import first (see there)


def _stop_ray_processes() -> None:
    """What a failed start left running (ray.shutdown only stops a node that started)."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if any("/ray/" in part for part in child.cmdline()):
                child.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> dict[str, str]:
    """One local Ray cluster (2 CPUs) for the whole test session. Its processes take the environment of its
    start: one model cache, one thread each (returned: what a serial run needs to give the same numbers),
    and time to register on a busy machine."""
    ray = pytest.importorskip("ray")
    work = {"STYLEPROBE_CACHE": str(tmp_path_factory.mktemp("ray-cache")), "OMP_NUM_THREADS": "1"}
    env = {
        **work,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(RAY_NODE_PATH), os.environ.get("PYTHONPATH")])),
        "RAY_raylet_start_wait_time_s": "120",  # the node's registration, once its agents are up
        "RAY_worker_register_timeout_seconds": str(int(WAIT)),
    }
    deadline = time.monotonic() + WAIT
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        while True:
            try:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                break
            except Exception as err:
                ray.shutdown()
                _stop_ray_processes()
                if RAY_SLOW_START not in str(err) or time.monotonic() > deadline:
                    raise
    yield work
    ray.shutdown()


# The engine's tests fail on a deprecation from transformers or torch, so an upgrade that deprecates what
# the engine calls shows up here before the removal breaks it. transformers warns both through `warnings`
# (FutureWarning, DeprecationWarning) and through its own logger, which does not propagate to the root.
ENGINE_TESTS = {
    "test_generation",
    "test_extraction",
    "test_hooks",
    "test_models",
    "test_pipeline",
    "test_realmodel",
}
DEPRECATED = ("deprecated", "will be removed")


class _Deprecations(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(word in message.lower() for word in DEPRECATED):
            self.messages.append(message)


_DEPRECATIONS = _Deprecations()
logging.getLogger("transformers").addHandler(_DEPRECATIONS)


# The modules that take a minute or more, run first so that with pytest-xdist (make test) the short tests
# fill the other worker meanwhile instead of leaving one long test alone at the end.
LONG_FIRST = ("test_cluster", "test_realmodel", "test_compare", "test_make_reproduce", "test_concurrency")


def _module(item: pytest.Item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1]


def pytest_collection_modifyitems(items) -> None:
    items.sort(
        key=lambda item: LONG_FIRST.index(m) if (m := _module(item)) in LONG_FIRST else len(LONG_FIRST)
    )
    for item in items:
        if _module(item) in ENGINE_TESTS:
            item.add_marker(pytest.mark.filterwarnings("error::FutureWarning"))
            item.add_marker(pytest.mark.filterwarnings("error::DeprecationWarning:transformers.*"))
            item.add_marker(pytest.mark.filterwarnings("error::DeprecationWarning:torch.*"))
            item.add_marker(pytest.mark.usefixtures("no_logged_deprecation"))


@pytest.fixture
def no_logged_deprecation():
    _DEPRECATIONS.messages.clear()
    yield
    assert not _DEPRECATIONS.messages, f"transformers logged a deprecation: {_DEPRECATIONS.messages[0]}"
