"""Thinking on vs off (Qwen3's `enable_thinking`): what is measured, and what would be had the think
block been read too.

With thinking on, the model first writes `<think> ... </think>` and then its visible answer. The pipeline
measures the visible answer only (extraction.measure_mask), read with the thinking text in context; an
answer that never closes its think block, or closes it and then says nothing, has no visible answer and is
counted here, never measured inside the reasoning. `read_with_thinking` re-reads the same answers with
every generated token measured, think block included, as a counterfactual.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from styleprobe import stats
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import Aggregation, Reading, Readings, TokenSequence, extract
from styleprobe.engine.generation import tokenize_prompts
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.pipeline import REFORWARD_CHUNK, StageResult
from styleprobe.protocol.fingerprint import baseline, project_results
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.runs import Session
from styleprobe.protocol.validity import mark
from styleprobe.result import PaperTable, Result, axis_list

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

DEFAULT_THINKING_TOKENS = 4096
STATUSES = ("visible", "no think block", "unclosed", "empty after think", "empty")  # of `answer_status`


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
    reading = result.aggregation
    several = isinstance(reading, Readings)
    layers = reading.absolute_layers(handle.n_layers)
    decays = reading.decays if several else (reading.decay,)
    grid = np.zeros((len(seqs), len(decays), len(layers), handle.hidden_size), dtype=np.float32)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].ids))
    for start in tqdm(range(0, len(order), batch_size), desc="reading with thinking", disable=not progress):
        idx = order[start : start + batch_size]
        grid[idx] = extract(handle, [seqs[i] for i in idx], layers, decays, chunk_size=REFORWARD_CHUNK)
    records = rec.assign(n_measured=rec["n_tokens"])
    return StageResult(records, grid if several else grid[:, 0], reading)


def paired_shift(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Per axis: mean over questions of `first - second` (two questions x axes tables, paired by index;
    questions missing from either are left out) with its skewness-corrected 95 % interval
    (`stats.skewed_mean_ci`; NaN with fewer than 2 questions or differences without spread)."""
    common = first.index.intersection(second.index)
    rows = {}
    for name in first.columns:
        diff = (first.loc[common, name] - second.loc[common, name]).dropna().to_numpy()
        lo, hi = stats.skewed_mean_ci(diff)
        rows[name] = {
            "shift": float(diff.mean()) if len(diff) else np.nan,
            "ci_low": lo,
            "ci_high": hi,
            "n": len(diff),
        }
    return pd.DataFrame(rows).T.astype({"shift": float, "ci_low": float, "ci_high": float, "n": int})


@dataclass
class ThinkingAnswers:
    """The baseline questions answered with thinking off and with thinking on (by seed)."""

    profile: Profile  # of the answers with thinking off
    thinking_tokens: int  # the budget with thinking on: think block and visible answer together
    off: dict[int, StageResult]
    on: dict[int, StageResult]

    @property
    def on_records(self) -> pd.DataFrame:
        return pd.concat([r.records for r in self.on.values()], ignore_index=True)


def answer_both_ways(
    ws: Session,
    *,
    seeds: tuple[int, ...] | None = None,
    thinking_tokens: int = DEFAULT_THINKING_TOKENS,
    batch_size: int | None = None,
    aggregation: Reading = Aggregation(),
    progress: bool = True,
) -> ThinkingAnswers:
    """The model's baseline answers with thinking off (the profile's budget) and on (`thinking_tokens`),
    read with `aggregation` (the axes' `reading()`); `seeds` None: the profile's. ValueError for a model
    without a thinking switch."""
    handle = ws.model
    if not handle.thinking or handle.think_ids[1] is None:
        raise ValueError(f"{handle.model_id} has no thinking switch (enable_thinking in its chat template)")
    seeds = tuple(seeds if seeds is not None else ws.profile.seeds)
    off = baseline(
        ws, seeds=seeds, thinking=False, batch_size=batch_size, aggregation=aggregation, progress=progress
    )
    on = baseline(
        ws,
        seeds=seeds,
        aggregation=aggregation,
        thinking=True,
        profile=thinking_profile(ws.profile, thinking_tokens),
        batch_size=batch_size,
        progress=progress,
    )
    return ThinkingAnswers(ws.profile, thinking_tokens, off, on)


@dataclass
class ThinkingResult(Result):
    """Notebook 06: the style shift of the visible answer after thinking, and with the think block read."""

    name: ClassVar[str] = "thinking_mode"
    notebook: ClassVar[str] = "06_thinking_mode"
    needs: ClassVar[tuple[str, ...]] = ("calibration",)

    profile: str
    seeds: list[int]
    thinking_tokens: int
    baseline_tokens: int
    n_answers: int  # with thinking on
    n_without_visible_answer: int
    status_counts: pd.Series  # answers with thinking on by `answer_status`
    median_think_tokens: float
    shift_visible: pd.DataFrame  # per axis: visible answer after thinking - answer without thinking
    shift_included: pd.DataFrame  # the same with the think tokens measured too
    think_tokens_effect: pd.DataFrame  # included - visible
    # per axis: held-out validation status of the axis (`validity.heldout_status`, from the axes file)
    validation: pd.Series

    def validated(self) -> list[str]:
        """The axes that passed held-out validation: the only ones conclusions are drawn from."""
        return [n for n in self.shift_visible.index if self.validation.get(n) == "valid"]

    def paper(self) -> dict:
        valid = self.validated()
        visible = self.shift_visible.loc[valid]
        moved = visible.index[(visible["ci_low"] > 0) | (visible["ci_high"] < 0)]
        others = [n for n in self.shift_visible.index if n not in valid]
        return {
            "profile": self.profile,
            "thinking_tokens": self.thinking_tokens,
            "n_answers": self.n_answers,
            "n_without_visible_answer": self.n_without_visible_answer,
            "median_think_tokens": self.median_think_tokens,
            "n_validated": len(valid),
            "n_shifted": len(moved),
            "shifted_axes": axis_list(moved),
            "n_not_interpreted": len(others),
            "not_interpreted": axis_list(others),
            "mean_abs_shift_visible": visible["shift"].abs().mean(),
            "mean_abs_shift_included": self.shift_included.loc[valid, "shift"].abs().mean(),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        others = {"included": self.shift_included, "think tokens' effect": self.think_tokens_effect}
        frame = self.shift_visible[["shift", "ci_low", "ci_high"]].join(
            pd.DataFrame({k: f["shift"] for k, f in others.items()})
        )
        valid = set(self.validated())
        frame = frame.rename(index={n: mark(n, n in valid) for n in frame.index})
        columns = {"shift": "visible", "ci_low": "low", "ci_high": "high"}
        return {"thinking_table": PaperTable(frame, columns=columns)}


def run(
    ws: Workspace,
    answers: ThinkingAnswers,
    *,
    read_batch_size: int = 8,
    progress: bool = True,
) -> ThinkingResult:
    """Project both modes' answers on the workspace's axes and compare them per question (seed-averaged):
    the visible answer after thinking, and the same answers re-read with the think block (counted only
    where there is a visible answer), each minus the answer without thinking; with each axis' held-out
    validation status as the axes file records it ("unknown" where it does not)."""
    handle, axes = ws.model, ws.axes()
    records = answers.on_records
    counts = answer_status(handle, records).value_counts().reindex(list(STATUSES), fill_value=0)
    included = {
        s: read_with_thinking(handle, r, batch_size=read_batch_size, progress=progress)
        for s, r in answers.on.items()
    }
    projections = {
        "off": project_results(axes, answers.off, handle.model_id),
        "visible": project_results(axes, answers.on, handle.model_id),
        "included": project_results(axes, included, handle.model_id),
    }
    hidden = projections["visible"][axes.names].isna().all(axis=1)
    projections["included"].loc[hidden, axes.names] = np.nan  # the same answers as the visible ones
    per_question = {k: p.groupby("q_index")[axes.names].mean() for k, p in projections.items()}
    return ThinkingResult(
        profile=answers.profile.name,
        seeds=list(answers.off),
        thinking_tokens=answers.thinking_tokens,
        baseline_tokens=answers.profile.baseline_tokens,
        n_answers=len(records),
        n_without_visible_answer=int((records["n_measured"] == 0).sum()),
        status_counts=counts,
        median_think_tokens=float((records["n_tokens"] - records["n_measured"]).median()),
        shift_visible=paired_shift(per_question["visible"], per_question["off"]),
        shift_included=paired_shift(per_question["included"], per_question["off"]),
        think_tokens_effect=paired_shift(per_question["included"], per_question["visible"]),
        validation=pd.Series(
            {n: axes.calibration.get(n, {}).get("validation", "unknown") for n in axes.names}
        ),
    )
