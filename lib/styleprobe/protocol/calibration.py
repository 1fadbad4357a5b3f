"""Calibrate axes from answers under opposite style instructions, and fingerprint a model's default style."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.pipeline import Item, StageResult, run_stage, without_system
from styleprobe.protocol.axes import AxesError, AxisSet, axes_id, fit_axes
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.spec import load_axes, load_questions, prompt_set_hash

POLES = {+1: "positive", -1: "negative"}


@dataclass
class Calibration:
    axes: AxisSet
    result: StageResult  # calibration and evaluation answers with their states
    evaluation: pd.DataFrame  # per-axis held-out statistics


def calibration_items(
    profile: Profile,
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
    specs, bank = load_axes(), load_questions()
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
    result: StageResult, handle_model_id: str, normalisation: str = "median_iqr", **meta
) -> tuple[AxisSet, pd.DataFrame]:
    """Fit axes on the calibration split (non-empty answers only) and score them on the evaluation split."""
    rec = result.records
    states = result.states
    usable = (rec["n_measured"] > 0).to_numpy()
    specs = load_axes()
    names = list(dict.fromkeys(rec["axis"]))
    pole_states = {}
    for name in names:
        sel = (rec["axis"] == name).to_numpy() & (rec["split"] == "calibration").to_numpy() & usable
        pole = rec["pole"].to_numpy()
        pole_states[name] = (states[sel & (pole == 1)], states[sel & (pole == -1)])
    axes = fit_axes(
        pole_states,
        {n: specs[n].poles for n in names},
        normalisation=normalisation,
        model_id=handle_model_id,
        layers=list(meta.pop("layers")),
        aggregation=result.aggregation.to_dict(),
        meta=meta,
    )
    evaluation = heldout_scores(axes, result)
    axes.calibration = evaluation.to_dict(orient="index")
    return axes, evaluation


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


def default_thinking(handle: ModelHandle, thinking: bool | None) -> bool | None:
    """Models with a thinking switch calibrate and answer with thinking off unless told otherwise (their
    think block would otherwise eat the token budget); notebook 06 compares the two modes."""
    if thinking is None and handle.thinking:
        return False
    return thinking


def calibrate(
    handle: ModelHandle,
    profile: Profile,
    run_dir: Path,
    *,
    axes: list[str] | None = None,
    instruction_set: str = "A",
    aggregation: Aggregation = Aggregation(),
    normalisation: str = "median_iqr",
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    read_with_system: bool = False,
    thinking: bool | None = None,
    progress: bool = True,
) -> Calibration:
    """Answer calibration and evaluation questions under both poles' instructions, then fit the axes.

    The answers are generated with the instruction, then re-read as question + answer only (default), so
    an axis reads the style of the text, not the instruction, and its centre sits in the context the
    baseline answers are read in. `read_with_system=True` keeps the states read with the instruction in
    context while generating (the original study's way; online capture, no second pass)."""
    sampling = sampling or SamplingConfig(profile.calibration_tokens)
    items = calibration_items(profile, axes, instruction_set)
    thinking = default_thinking(handle, thinking)
    context = "instructed" if read_with_system else "uninstructed"
    subset = "" if axes is None else "-" + "+".join(axes)  # a subset of axes is a run of its own
    tag = "-thinking" if thinking else ""
    stage = f"calibration-{instruction_set}-{{}}-{profile.name}{subset}{tag}"
    result = run_stage(
        handle,
        Path(run_dir) / stage.format("instructed"),
        items,
        sampling,
        aggregation,
        seed=seed,
        batch_size=batch_size,
        thinking=thinking,
        desc=f"calibration {instruction_set}",
        progress=progress,
    )
    if not read_with_system:  # the same answers, re-read without the instruction
        result = without_system(
            handle, items, result, Path(run_dir) / stage.format(context), thinking=thinking, progress=progress
        )
    axis_set, evaluation = fit_from_result(
        result,
        handle.model_id,
        normalisation,
        layers=aggregation.absolute_layers(handle.n_layers),
        profile=profile.to_dict(),
        instruction_set=instruction_set,
        context=context,
        sampling=sampling.__dict__,
        seed=seed,
        prompt_set_hash=prompt_set_hash(),
        model_slug=handle.slug,
    )
    return Calibration(axis_set, result, evaluation)


def _baseline_dir(run_dir: Path, profile: Profile, thinking: bool | None, system: str | None) -> Path:
    tag = "" if thinking is None else f"-thinking-{'on' if thinking else 'off'}"
    if system is not None:
        tag += "-system-" + hashlib.sha256(system.encode()).hexdigest()[:10]
    return Path(run_dir) / f"baseline{tag}-{profile.name}"


def stored_baseline_seeds(handle: ModelHandle, profile: Profile, run_dir: Path) -> tuple[int, ...] | None:
    """The seeds of the largest default baseline run already in the run store (None if there is none), so
    that a later reader reuses notebook 02's answers instead of generating new ones."""
    folder = _baseline_dir(run_dir, profile, default_thinking(handle, None), None)
    runs = [tuple(int(s) for s in p.name.split("-")[1:]) for p in folder.glob("seeds-*") if p.is_dir()]
    return max(runs, key=len) if runs else None


def baseline(
    handle: ModelHandle,
    profile: Profile,
    run_dir: Path,
    *,
    seeds: tuple[int, ...] | None = None,
    aggregation: Aggregation = Aggregation(),
    sampling: SamplingConfig | None = None,
    batch_size: int | None = None,
    thinking: bool | None = None,
    system: str | None = None,
    progress: bool = True,
) -> dict[int, StageResult]:
    """The model's default answers (no system prompt) to the baseline questions, once per seed.

    All seeds run as one stage so they share batches; an answer's sampling key depends only on its seed
    and question, so seed 0 gives the same answers whichever other seeds run beside it. With `system`, the
    answers are written under that system prompt (e.g. to check that `styleprobe compare` sees a style
    shift) and read without it, like calibration answers."""
    sampling = sampling or SamplingConfig(profile.baseline_tokens)
    seeds = tuple(seeds if seeds is not None else profile.seeds)
    thinking = default_thinking(handle, thinking)
    questions = load_questions().baseline[: profile.n_baseline]
    items = [
        Item(f"seed-{s}/baseline/{i:02d}", q, system, meta={"q_index": i, "seed": s}, seed=s)
        for s in seeds
        for i, q in enumerate(questions)
    ]
    stage_dir = _baseline_dir(run_dir, profile, thinking, system) / ("seeds-" + "-".join(map(str, seeds)))
    result = run_stage(
        handle,
        stage_dir,
        items,
        sampling,
        aggregation,
        batch_size=batch_size,
        thinking=thinking,
        read_with_system=system is None,
        desc="baseline",
        progress=progress,
    )
    seed_col = result.records["seed"].to_numpy()
    return {s: result.select(seed_col == s) for s in seeds}


def project_results(axes: AxisSet, results: dict[int, StageResult], model_id: str) -> pd.DataFrame:
    """Long table of normalised projections: one row per (seed, question), one column per axis.
    Empty answers get NaN projections (kept, flagged, never averaged in). The last two columns name what
    was projected, so a saved table keeps its identity (`styleprobe compare` checks it): `model_id` (the
    model that answered; "" when not given) and `axes_id` (`styleprobe.protocol.axes.axes_id` of `axes`)."""
    identity = axes_id(axes)
    frames = []
    for seed, res in results.items():
        values = axes.project(res.states, model_id)
        values[(res.records["n_measured"] == 0).to_numpy()] = np.nan
        frame = pd.DataFrame(values, columns=axes.names)
        frame.insert(0, "seed", seed)
        frame.insert(1, "q_index", res.records["q_index"].to_numpy())
        frame["n_tokens"] = res.records["n_tokens"].to_numpy()
        frame["model_id"] = model_id if model_id is not None else ""
        frame["axes_id"] = identity
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fingerprint_table(projections: pd.DataFrame, axes: list[str], seed: int = 0) -> pd.DataFrame:
    """Per axis: mean over questions (seed-averaged), bootstrap 95 % CI over questions, std, clipped share."""
    per_question = projections.groupby("q_index")[axes].mean()
    rows = []
    for name in axes:
        v = per_question[name].dropna().to_numpy()
        lo, hi = stats.bootstrap_ci(np.mean, v, seed=seed) if len(v) > 1 else (np.nan, np.nan)
        rows.append(
            {
                "axis": name,
                "mean": float(np.mean(v)) if len(v) else np.nan,
                "ci_low": lo,
                "ci_high": hi,
                "std": float(np.std(v, ddof=1)) if len(v) > 1 else np.nan,
                "clipped": float(np.mean(np.abs(projections[name].dropna()) >= 1)),
                "n": len(v),
            }
        )
    return pd.DataFrame(rows).set_index("axis")
