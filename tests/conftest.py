"""Shared fixtures: tiny random-init models (built from configs, cached for the session)."""

from __future__ import annotations

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
