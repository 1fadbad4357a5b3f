"""What differs between the transformers releases the engine supports (pyproject.toml's range), in one place:
the keyword that sets a model's dtype, a new KV cache for a model (preallocated where the release lays the
cache out in layers), and the keyword its forward takes the cache under. Each is read off the installed
release, so no code path warns of a deprecation on any of them."""

from __future__ import annotations

import inspect
from functools import cache

import torch
import transformers
from packaging.version import Version
from transformers import DynamicCache

DTYPE_KEYWORD = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
"""The `from_pretrained` / `from_config` keyword of the weights' dtype (`torch_dtype` before 4.56)."""


try:  # releases that lay the cache out in layers
    from transformers.cache_utils import DynamicLayer
except ImportError:
    DynamicLayer = None


if DynamicLayer is not None:

    class PreallocatedLayer(DynamicLayer):
        """A full-attention cache layer that writes into a buffer of `capacity` positions allocated on the
        first update, so a decoding step copies one position instead of the whole cache (`DynamicLayer`
        concatenates). Attention reads a view of the filled part; the buffer grows if a sequence outlives
        it. Dropping rows (`batch_select_indices`) copies the buffer once. Same numbers as `DynamicLayer`."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity, self.length = capacity, 0

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            if not self.is_initialized:
                self.device, self.is_initialized = key_states.device, True
                b, h, _, d = key_states.shape
                self._keys = key_states.new_empty(b, h, self.capacity, d)
                self._values = value_states.new_empty(b, h, self.capacity, d)
            end = self.length + key_states.shape[-2]
            if end > self._keys.shape[-2]:
                self._keys, self._values = (
                    torch.cat([t, t.new_empty(*t.shape[:2], end, t.shape[-1])], dim=-2)
                    for t in (self._keys, self._values)
                )
            self._keys[:, :, self.length : end] = key_states
            self._values[:, :, self.length : end] = value_states
            self.length = end
            self._expose()
            return self.keys, self.values

        def _expose(self) -> None:
            self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]

        def get_seq_length(self) -> int:
            return self.length

        def crop(self, tokens_to_remove: int) -> None:
            super().crop(tokens_to_remove)  # slices the view; the next update overwrites the buffer there
            self.length = self.keys.shape[-2] if self.is_initialized else 0

        def reset(self) -> None:
            super().reset()
            self.length = 0

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.length:
                self._keys, self._values = self._keys[indices], self._values[indices]
                self._expose()


def new_cache(model: torch.nn.Module, capacity: int | None = None) -> DynamicCache:
    """An empty dynamic cache laid out for `model` (releases before the layered cache take no config).
    With `capacity` (positions per row, prompt included), its full-attention layers are `PreallocatedLayer`s
    where the release has layers; sliding-window and other layers stay as the model's config makes them."""
    if "config" not in inspect.signature(DynamicCache.__init__).parameters:
        return DynamicCache()
    cache = DynamicCache(config=model.config)
    if capacity is not None and DynamicLayer is not None:
        cache.layers = [PreallocatedLayer(capacity) if type(x) is DynamicLayer else x for x in cache.layers]
    return cache


@cache
def _cache_keyword(forward_owner: type) -> str:
    parameters = inspect.signature(forward_owner.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_kwargs(module: torch.nn.Module, kv: DynamicCache | None) -> dict:
    """Keyword arguments that pass `kv` (None: no cache) to `module`'s forward under the name it takes."""
    return {_cache_keyword(type(module)): kv, "use_cache": kv is not None}
