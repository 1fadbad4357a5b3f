"""Thinking on vs off (Qwen3's `enable_thinking`): what is measured, and what would be had the think
block been read too.

With thinking on, the model first writes `<think> ... </think>` and then its visible answer. The pipeline
measures the visible answer only (extraction.measure_mask), read with the thinking text in context; an
answer that never closes its think block, or closes it and then says nothing, has no visible answer and is
counted here, never measured inside the reasoning. `read_with_thinking` re-reads the same answers with
every generated token measured, think block included, as a counterfactual.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from styleprobe import stats
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import TokenSequence, extract
from styleprobe.engine.generation import tokenize_prompts
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.pipeline import REFORWARD_CHUNK, StageResult
from styleprobe.protocol.profiles import Profile

DEFAULT_THINKING_TOKENS = 4096


def thinking_profile(profile: Profile, thinking_tokens: int) -> Profile:
    """The profile with the baseline budget raised for thinking runs (named apart, so its runs are too)."""
    if thinking_tokens < 1:
        raise ValueError(f"thinking_tokens must be positive, got {thinking_tokens}")
    return replace(
        profile, name=f"{profile.name}+thinking_tokens={thinking_tokens}", baseline_tokens=thinking_tokens
    )


def answer_status(handle: ModelHandle, records: pd.DataFrame) -> pd.Series:
    """Per answer of a thinking run: `visible` (measured after `</think>`), `unclosed` (the think block
    never closed: the budget or an end of turn came first), `empty after think` (closed, then nothing),
    `no think block` (measured whole) or `empty` (nothing generated)."""
    open_id, close_id = handle.think_ids
    if close_id is None:
        raise ValueError(f"{handle.model_id} has no `</think>` token, so it has no thinking mode")

    def status(row) -> str:
        closed = close_id in row["response_ids"]
        if row["n_measured"] > 0:
            return "visible" if closed else "no think block"
        if closed:
            return "empty after think"
        return "unclosed" if open_id in row["response_ids"] else "empty"

    return records.apply(status, axis=1).rename("status")


def read_with_thinking(
    handle: ModelHandle, result: StageResult, *, batch_size: int = 8, progress: bool = True
) -> StageResult:
    """The same answers (prompt with thinking on + generated tokens) re-read teacher-forced with every
    generated token measured, the think block included. `n_measured` becomes the answer's length."""
    rec = result.records
    prompts = [
        build_prompt(handle, q, s, thinking=True) for q, s in zip(rec["question"], rec["system"], strict=True)
    ]
    prompt_ids = tokenize_prompts(handle, prompts)
    seqs = [
        TokenSequence(p + list(r), [False] * len(p) + [True] * len(r))
        for p, r in zip(prompt_ids, rec["response_ids"], strict=True)
    ]
    layers = result.aggregation.absolute_layers(handle.n_layers)
    per_layer = np.zeros((len(seqs), len(layers), handle.hidden_size), dtype=np.float32)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].ids))
    for start in tqdm(range(0, len(order), batch_size), desc="reading with thinking", disable=not progress):
        idx = order[start : start + batch_size]
        per_layer[idx] = extract(
            handle, [seqs[i] for i in idx], layers, (result.aggregation.decay,), chunk_size=REFORWARD_CHUNK
        )[:, 0]
    records = rec.assign(n_measured=rec["n_tokens"])
    return StageResult(records, per_layer, result.aggregation)


def paired_shift(
    first: pd.DataFrame, second: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per axis: mean over questions of `first - second` (two questions x axes tables, paired by index;
    questions missing from either are left out) with a paired percentile bootstrap 95 % CI."""
    common = first.index.intersection(second.index)
    rows = {}
    for name in first.columns:
        diff = (first.loc[common, name] - second.loc[common, name]).dropna().to_numpy()
        lo, hi = (
            stats.bootstrap_ci(np.mean, diff, n_boot=n_boot, seed=seed) if len(diff) > 1 else (np.nan,) * 2
        )
        rows[name] = {
            "shift": float(diff.mean()) if len(diff) else np.nan,
            "ci_low": lo,
            "ci_high": hi,
            "n": len(diff),
        }
    return pd.DataFrame(rows).T.astype({"shift": float, "ci_low": float, "ci_high": float, "n": int})
