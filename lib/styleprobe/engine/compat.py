"""What differs between the transformers releases the engine supports (pyproject.toml's range), in one place:
the keyword that sets a model's dtype, a new KV cache for a model, and the keyword its forward takes the cache
under. Each is read off the installed release, so no code path warns of a deprecation on any of them."""

from __future__ import annotations

import inspect
from functools import cache

import torch
import transformers
from packaging.version import Version
from transformers import DynamicCache

DTYPE_KEYWORD = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
"""The `from_pretrained` / `from_config` keyword of the weights' dtype (`torch_dtype` before 4.56)."""


def new_cache(model: torch.nn.Module) -> DynamicCache:
    """An empty dynamic cache laid out for `model` (releases before the layered cache take no config)."""
    if "config" in inspect.signature(DynamicCache.__init__).parameters:
        return DynamicCache(config=model.config)
    return DynamicCache()


@cache
def _cache_keyword(forward_owner: type) -> str:
    parameters = inspect.signature(forward_owner.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_kwargs(module: torch.nn.Module, kv: DynamicCache | None) -> dict:
    """Keyword arguments that pass `kv` (None: no cache) to `module`'s forward under the name it takes."""
    return {_cache_keyword(type(module)): kv, "use_cache": kv is not None}
