"""Temperature / nucleus sampling whose random draws depend on (row key, step, token) only.

Each row carries its own integer key, and the noise for a candidate token is a hash of (key, step, token id).
A response therefore does not depend on which other prompts share its batch, on the batch size, or on the
order of the batch: the same prompt, settings and key give the same answer, batched or alone (up to
floating-point differences in the logits themselves). Sampling is exact Gumbel-max over the nucleus:
argmax(logit / T + Gumbel noise) restricted to the smallest set of most likely tokens whose probability
reaches top_p, which draws from the renormalised nucleus distribution.
"""

from __future__ import annotations

import zlib

import torch

_MASK32 = 0xFFFFFFFF
# Tokens examined before falling back to a wider search; the nucleus of a chat model at T = 0.7 is almost
# always far smaller. Base models' flatter distributions may need the second tier before a full sort.
TOP_CANDIDATES = 64
WIDE_CANDIDATES = 1024


def row_key(seed: int, item_id: str) -> int:
    """The sampling key of one answer: depends on the seed and the item, not on its batch."""
    return zlib.crc32(f"{seed}:{item_id}".encode())


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32), computed in int64 so products wrap correctly."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniform_noise(keys: torch.Tensor, step: int, tokens: torch.Tensor) -> torch.Tensor:
    """U(0, 1) draws for [rows, candidates] token ids, a pure function of (row key, step, token id)."""
    x = _mix32(keys[:, None] * 0x9E3779B1 + step * 0x85EBCA77)
    x = _mix32(x ^ _mix32(tokens + 0x27D4EB2F))
    return (x.double() + 0.5) / 2.0**32


def _gumbel_pick(scores: torch.Tensor, tokens: torch.Tensor, keys: torch.Tensor, step: int) -> torch.Tensor:
    gumbel = -torch.log(-torch.log(uniform_noise(keys, step, tokens)))
    picked = (scores.double() + gumbel).argmax(-1, keepdim=True)
    return tokens.gather(-1, picked).squeeze(-1)


def sample(
    logits: torch.Tensor,
    keys: torch.Tensor,
    step: int,
    temperature: float,
    top_p: float,
    candidates: int = TOP_CANDIDATES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row from its `candidates` most likely tokens, and a flag per row whose nucleus reaches
    past them (those rows need :func:`sample_full`)."""
    scores = logits.float() / temperature
    k = min(candidates, scores.shape[-1])
    top, idx = scores.topk(k, dim=-1)
    log_norm = torch.logsumexp(scores, dim=-1, keepdim=True)
    probs = (top - log_norm).exp()
    before = probs.cumsum(-1) - probs  # probability mass of the more likely tokens
    nucleus = before < top_p
    overflow = nucleus[:, -1] & (before[:, -1] + probs[:, -1] < top_p)  # nucleus may reach past top-k
    picked = _gumbel_pick(top.masked_fill(~nucleus, float("-inf")), idx, keys, step)
    return picked, overflow


def sample_full(
    logits: torch.Tensor, keys: torch.Tensor, step: int, temperature: float, top_p: float
) -> torch.Tensor:
    """The same draw for rows whose nucleus exceeds the top-k: over the top WIDE_CANDIDATES tokens, and over
    the whole sorted vocabulary for rows whose nucleus is wider still (a full sort of a 262k vocabulary
    costs seconds per step on a CPU)."""
    picked, overflow = sample(logits, keys, step, temperature, top_p, WIDE_CANDIDATES)
    if bool(overflow.any()):
        picked[overflow] = _sample_sorted(logits[overflow], keys[overflow], step, temperature, top_p)
    return picked


def _sample_sorted(
    logits: torch.Tensor, keys: torch.Tensor, step: int, temperature: float, top_p: float
) -> torch.Tensor:
    scores = logits.float() / temperature
    top, idx = scores.sort(dim=-1, descending=True)
    probs = torch.softmax(top, dim=-1)
    nucleus = probs.cumsum(-1) - probs < top_p
    return _gumbel_pick(top.masked_fill(~nucleus, float("-inf")), idx, keys, step)
