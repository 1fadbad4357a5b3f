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
from styleprobe.engine.hooks import EMBEDDING, block_hooks, pad_batch
from styleprobe.engine.models import ModelHandle
from styleprobe.errors import StyleprobeError, is_integer


class NonFiniteStatesError(StyleprobeError, FloatingPointError):
    """Hidden states hold NaN or inf (fp16 overflow is the usual cause)."""


POOLINGS: dict[str, float] = {"last": 0.0, "mean": 1.0, "decay_0.9": 0.9}
"""Token poolings by name -> decay: the last answer token, the plain mean, weights 0.9^k (k steps back)."""


def _is_block(i: object) -> bool:
    return i == EMBEDDING or is_integer(i)


@dataclass(frozen=True)
class Aggregation:
    """How a response becomes one vector: residual stream after each of `layers` (decoder blocks, negative
    counts from the end; all read before the final norm; EMBEDDING = "embed" is the embedding output, the
    input of block 0), tokens weighted by `decay` per step back from the last response token (1 = plain
    mean, 0 = last token only), layers combined with `layer_weights`."""

    layers: tuple[int | str, ...] = (-4, -3, -2, -1)
    layer_weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
    decay: float = 0.9

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))  # lists from json files
        object.__setattr__(self, "layer_weights", tuple(self.layer_weights))
        if len(self.layers) != len(self.layer_weights) or not self.layers:
            raise ValueError("layers and layer_weights must be non-empty and of one length")
        if not all(_is_block(i) for i in self.layers):
            raise ValueError(f"layers must be integers or {EMBEDDING!r}, got {list(self.layers)}")
        w = np.asarray(self.layer_weights, dtype=np.float64)
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError(
                f"layer_weights must be finite, >= 0 and not all 0, got {list(self.layer_weights)}"
            )
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {self.decay}")

    def absolute_layers(self, n_layers: int) -> list[int | str]:
        inside = range(-n_layers, n_layers)
        out = [i if i == EMBEDDING else (i % n_layers if i in inside else None) for i in self.layers]
        if None in out:
            raise ValueError(f"layers {self.layers} do not exist in a model with {n_layers} blocks")
        return out  # type: ignore[return-value]

    def absolute(self, n_layers: int) -> Aggregation:
        """The same aggregation with its layers counted from block 0 of a model with `n_layers` blocks."""
        return Aggregation(tuple(self.absolute_layers(n_layers)), self.layer_weights, self.decay)

    @property
    def pooling(self) -> str:
        """The token pooling's name (a key of POOLINGS), or `decay_<d>` for another decay."""
        return next((k for k, d in POOLINGS.items() if d == self.decay), f"decay_{self.decay:g}")

    def label(self) -> str:
        """A short name: `block 14, mean` for one block, `blocks 26-29 (0.1-0.4), decay_0.9` otherwise."""
        if len(self.layers) == 1:
            return f"block {self.layers[0]}, {self.pooling}"
        weights = "-".join(f"{w:g}" for w in (self.layer_weights[0], self.layer_weights[-1]))
        blocks = "+".join(map(str, self.layers))
        return f"blocks {blocks} ({weights}), {self.pooling}"

    def combine(self, per_layer: np.ndarray) -> np.ndarray:
        """[..., n_layers, hidden] per-layer aggregates -> [..., hidden], weights normalised to sum 1."""
        w = np.asarray(self.layer_weights, dtype=np.float64)
        return np.tensordot(per_layer, w / w.sum(), axes=([-2], [0])).astype(np.float32)

    def to_dict(self) -> dict:
        out = asdict(self)
        return {**out, "layers": list(out["layers"]), "layer_weights": list(out["layer_weights"])}


def _block_order(i: int | str) -> tuple[int, int]:
    return (-1, 0) if i == EMBEDDING else (0, int(i))


@dataclass(frozen=True)
class Readings:
    """Several aggregations of the same answers, read together (one per axis of an axis set whose axes read
    different blocks or poolings). Their layers must be absolute (block indices from 0, or EMBEDDING).

    What is read is the grid `layers` x `decays` (the union over the aggregations, embedding first, then
    blocks in order; decays in increasing order): [..., n_decays, n_layers, hidden]; `combine` turns it
    into [..., n_aggregations, hidden], one vector per aggregation. `names` (optional) labels them."""

    aggregations: tuple[Aggregation, ...]
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "aggregations", tuple(self.aggregations))
        if not self.aggregations:
            raise ValueError("Readings needs at least one aggregation")
        for agg in self.aggregations:
            if any(i != EMBEDDING and int(i) < 0 for i in agg.layers):
                raise ValueError(f"Readings take absolute layers (from block 0), got {list(agg.layers)}")
        if self.names is not None:
            object.__setattr__(self, "names", tuple(self.names))
            if len(self.names) != len(self.aggregations):
                raise ValueError(f"{len(self.names)} names for {len(self.aggregations)} aggregations")

    @classmethod
    def grid(cls, layers, decays) -> Readings:
        """Every single-block reading of `layers` x `decays`: what re-reading answers once at every block
        with several poolings gives, so that any reading can be chosen later without another pass."""
        return cls(tuple(Aggregation((i,), (1.0,), float(d)) for d in decays for i in layers))

    @property
    def layers(self) -> list[int | str]:
        return sorted({i for a in self.aggregations for i in a.layers}, key=_block_order)

    @property
    def decays(self) -> tuple[float, ...]:
        return tuple(sorted({float(a.decay) for a in self.aggregations}))

    def absolute_layers(self, n_layers: int) -> list[int | str]:
        layers = self.layers
        if any(i != EMBEDDING and i >= n_layers for i in layers):
            raise ValueError(f"layers {layers} do not exist in a model with {n_layers} blocks")
        return layers

    def __len__(self) -> int:
        return len(self.aggregations)

    def covers(self, aggregation: Aggregation) -> bool:
        """Whether `aggregation` (absolute layers) can be read from this grid."""
        return float(aggregation.decay) in self.decays and all(i in self.layers for i in aggregation.layers)

    def read(self, grid: np.ndarray, aggregation: Aggregation) -> np.ndarray:
        """[..., n_decays, n_layers, hidden] grid of these readings -> [..., hidden] of `aggregation`, which
        must be covered (`covers`)."""
        if not self.covers(aggregation):
            raise ValueError(f"{aggregation} is not covered by layers {self.layers}, decays {self.decays}")
        layers = self.layers
        per_layer = grid[..., self.decays.index(float(aggregation.decay)), :, :]
        return aggregation.combine(per_layer[..., [layers.index(i) for i in aggregation.layers], :])

    def combine(self, grid: np.ndarray) -> np.ndarray:
        """[..., n_decays, n_layers, hidden] -> [..., n_aggregations, hidden]."""
        return np.stack([self.read(grid, a) for a in self.aggregations], axis=-2)

    def subgrid(self, grid: np.ndarray, other: Readings) -> np.ndarray:
        """The part of this grid that `other` (covered by it) reads: [..., other's decays, layers, hidden]."""
        layers, decays = self.layers, self.decays
        missing = [i for i in other.layers if i not in layers] + [d for d in other.decays if d not in decays]
        if missing:
            raise ValueError(f"{missing} were not read (layers {layers}, decays {decays})")
        out = grid[..., [decays.index(d) for d in other.decays], :, :]
        return out[..., [layers.index(i) for i in other.layers], :]

    def to_dict(self) -> dict:
        return {
            "readings": [a.to_dict() for a in self.aggregations],
            **({"names": list(self.names)} if self.names is not None else {}),
        }


Reading = Aggregation | Readings
"""What `run_stage`, `reread` and the axes read: one aggregation ([n, n_layers, hidden] per-layer
aggregates) or several ([n, n_decays, n_layers, hidden] grids)."""


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
    layers: Sequence[int | str],
    decays: Sequence[float] = (0.9,),
    *,
    chunk_size: int | None = None,
    padding: Literal["left", "right"] = "left",
) -> np.ndarray:
    """Per-layer aggregates, float32 array [n_seqs, n_decays, n_layers, hidden].

    `layers` are absolute block indices, or EMBEDDING for the embedding output. With `chunk_size`, the
    forward pass runs over the sequence in chunks with a KV cache, so activation memory stays bounded for
    long responses."""
    dev = handle.device
    ids, attn = pad_batch([s.ids for s in seqs], handle.tokenizer.pad_token_id, padding, dev)
    meas = pad_batch([s.measure for s in seqs], 0, padding)[0].bool()  # padding is never measured
    weights = torch.stack([token_weights(meas, d) for d in decays]).to(dev)  # [K, B, T]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    out = torch.zeros(len(decays), len(seqs), len(layers), handle.hidden_size, device=dev)
    blocks = [i for i in layers if i != EMBEDDING]
    deepest = max(blocks) if blocks else EMBEDDING  # the pass stops once this one is read
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
