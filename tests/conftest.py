"""Shared fixtures: tiny random-init models (built from configs, cached for the session)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

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


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in ENGINE_TESTS:
            item.add_marker(pytest.mark.filterwarnings("error::FutureWarning"))
            item.add_marker(pytest.mark.filterwarnings("error::DeprecationWarning:transformers.*"))
            item.add_marker(pytest.mark.filterwarnings("error::DeprecationWarning:torch.*"))
            item.add_marker(pytest.mark.usefixtures("no_logged_deprecation"))


@pytest.fixture
def no_logged_deprecation():
    _DEPRECATIONS.messages.clear()
    yield
    assert not _DEPRECATIONS.messages, f"transformers logged a deprecation: {_DEPRECATIONS.messages[0]}"
