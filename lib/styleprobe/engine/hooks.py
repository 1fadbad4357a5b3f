"""Forward hooks on decoder blocks, and padding a batch of token sequences.

A decoder block returns its hidden states either as a tensor or as a tuple led by it (depending on the
architecture and the transformers version); `untuple` takes the tensor, and `block_hooks` hands only that
tensor to its functions, so no caller deals with the tuple.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Literal

import torch

from styleprobe.engine.models import ModelHandle, decoder_layers

BlockFn = Callable[[torch.Tensor], torch.Tensor | None]
"""Called with a block's output hidden states [batch, tokens, hidden]; a returned tensor replaces them."""
EMBEDDING = "embed"
"""The block index of the embedding output: the residual stream before any decoder block (the input of
block 0, after any embedding scaling the model applies). Aggregations, `extract` and `block_hooks` take it
wherever they take a block index."""


def untuple(output: torch.Tensor | tuple) -> torch.Tensor:
    """The hidden-state tensor of a decoder block's output (a tensor, or a tuple whose first item it is)."""
    return output[0] if isinstance(output, tuple) else output


def _pre_hook(fn: BlockFn) -> Callable:
    """A forward pre-hook on block 0 that hands `fn` the block's input hidden states (positional or the
    `hidden_states` keyword, depending on the architecture)."""

    def hook(_module, args, kwargs):
        positional = bool(args)
        hidden = args[0] if positional else kwargs["hidden_states"]
        new = fn(hidden)
        if new is None:
            return None
        if positional:
            return (new, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": new}

    return hook


def _forward_hook(fn: BlockFn) -> Callable:
    def hook(_module, _inputs, output):
        new = fn(untuple(output))
        if new is None:
            return None  # read only: the output stays as it is
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return hook


@contextlib.contextmanager
def block_hooks(
    handle: ModelHandle, fns: Mapping[int | str, BlockFn] | Iterable[tuple[int | str, BlockFn]]
) -> Iterator[None]:
    """Inside the block, every forward pass calls `fn(hidden)` with the output hidden states of decoder
    block `i` for each `i: fn` (a mapping, or (index, fn) pairs when one block takes several functions); a
    function that returns a tensor replaces the block's output with it. Index EMBEDDING hands `fn` the
    embedding output (the input of block 0) instead. An exception a function raises propagates out of the
    forward pass. The hooks are removed on exit, also when the block raises."""
    blocks = decoder_layers(handle.model)
    pairs = fns.items() if isinstance(fns, Mapping) else fns
    handles = []
    try:
        for index, fn in pairs:
            if index == EMBEDDING:
                handles.append(blocks[0].register_forward_pre_hook(_pre_hook(fn), with_kwargs=True))
            else:
                handles.append(blocks[index].register_forward_hook(_forward_hook(fn)))
        yield
    finally:
        for h in handles:
            h.remove()


def pad_batch(
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    side: Literal["left", "right"],
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad `seqs` to the longest with `pad_id` on `side`: ([B, T] ids, [B, T] attention mask, 1 at the
    sequences' own tokens), both long. Left padding lines up the last tokens (for decoding), right padding
    the first ones."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if len(s):
            span = slice(width - len(s), width) if side == "left" else slice(0, len(s))
            ids[row, span] = torch.tensor(s)
            mask[row, span] = 1
    return ids.to(device), mask.to(device)
