"""Steering with the calibrated axes: add alpha * scale * axis to the residual stream while generating, and
measure what it does to the text (projection shift read back without steering, repetition, perplexity)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from styleprobe.engine.chat import build_prompt
from styleprobe.engine.generation import tokenize_prompts
from styleprobe.engine.models import ModelHandle, decoder_layers
from styleprobe.engine.pipeline import Item
from styleprobe.protocol.axes import AxisSet

DEGRADED_PERPLEXITY = 2.0
"""An answer counts as degraded when its perplexity under the unsteered model exceeds this multiple of the
unsteered answers' median perplexity, or ..."""
DEGRADED_REPETITION = 0.5
"""... when more than this share of its word 3-grams repeat an earlier one."""


@contextlib.contextmanager
def steer(handle: ModelHandle, vector: np.ndarray, layers: Sequence[int], alpha: float) -> Iterator[None]:
    """Inside the block, every forward pass adds `alpha * vector` to the output of each decoder block in
    `layers` (absolute indices). The hooks are removed on exit, also when the block raises."""
    v = torch.as_tensor(np.asarray(vector), dtype=handle.model.dtype, device=handle.device) * alpha
    blocks = decoder_layers(handle.model)

    def hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (output[0] + v, *output[1:])
        return output + v

    handles = [blocks[i].register_forward_hook(hook) for i in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def axis_vector(axes: AxisSet, axis: str) -> np.ndarray:
    """The steering direction of one axis in raw units: unit axis times its normalisation scale, so alpha = 1
    moves a block's output by one calibration IQR of projection."""
    i = axes.index(axis)
    return axes.vectors[i] * np.float32(axes.scales[i])


_WORD = re.compile(r"\w+")


def repetition(text: str) -> float:
    """Share of word 3-grams that repeat an earlier 3-gram of the same text (0 with fewer than 2)."""
    words = _WORD.findall(text.lower())
    grams = list(zip(words, words[1:], words[2:], strict=False))
    return 0.0 if len(grams) < 2 else 1.0 - len(set(grams)) / len(grams)


@torch.inference_mode()
def perplexity(
    handle: ModelHandle, items: list[Item], response_ids: Sequence[Sequence[int]], batch_size: int = 8
) -> np.ndarray:
    """Perplexity of each answer under the (unsteered) model, in its conversation context; NaN when empty."""
    prompts = tokenize_prompts(
        handle, [build_prompt(handle, it.question, it.system, it.history) for it in items]
    )
    out = np.full(len(items), np.nan)
    pad = handle.tokenizer.pad_token_id
    for start in range(0, len(items), batch_size):
        rows = range(start, min(start + batch_size, len(items)))
        seqs = [list(prompts[i]) + list(response_ids[i]) for i in rows]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
        logits = handle.model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for r, i in enumerate(rows):
            n_prompt, n = len(prompts[i]), len(response_ids[i])
            if n == 0:
                continue
            targets = torch.tensor(response_ids[i], device=logp.device)
            nll = -logp[r, n_prompt - 1 : n_prompt - 1 + n].gather(-1, targets[:, None]).mean()
            out[i] = float(torch.exp(nll))
    return out


def degradation(frame: pd.DataFrame) -> pd.Series:
    """Per row (an answer with `perplexity`, `repetition` and `alpha`): degraded or not, against the median
    perplexity of the unsteered (alpha = 0) answers."""
    reference = frame.loc[frame["alpha"] == 0, "perplexity"].median()
    return (frame["perplexity"] > DEGRADED_PERPLEXITY * reference) | (
        frame["repetition"] > DEGRADED_REPETITION
    )


def steerability(frame: pd.DataFrame) -> pd.DataFrame:
    """Per axis, from answers with columns axis, alpha, shift (projection minus the unsteered answer's, read
    without steering) and degraded: the least-squares slope of shift on alpha over the alphas whose answers
    are mostly not degraded (the usable range), that range, and the share of degraded answers."""
    rows = []
    for axis, sub in frame.groupby("axis", sort=False):
        usable_alphas = sub.groupby("alpha")["degraded"].mean().loc[lambda s: s <= 0.5].index
        use = sub[sub["alpha"].isin(usable_alphas) & sub["shift"].notna()]
        slope = np.polyfit(use["alpha"], use["shift"], 1)[0] if use["alpha"].nunique() > 1 else np.nan
        rows.append(
            {
                "axis": axis,
                "steerability": float(slope),
                "usable_min_alpha": float(min(usable_alphas)) if len(usable_alphas) else np.nan,
                "usable_max_alpha": float(max(usable_alphas)) if len(usable_alphas) else np.nan,
                "degraded_share": float(sub["degraded"].mean()),
            }
        )
    return pd.DataFrame(rows).set_index("axis")
