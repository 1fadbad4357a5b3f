"""Read the residual stream at response tokens with a teacher-forced, hooked forward pass.

Only the needed decoder blocks are hooked, the LM head is never run, and the pass stops after the deepest
needed block. Each hook reduces its block's output to one decay-weighted mean per sequence at once, so no
layer's full hidden states are kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch

from styleprobe.engine.compat import cache_kwargs, new_cache
from styleprobe.engine.hooks import block_hooks, pad_batch
from styleprobe.engine.models import ModelHandle
from styleprobe.errors import StyleprobeError, is_integer


class NonFiniteStatesError(StyleprobeError, FloatingPointError):
    """Hidden states hold NaN or inf (fp16 overflow is the usual cause)."""


@dataclass(frozen=True)
class Aggregation:
    """How a response becomes one vector: residual stream after each of `layers` (decoder blocks, negative
    counts from the end; all read before the final norm), tokens weighted by `decay` per step back from the
    last response token (1 = plain mean, 0 = last token only), layers combined with `layer_weights`."""

    layers: tuple[int, ...] = (-4, -3, -2, -1)
    layer_weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
    decay: float = 0.9

    def __post_init__(self) -> None:
        if len(self.layers) != len(self.layer_weights) or not self.layers:
            raise ValueError("layers and layer_weights must be non-empty and of one length")
        if not all(is_integer(i) for i in self.layers):
            raise ValueError(f"layers must be integers, got {list(self.layers)}")
        w = np.asarray(self.layer_weights, dtype=np.float64)
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError(
                f"layer_weights must be finite, >= 0 and not all 0, got {list(self.layer_weights)}"
            )
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {self.decay}")

    def absolute_layers(self, n_layers: int) -> list[int]:
        out = [i % n_layers if -n_layers <= i < n_layers else None for i in self.layers]
        if None in out:
            raise ValueError(f"layers {self.layers} do not exist in a model with {n_layers} blocks")
        return out  # type: ignore[return-value]

    def combine(self, per_layer: np.ndarray) -> np.ndarray:
        """[..., n_layers, hidden] per-layer aggregates -> [..., hidden], weights normalised to sum 1."""
        w = np.asarray(self.layer_weights, dtype=np.float64)
        return np.tensordot(per_layer, w / w.sum(), axes=([-2], [0])).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TokenSequence:
    """Token ids of prompt + response and which positions to aggregate."""

    ids: list[int]
    measure: list[bool]


def measure_mask(handle: ModelHandle, prompt_len: int, response_ids: Sequence[int]) -> list[bool]:
    """Response tokens only; for thinking models, only the visible answer after the closing think tag
    (an unclosed think block leaves nothing to measure)."""
    resp = [True] * len(response_ids)
    if not handle.thinking:
        return [False] * prompt_len + resp
    open_id, close_id = handle.think_ids
    if close_id is not None and close_id in response_ids:
        end = len(response_ids) - 1 - list(reversed(response_ids)).index(close_id)
        resp[: end + 1] = [False] * (end + 1)
    elif open_id is not None and open_id in response_ids:
        resp = [False] * len(response_ids)
    return [False] * prompt_len + resp


def token_weights(measure: torch.Tensor, decay: float) -> torch.Tensor:
    """[B, T] bool -> [B, T] weights decay**(steps back from the last measured token), summing to 1."""
    steps_back = measure.flip(-1).cumsum(-1).flip(-1) - 1
    w = torch.pow(torch.tensor(decay, dtype=torch.float64), steps_back.clamp(min=0).double())
    w = w * measure
    return (w / w.sum(-1, keepdim=True).clamp(min=1e-30)).float()


def check_finite(states: torch.Tensor, layers: list[int]) -> None:
    """Raise NonFiniteStatesError naming the first of `layers` whose states [..., layers, hidden] hold NaN
    or inf."""
    finite = torch.isfinite(states).all(-1).flatten(0, -2).all(0)  # one flag per layer
    if not bool(finite.all()):
        bad = layers[int((~finite).nonzero()[0])]
        raise NonFiniteStatesError(
            f"non-finite hidden states at decoder layer {bad} (fp16 overflow is the usual cause; "
            "use bfloat16 or float32)"
        )


class _Stop(Exception):
    pass


@torch.inference_mode()
def extract(
    handle: ModelHandle,
    seqs: list[TokenSequence],
    layers: Sequence[int],
    decays: Sequence[float] = (0.9,),
    *,
    chunk_size: int | None = None,
    padding: Literal["left", "right"] = "left",
) -> np.ndarray:
    """Per-layer aggregates, float32 array [n_seqs, n_decays, n_layers, hidden].

    `layers` are absolute block indices. With `chunk_size`, the forward pass runs over the sequence in
    chunks with a KV cache, so activation memory stays bounded for long responses."""
    dev = handle.device
    ids, attn = pad_batch([s.ids for s in seqs], handle.tokenizer.pad_token_id, padding, dev)
    meas = pad_batch([s.measure for s in seqs], 0, padding)[0].bool()  # padding is never measured
    weights = torch.stack([token_weights(meas, d) for d in decays]).to(dev)  # [K, B, T]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    out = torch.zeros(len(decays), len(seqs), len(layers), handle.hidden_size, device=dev)
    deepest = max(layers)
    span = [0, 0]

    def reader(slot: int, index: int):
        def fn(hidden: torch.Tensor) -> None:
            out[:, :, slot] += torch.einsum("kbt,btd->kbd", weights[:, :, span[0] : span[1]], hidden.float())
            if index == deepest:
                raise _Stop

        return fn

    step = chunk_size or ids.shape[1]
    cache = new_cache(handle.model, capacity=ids.shape[1]) if step < ids.shape[1] else None
    decoder = handle.model.get_decoder()
    with block_hooks(handle, [(i, reader(j, i)) for j, i in enumerate(layers)]):
        for start in range(0, ids.shape[1], step):
            span[:] = [start, min(start + step, ids.shape[1])]
            with contextlib.suppress(_Stop):  # raised after the deepest needed block
                decoder(
                    input_ids=ids[:, span[0] : span[1]],
                    attention_mask=attn[:, : span[1]],
                    position_ids=positions[:, span[0] : span[1]],
                    **cache_kwargs(decoder, cache),
                )
    check_finite(out, list(layers))
    return out.permute(1, 0, 2, 3).cpu().numpy()
