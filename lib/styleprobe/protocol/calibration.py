"""Calibrate axes from answers under opposite style instructions and score them on held-out questions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, run_stage, without_system
from styleprobe.protocol.axes import AxesError, AxisSet, fit_axes
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, default_thinking, keeps_instruction
from styleprobe.protocol.runs import Session
from styleprobe.protocol.spec import Protocol
from styleprobe.result import Result

POLES = {+1: "positive", -1: "negative"}


@dataclass
class Calibration:
    axes: AxisSet
    result: StageResult  # calibration and evaluation answers with their states
    evaluation: pd.DataFrame  # per-axis held-out statistics


def calibration_items(
    profile: Profile,
    protocol: Protocol,
    axes: list[str] | None = None,
    instruction_set: str = "A",
    splits: tuple[str, ...] | None = None,
) -> list[Item]:
    """Every (axis, pole, question) of the protocol. Calibration questions come from the instruction set's
    own question set (A: the standard one, B and C: their own). The held-out evaluation questions belong to
    set A's protocol: by default only set A answers them, and axes of sets B and C are scored on set A's
    evaluation answers (the same held-out data for all three)."""
    if splits is None:
        splits = ("calibration", "evaluation") if instruction_set == "A" else ("calibration",)
    specs, bank = protocol.axes, protocol.questions
    names = axes or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise AxesError(f"unknown axis {unknown[0]!r}; choose from {', '.join(specs)}")
    items = []
    for name in names:
        spec = specs[name]
        questions = {
            "calibration": bank.calibration_set(instruction_set)[name][: profile.n_calibration],
            "evaluation": bank.evaluation[name][: profile.n_evaluation],
        }
        for split in splits:
            for q_index, question in enumerate(questions[split]):
                for pole, pole_name in POLES.items():
                    items.append(
                        Item(
                            id=f"{instruction_set}/{split}/{name}/{pole_name}/{q_index:02d}",
                            question=question,
                            system=spec.instruction(pole, instruction_set),
                            meta={"axis": name, "pole": pole, "split": split, "q_index": q_index},
                        )
                    )
    return items


def fit_from_result(
    result: StageResult,
    handle_model_id: str,
    normalisation: str = "median_iqr",
    poles: Mapping[str, tuple[str, str]] | None = None,
    **meta,
) -> tuple[AxisSet, pd.DataFrame]:
    """Fit axes on the calibration split (non-empty answers only) and score them on the evaluation split.
    `poles` labels each axis's poles (default: its name split at the first "_", `warm_cold` -> warm, cold;
    labels only, they change no number)."""
    rec = result.records
    states = result.states
    usable = (rec["n_measured"] > 0).to_numpy()
    names = list(dict.fromkeys(rec["axis"]))
    poles = dict(poles or {})
    pole_states = {}
    for name in names:
        sel = (rec["axis"] == name).to_numpy() & (rec["split"] == "calibration").to_numpy() & usable
        pole = rec["pole"].to_numpy()
        pole_states[name] = (states[sel & (pole == 1)], states[sel & (pole == -1)])
    axes = fit_axes(
        pole_states,
        {n: poles.get(n) or _pole_labels(n) for n in names},
        normalisation=normalisation,
        model_id=handle_model_id,
        layers=list(meta.pop("layers")),
        aggregation=result.aggregation.to_dict(),
        meta=meta,
    )
    evaluation = heldout_scores(axes, result)
    axes.calibration = evaluation.to_dict(orient="index")
    return axes, evaluation


def _pole_labels(name: str) -> tuple[str, str]:
    first, _, second = name.partition("_")
    return (first, second) if second else (f"{name}+", f"{name}-")


def heldout_scores(axes: AxisSet, result: StageResult) -> pd.DataFrame:
    """Per axis of `axes`: pairwise and sign accuracy and d' on the evaluation split of `result` (unclipped
    projections), the share of clipped calibration projections and the number of empty answers."""
    rec = result.records
    usable = (rec["n_measured"] > 0).to_numpy()
    values_all = axes.project(result.states, clip=False)
    rows = []
    for i, name in enumerate(axes.names):
        sel = (rec["axis"] == name).to_numpy() & usable
        values = values_all[sel, i]
        split, pole = rec["split"].to_numpy()[sel], rec["pole"].to_numpy()[sel]
        ev = split == "evaluation"
        pos, neg = values[ev & (pole == 1)], values[ev & (pole == -1)]
        cal = values[split == "calibration"]
        rows.append(
            {
                "axis": name,
                "n_eval": int(ev.sum()),
                "pairwise_accuracy": stats.pairwise_accuracy(pos, neg) if len(pos) and len(neg) else np.nan,
                "sign_accuracy": stats.sign_accuracy(pos, neg) if len(pos) and len(neg) else np.nan,
                "dprime": stats.dprime(pos, neg) if len(pos) > 1 and len(neg) > 1 else np.nan,
                "calibration_clipped": float(np.mean(np.abs(cal) > 1)) if len(cal) else np.nan,
                "empty_answers": int(((rec["axis"] == name) & ~usable).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("axis")


def calibrate(
    ws: Session,
    *,
    axes: list[str] | None = None,
    instruction_set: str = "A",
    aggregation: Aggregation = Aggregation(),
    normalisation: str = "median_iqr",
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    context: ReadingContext = DEFAULT_CONTEXT,
    thinking: bool | None = None,
    profile: Profile | None = None,
    progress: bool = True,
) -> Calibration:
    """Answer calibration and evaluation questions under both poles' instructions, then fit the axes.

    The answers are generated with the instruction in the prompt and read in `context`: "uninstructed"
    (default) re-reads them as question + answer only, so an axis reads the style of the text, not the
    instruction, and its centre sits in the context the baseline answers are read in; "instructed" keeps
    the states read while generating (the original study's way; online capture, no second pass).
    `profile` replaces the workspace's (e.g. a larger token budget for thinking runs)."""
    handle, profile = ws.model, profile or ws.profile
    sampling = sampling or SamplingConfig(profile.calibration_tokens)
    items = calibration_items(profile, ws.protocol, axes, instruction_set)
    thinking = default_thinking(handle, thinking)
    result = run_stage(
        handle,
        ws.runs.calibration(instruction_set, "instructed", profile.name, axes, thinking),
        items,
        sampling,
        aggregation,
        seed=seed,
        batch_size=batch_size,
        thinking=thinking,
        desc=f"calibration {instruction_set}",
        progress=progress,
    )
    if not keeps_instruction(context):  # the same answers, re-read without the instruction
        stage = ws.runs.calibration(instruction_set, context, profile.name, axes, thinking)
        result = without_system(handle, items, result, stage, thinking=thinking, progress=progress)
    axis_set, evaluation = fit_from_result(
        result,
        handle.model_id,
        normalisation,
        poles=ws.protocol.poles(),
        layers=aggregation.absolute_layers(handle.n_layers),
        profile=profile.to_dict(),
        instruction_set=instruction_set,
        context=context,
        sampling=sampling.__dict__,
        seed=seed,
        prompt_set_hash=ws.protocol.hash,
        model_slug=handle.slug,
    )
    return Calibration(axis_set, result, evaluation)


@dataclass
class CalibrationResult(Result):
    """Notebook 01: the axes' held-out validation and geometry."""

    name: ClassVar[str] = "calibration"
    notebook: ClassVar[str] = "01_calibration"

    model_id: str
    profile: str
    normalisation: str
    evaluation: pd.DataFrame  # per axis: pairwise_accuracy, sign_accuracy, dprime, ...
    axis_cosines: pd.DataFrame
    mean_abs_axis_cosine: float
    n_answers: int
    n_empty: int
    mean_tokens_by_pole: dict
