"""Decoder-block hooks and batch padding (engine/hooks.py)."""

from __future__ import annotations

import pytest
import torch

from styleprobe.engine.hooks import block_hooks, pad_batch, untuple
from styleprobe.engine.models import decoder_layers


def _block_outputs(handle, ids: torch.Tensor) -> list[torch.Tensor]:
    """Every decoder block's output hidden states for `ids`, read with plain forward hooks."""
    seen: list[torch.Tensor] = []
    hooks = [
        b.register_forward_hook(lambda m, i, o: seen.append(untuple(o).clone()))
        for b in decoder_layers(handle.model)
    ]
    try:
        with torch.inference_mode():
            handle.model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _hook_count(handle) -> int:
    """Forward hooks on the decoder blocks (transformers may keep some of its own there, so tests compare
    counts before and after rather than with 0)."""
    return sum(len(b._forward_hooks) for b in decoder_layers(handle.model))


def test_untuple_takes_the_hidden_states_from_a_tuple_or_a_tensor():
    h = torch.randn(2, 3, 4)
    assert untuple(h) is h
    assert untuple((h, "cache", None)) is h


def test_an_added_vector_changes_that_block_and_only_later_ones(tiny):
    handle = tiny("llama")
    ids = torch.tensor([handle.tokenizer("What is rain?")["input_ids"]])
    before = _block_outputs(handle, ids)
    hooks = _hook_count(handle)
    v = torch.ones(handle.hidden_size)
    with block_hooks(handle, {2: lambda hidden: hidden + v}):
        after = _block_outputs(handle, ids)
    for i in range(2):
        assert torch.equal(before[i], after[i])  # blocks before the hooked one see nothing
    assert torch.allclose(after[2], before[2] + v)  # the hooked block's output, shifted by exactly v
    assert not torch.allclose(after[3], before[3])  # and what follows reads the shifted stream
    assert _hook_count(handle) == hooks
    assert all(torch.equal(a, b) for a, b in zip(before, _block_outputs(handle, ids), strict=True))


def test_read_only_functions_see_the_tensor_and_leave_the_output_alone(tiny):
    handle = tiny("qwen2")
    ids = torch.tensor([handle.tokenizer("Hello there")["input_ids"]])
    before = _block_outputs(handle, ids)
    read: dict[int, list[torch.Tensor]] = {1: [], 4: []}
    pairs = [(1, read[1].append), (4, read[4].append), (4, lambda hidden: None)]  # two fns on block 4
    with block_hooks(handle, pairs):
        after = _block_outputs(handle, ids)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert [len(r) for r in read.values()] == [1, 1]
    assert torch.equal(read[1][0], before[1]) and torch.equal(read[4][0], before[4])


def test_hooks_are_removed_after_an_exception(tiny):
    handle = tiny("llama")
    ids = torch.tensor([handle.tokenizer("Hi")["input_ids"]])

    hooks = _hook_count(handle)

    def boom(hidden: torch.Tensor) -> None:
        raise KeyError("inside the forward pass")

    with pytest.raises(KeyError), block_hooks(handle, {0: boom, 5: lambda hidden: hidden * 0}):
        assert _hook_count(handle) == hooks + 2
        handle.model(input_ids=ids)
    assert _hook_count(handle) == hooks
    with pytest.raises(RuntimeError), block_hooks(handle, {3: lambda hidden: hidden}):
        raise RuntimeError("in the with block")
    assert _hook_count(handle) == hooks


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_round_trips(side):
    seqs = [[5, 6, 7], [8], [], [1, 2, 3, 4]]
    ids, mask = pad_batch(seqs, 0, side)
    assert ids.shape == mask.shape == (4, 4) and ids.dtype == mask.dtype == torch.long
    assert [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)] == seqs
    assert mask.sum(1).tolist() == [len(s) for s in seqs]
    assert (ids[mask == 0] == 0).all()
    real_edge = -1 if side == "left" else 0  # every non-empty sequence touches this edge
    assert mask[:, real_edge].tolist() == [1, 1, 0, 1]
    with pytest.raises(ValueError, match="side"):
        pad_batch(seqs, 0, "middle")  # type: ignore[arg-type]


def test_left_and_right_padding_give_the_same_last_token_states(tiny):
    """Left padding for decoding and right padding for scoring read the same states at real tokens."""
    handle = tiny("qwen2")
    seqs = [handle.tokenizer(t)["input_ids"] for t in ("What is rain?", "Hi")]
    pad = handle.tokenizer.pad_token_id
    with torch.inference_mode():
        lefts, rights = (pad_batch(seqs, pad, side) for side in ("left", "right"))
        out = {}
        for side, (ids, mask) in (("left", lefts), ("right", rights)):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out[side] = handle.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    for row, s in enumerate(seqs):
        left = out["left"][row, -1]
        right = out["right"][row, len(s) - 1]
        assert torch.allclose(left, right, atol=1e-4)
