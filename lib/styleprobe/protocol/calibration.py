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
from styleprobe.protocol.profiles import PROFILES, Profile
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, default_thinking, keeps_instruction
from styleprobe.protocol.runs import Session
from styleprobe.protocol.spec import Protocol
from styleprobe.result import PaperTable, Result, axis_label

POLES = {+1: "positive", -1: "negative"}
SEPARABLE_ACCURACY = 0.65
"""An axis separates its poles when its held-out pairwise accuracy reaches this (below: a hard dead zone)."""
PCA_COMPONENTS = 10  # principal components of the calibration states whose variance share is saved


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


def calibration_pca(cal: Calibration) -> tuple[pd.DataFrame, np.ndarray]:
    """The calibration answers (not the held-out ones) on the first two principal components of their
    states (the records with columns pc1, pc2 added) and every component's share of the variance."""
    records, states = cal.result.records, cal.result.states
    calib = (records["split"] == "calibration").to_numpy()
    x = states[calib] - states[calib].mean(0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    pcs = x @ vt[:2].T
    return records[calib].assign(pc1=pcs[:, 0], pc2=pcs[:, 1]), sv**2 / np.sum(sv**2)


def pole_projections(cal: Calibration) -> pd.DataFrame:
    """Every answer's unclipped normalised projection on its own axis: columns axis, pole, split, value."""
    records = cal.result.records
    values = cal.axes.project(cal.result.states, clip=False)
    return pd.concat(
        [
            records[["axis", "pole", "split"]].assign(value=values[:, i])[records["axis"] == name]
            for i, name in enumerate(cal.axes.names)
        ]
    )


def summarise(ws: Session, cal: Calibration) -> CalibrationResult:
    """Notebook 01's result of a calibration: held-out scores, the axes' cosines, answer counts, and what
    the paper states of the run (its settings, its states' PCA, its answers' lengths)."""
    records, axes = cal.result.records, cal.axes
    names, aggregation, sizes = axes.names, cal.result.aggregation, axes.meta["profile"]
    cosines = pd.DataFrame(axes.cosine_matrix(), index=names, columns=names)
    off_diagonal = np.abs(cosines.to_numpy()[~np.eye(len(names), dtype=bool)])
    calib = records[records["split"] == "calibration"]
    tokens = calib.groupby(["axis", "pole"])["n_tokens"].mean().unstack().round().astype(int)
    return CalibrationResult(
        model_id=axes.model_id,
        profile=sizes["name"],
        normalisation=axes.normalisation,
        evaluation=cal.evaluation,
        axis_cosines=cosines,
        mean_abs_axis_cosine=float(off_diagonal.mean()),
        n_answers=len(records),
        n_empty=int(records["empty"].sum()),
        mean_tokens_by_pole=records.groupby(["axis", "pole"])["n_tokens"].mean().unstack().to_dict(),
        settings={
            **{k: sizes[k] for k in ("n_calibration", "n_evaluation", "calibration_tokens")},
            **{k: axes.meta["sampling"][k] for k in ("temperature", "top_p")},
            "decay": aggregation.decay,
            "layer_weights": list(aggregation.layer_weights),
            "layers": list(axes.layers),
            "n_blocks": ws.model.n_layers,
            "hidden_size": axes.hidden_size,
        },
        pca_explained=calibration_pca(cal)[1][:PCA_COMPONENTS].tolist(),
        tokens_by_pole=tokens.rename(columns=POLES).reindex(columns=list(POLES.values())),
    )


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
    mean_tokens_by_pole: dict  # by pole (1, -1) and axis, over both splits
    settings: dict  # the run's sizes, sampling and reading (`summarise`); layers 0-based, of n_blocks
    pca_explained: list[float]  # share of the variance of the calibration states' first components
    tokens_by_pole: pd.DataFrame  # per axis: mean length of the calibration answers, positive and negative

    def paper(self) -> dict:
        settings, ev, cosines = self.settings, self.evaluation, self.axis_cosines
        acc = ev["pairwise_accuracy"]
        upper = cosines.where(np.triu(np.ones(cosines.shape, dtype=bool), k=1)).abs().stack()
        explained, tokens = self.pca_explained, self.tokens_by_pole
        return {
            "model_id": self.model_id,
            "profile": self.profile,
            "normalisation": self.normalisation,
            "n_axes": len(ev),
            **{k: settings[k] for k in ("n_calibration", "n_evaluation", "calibration_tokens", "decay")},
            "layer_weights": ", ".join(f"{w:g}" for w in settings["layer_weights"]),
            **{k: settings[k] for k in ("temperature", "top_p", "n_blocks", "hidden_size")},
            "first_layer": min(settings["layers"]) + 1,
            "last_layer": max(settings["layers"]) + 1,
            "n_answers": self.n_answers,
            "n_empty": self.n_empty,
            "mean_accuracy": acc.mean(),
            "mean_dprime": ev["dprime"].mean(),
            "best_axis": axis_label(acc.idxmax()),
            "best_accuracy": acc.max(),
            "worst_axis": axis_label(acc.idxmin()),
            "worst_accuracy": acc.min(),
            "hard_threshold": SEPARABLE_ACCURACY,
            "n_separable": int((acc >= SEPARABLE_ACCURACY).sum()),
            "mean_abs_cosine": self.mean_abs_axis_cosine,
            "max_abs_cosine": upper.max(),
            "max_cosine_pair": " and ".join(axis_label(n) for n in upper.idxmax()),
            "pc1_percent": round(100 * explained[0]),
            "pc2_percent": round(100 * explained[1]),
            "axes": ev[["pairwise_accuracy", "sign_accuracy", "dprime"]].to_dict(orient="index"),
            "tokens": tokens.to_dict(orient="index"),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        tokens = self.tokens_by_pole.rename(columns={"positive": "tokens +", "negative": "tokens -"})
        evaluation = self.evaluation[["pairwise_accuracy", "sign_accuracy", "dprime", "calibration_clipped"]]
        profiles = pd.DataFrame([p.to_dict() for p in PROFILES.values()]).set_index("name")
        profiles["seeds"] = profiles["seeds"].map(len)
        return {
            "calibration_evaluation": PaperTable(
                evaluation.join(tokens),
                index_name="axis",
                columns={
                    "pairwise_accuracy": "pairwise acc.",
                    "sign_accuracy": "sign acc.",
                    "dprime": "d'",
                    "calibration_clipped": "clipped",
                },
            ),
            "profiles": PaperTable(
                profiles,
                index_name="profile",
                columns={
                    "n_calibration": "calibration q.",
                    "n_evaluation": "evaluation q.",
                    "n_baseline": "baseline q.",
                    "calibration_tokens": "cal. tokens",
                    "baseline_tokens": "baseline tokens",
                    "n_benchmark": "benchmark q.",
                },
            ),
        }
