"""Steering with the calibrated axes: add alpha * scale * axis to the residual stream while generating, and
measure what it does to the text (projection shift read back without steering, repetition, perplexity).

Every axis is steered and shown; only the axes that pass validation (`styleprobe.protocol.validity`: held-out
accuracy of notebook 01, not dead in notebook 08) are interpreted, the others are marked. The token budget
and the share of answers cut off at it are part of the result."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import torch

from styleprobe import stats
from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.analyses.textmetrics import axis_metrics, metrics_frame, protocol_lexicon
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.generation import SamplingConfig, tokenize_prompts
from styleprobe.engine.hooks import block_hooks, pad_batch
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.pipeline import Item, StageResult, read_answers, run_stage
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.validity import mark, valid_axes
from styleprobe.result import PaperTable, Result, axis_label, axis_list

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

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
    with block_hooks(handle, [(i, lambda hidden: hidden + v) for i in layers]):
        yield


def axis_vector(axes: AxisSet, axis: str) -> np.ndarray:
    """The steering vector of one axis in raw units (`AxisSet.steering_vector`): a unit direction times its
    normalisation scale, so alpha = 1 moves a block's output by one unit of the normalised projection. The
    direction is the axis itself for a difference of means, and the plain difference of means of the same
    states for a whitened axis (`estimators.WHITENED`), whose direction need not move the residual stream
    towards a pole."""
    return axes.steering_vector(axis)


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
        ids, mask = pad_batch(seqs, pad, "right", handle.device)
        logits = handle.model(input_ids=ids, attention_mask=mask).logits
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


def sweep(
    ws: Workspace,
    alphas: Sequence[float],
    layers: Sequence[int] | None,
    max_new_tokens: int,
    *,
    batch_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Answer the profile's first `n_benchmark` baseline questions steered along each axis by every alpha
    (0, unsteered, must be among them) at the blocks `layers` (None: each axis at its own,
    `AxisSet.steering_blocks`), and measure each answer: `value` (its
    projection on the steered axis, read back without steering), `shift` (minus the unsteered answer's),
    the axis's text metric and its `text_shift`, `perplexity` under the unsteered model, `repetition`,
    `degraded` and `finished` (False: cut off at `max_new_tokens`). One row per (axis, alpha, question)."""
    if 0.0 not in alphas:
        raise ValueError("alpha 0 (no steering) is the reference: add it to the alphas")
    handle, axes = ws.model, ws.axes()
    questions = ws.protocol.questions.baseline[: ws.profile.n_benchmark]
    # One stage for every (axis, alpha): each answer carries its own steering vector, so all share batches.
    # A question draws the same random numbers under every alpha, so shifts are not sampling noise alone.
    runs = [(None, 0.0)] + [(name, a) for name in axes.names for a in alphas if a != 0]
    own = {name: list(layers) if layers is not None else axes.steering_blocks(name) for name in axes.names}
    blocks = sorted({b for chosen in own.values() for b in chosen})
    shared = all(chosen == blocks for chosen in own.values())  # one vector for every block, as before
    items, offsets = [], []
    for name, alpha in runs:
        vector = np.zeros(handle.hidden_size, np.float32) if name is None else axis_vector(axes, name)
        at = np.stack([vector if name is None or b in own[name] else 0 * vector for b in blocks])
        for i, question in enumerate(questions):
            tag = "unsteered" if name is None else f"{name}/alpha{alpha:+g}"
            meta = {"steered": name, "alpha": alpha, "q_index": i}
            items.append(Item(f"{tag}/{i:02d}", question, meta=meta, stream=f"steer/{i:02d}"))
            offsets.append(np.float32(alpha) * (vector if shared else at))
    stage = ws.runs.steering(ws.profile.name, max_new_tokens, blocks)
    res = run_stage(
        handle,
        stage,
        items,
        SamplingConfig(max_new_tokens),
        batch_size=batch_size,
        steer=(blocks, np.stack(offsets)),
        desc="steering",
        progress=progress,
    )
    ids = list(res.records["response_ids"])
    reading = axes.reading()
    per_layer = read_answers(handle, items, ids, reading, stage / "read", progress=progress)
    values = axes.project(axes.states(StageResult(res.records, per_layer, reading)), clip=False)
    answered = res.records[["steered", "alpha", "q_index", "response", "n_tokens", "finished"]].assign(
        perplexity=perplexity(handle, items, ids)
    )
    unsteered = answered["steered"].isna().to_numpy()
    frames = []
    for name in axes.names:  # per axis: the unsteered answers, then its steered ones, valued on that axis
        rows = unsteered | (answered["steered"] == name).to_numpy()
        frames.append(answered[rows].assign(axis=name, value=values[rows, axes.index(name)]))
    answers = pd.concat(frames, ignore_index=True).drop(columns="steered")
    answers["repetition"] = answers["response"].map(repetition)
    text = metrics_frame(list(answers["response"]), protocol_lexicon(ws.protocol))
    metric_of = axis_metrics(ws.protocol)  # an axis without a text metric gets NaN
    answers["metric"] = [
        text.at[k, metric_of[axis]] if axis in metric_of else np.nan for k, axis in enumerate(answers["axis"])
    ]
    unsteered = answers[answers["alpha"] == 0].set_index(["axis", "q_index"])  # the same answers, per axis
    same = pd.MultiIndex.from_frame(answers[["axis", "q_index"]])
    answers["shift"] = answers["value"].to_numpy() - unsteered["value"].reindex(same).to_numpy()
    answers["text_shift"] = answers["metric"].to_numpy() - unsteered["metric"].reindex(same).to_numpy()
    answers["degraded"] = degradation(answers)
    return answers


def severity_pairs(ws: Workspace, steerability_table: pd.DataFrame) -> pd.DataFrame:
    """(severity, steerability, model) per axis of every model under the workspace's root with dead zones
    and steering results; this model's steering is `steerability_table`."""
    steered = {slug: r.steerability for slug, r in ws.every_model(SteeringResult).items()}
    steered[ws.slug] = steerability_table
    pairs = [
        pd.concat([zones.table["severity"], steered[slug]["steerability"]], axis=1, join="inner")
        .dropna()
        .assign(model=slug)
        for slug, zones in ws.every_model(DeadZonesResult).items()
        if slug in steered
    ]
    return pd.concat(pairs) if pairs else pd.DataFrame(columns=["severity", "steerability", "model"])


@dataclass
class SteeringResult(Result):
    """Notebook 11: steerability of each axis, and whether dead zones predict it."""

    name: ClassVar[str] = "steering"
    notebook: ClassVar[str] = "11_steering"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "dead_zones")
    paper_digits: ClassVar[int] = 3

    profile: str
    alphas: list[float]
    layers: list[int]  # the steered blocks
    max_new_tokens: int  # the token budget of every answer
    n_questions: int  # per (axis, alpha)
    validated: list[str]  # the axes that passed validation: the only ones interpreted
    summary: pd.DataFrame  # per (axis, alpha): mean shift, text_shift, perplexity, repetition, degraded, cut
    steerability: pd.DataFrame  # per axis: `steerability`
    severity_vs_steerability: dict  # Spearman rho, p, n_pairs over every model-axis pair (`severity_pairs`)

    def paper(self) -> dict:
        table = self.steerability
        validated = table.loc[[n for n in table.index if n in self.validated], "steerability"].dropna()
        best = validated.idxmax() if len(validated) else None
        # a NaN comes back from JSON as None
        relation = {k: np.nan if v is None else v for k, v in self.severity_vs_steerability.items()}
        return {
            "n_questions": self.n_questions,
            "alphas": ", ".join(f"{a:g}" for a in self.alphas),
            "layers": "+".join(map(str, self.layers)),
            "max_new_tokens": self.max_new_tokens,
            # every (axis, alpha) has n_questions answers, so the mean over rows is the share of answers
            "degraded_share": self.summary["degraded"].mean(),
            "cut_percent": round(100 * self.summary["cut"].mean()),
            "n_validated": len(self.validated),
            "n_not_interpreted": len(table) - len(self.validated),
            "not_interpreted": axis_list(n for n in table.index if n not in self.validated),
            "best_axis": axis_label(best) if best else "none",
            "best_steerability": validated.loc[best] if best else np.nan,
            "mean_steerability": validated.mean() if len(validated) else np.nan,
            "rho": relation["rho"],
            "p": f"{relation['p']:.2g}" if np.isfinite(relation["p"]) else np.nan,
            "n_pairs": relation["n_pairs"],
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        columns = {
            "steerability": "slope",
            "usable_min_alpha": "usable from",
            "usable_max_alpha": "to",
            "degraded_share": "degraded",
        }
        valid = set(self.validated)
        table = self.steerability.rename(index={n: mark(n, n in valid) for n in self.steerability.index})
        return {"steering_table": PaperTable(table, digits=3, columns=columns)}


def run(
    ws: Workspace,
    alphas: Sequence[float],
    *,
    layers: Sequence[int] | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> SteeringResult:
    """`sweep` the alphas at `layers` (None: each axis at the blocks it reads) with `max_new_tokens` per
    answer (None: the profile's baseline budget), summarise per (axis, alpha), fit each axis's
    steerability, and correlate dead-zone severity with steerability over every model-axis pair
    (`severity_pairs`, Spearman)."""
    axes = ws.axes()
    steered = list(layers) if layers else sorted({b for n in axes.names for b in axes.steering_blocks(n)})
    max_new_tokens = max_new_tokens or ws.profile.baseline_tokens
    validated = valid_axes(CalibrationResult.load(ws).evaluation, DeadZonesResult.load(ws).dead_axes())
    answers = sweep(ws, alphas, layers or None, max_new_tokens, batch_size=batch_size, progress=progress)
    answers["cut"] = ~answers["finished"].astype(bool)
    columns = ["shift", "text_shift", "perplexity", "repetition", "degraded", "cut"]
    summary = answers.groupby(["axis", "alpha"], sort=False)[columns].mean()
    table = steerability(answers)
    pooled = severity_pairs(ws, table)
    varies = len(pooled) >= 3 and pooled["severity"].nunique() > 1 and pooled["steerability"].nunique() > 1
    rho, p = stats.spearman(pooled["severity"], pooled["steerability"]) if varies else (np.nan, np.nan)
    return SteeringResult(
        profile=ws.profile.name,
        alphas=list(alphas),
        layers=steered,
        max_new_tokens=max_new_tokens,
        n_questions=int(answers["q_index"].nunique()),
        validated=[n for n in axes.names if n in validated],
        summary=summary.reset_index(),
        steerability=table,
        severity_vs_steerability={"rho": rho, "p": p, "n_pairs": len(pooled)},
    )
