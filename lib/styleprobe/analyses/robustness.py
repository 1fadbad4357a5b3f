"""Does an axis depend on the wording of its instruction? Answers under five other wordings of each pole's
instruction (plain, minimal, role, behavioural, example), scored on the standard axes.

An axis is *persistently weak* when its held-out pairwise accuracy is below WEAK_ACCURACY under at least
PERSISTENT_SHARE of the wordings (`weak_share`, `persistent_axes`); the sentence the paper prints about it
(`RobustnessResult.persistent_sentence`) states that rule with its parameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, run_stage, without_system
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import POLES, calibrate, heldout_scores
from styleprobe.protocol.profiles import Profile, check_question_counts
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, keeps_instruction
from styleprobe.protocol.spec import Protocol
from styleprobe.protocol.validity import heldout_status, mark
from styleprobe.result import Result, axis_label

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

WEAK_ACCURACY = 0.65
"""A wording separates an axis's poles weakly below this held-out pairwise accuracy."""
PERSISTENT_SHARE = 0.6
"""An axis is weak whatever the wording when at least this share of the wordings is weak."""


def formulation_items(protocol: Protocol, profile: Profile, axes: Sequence[str] | None = None) -> list[Item]:
    """Every axis x pole x evaluation question under each of the five prompt formulations of the data."""
    check_question_counts(profile, protocol)
    items = []
    for name in axes or protocol.names:
        spec = protocol.axes[name]
        for form, (positive, negative) in spec.formulations.items():
            for q_index, question in enumerate(protocol.questions.evaluation[name][: profile.n_evaluation]):
                for pole, pole_name in POLES.items():
                    items.append(
                        Item(
                            id=f"formulation/{form}/{name}/{pole_name}/{q_index:02d}",
                            question=question,
                            system=positive if pole == 1 else negative,
                            meta={
                                "formulation": form,
                                "axis": name,
                                "pole": pole,
                                "split": "evaluation",
                                "q_index": q_index,
                            },
                        )
                    )
    return items


def formulation_scores(axes: AxisSet, standard: StageResult, formulations: StageResult) -> pd.DataFrame:
    """Per formulation (plus "standard", the evaluation answers of the calibration instructions) and axis:
    held-out pairwise accuracy and d' of the standard axis between the two poles' answers, and the cosine
    between the formulation's own direction unit(mean(+) - mean(-)) and the standard axis."""
    parts = {"standard": standard.select((standard.records["split"] == "evaluation").to_numpy())}
    for form in dict.fromkeys(formulations.records["formulation"]):
        parts[form] = formulations.select((formulations.records["formulation"] == form).to_numpy())
    rows = []
    for form, part in parts.items():
        scores = heldout_scores(axes, part)
        rec, states = part.records, axes.states(part)
        for i, name in enumerate(axes.names):
            own = states[:, i] if states.ndim == 3 else states  # the states of this axis's reading
            sel = (rec["axis"] == name).to_numpy() & (rec["n_measured"] > 0).to_numpy()
            pole = rec["pole"].to_numpy()
            direction = own[sel & (pole == 1)].mean(0) - own[sel & (pole == -1)].mean(0)
            norm = np.linalg.norm(direction)
            rows.append(
                {
                    "formulation": form,
                    "axis": name,
                    "pairwise_accuracy": scores.loc[name, "pairwise_accuracy"],
                    "dprime": scores.loc[name, "dprime"],
                    "cosine": float(direction @ axes.vectors[i] / norm) if norm > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def run(
    ws: Workspace, *, context: ReadingContext = DEFAULT_CONTEXT, batch_size: int | None = None
) -> RobustnessResult:
    """Answer the held-out questions under every formulation (generated with the instruction, read in
    `context`; stored in the run store) and score them on the standard axes (set A read in `context`),
    whose held-out validation (`validity.heldout_status`) marks the axes."""
    handle, profile = ws.model, ws.profile
    cal = calibrate(ws, instruction_set="A", context=context, batch_size=batch_size)
    items = formulation_items(ws.protocol, profile, cal.axes.names)
    instructed = keeps_instruction(context)
    forms = run_stage(
        handle,
        ws.runs.formulations(profile.name),
        items,
        SamplingConfig(profile.calibration_tokens),
        cal.axes.reading() if instructed else Aggregation(),
        batch_size=batch_size,
        desc="formulations",
    )
    if not instructed:
        stage = ws.runs.formulations(profile.name, context)
        forms = without_system(handle, items, forms, stage, reading=cal.axes.reading())
    return RobustnessResult(formulation_scores(cal.axes, cal.result, forms), heldout_status(cal.evaluation))


def _pivot(scores: pd.DataFrame, value: str) -> pd.DataFrame:
    return scores.pivot(index="axis", columns="formulation", values=value).loc[
        list(dict.fromkeys(scores["axis"]))
    ]


def weak_share(accuracy: pd.DataFrame, weak: float = WEAK_ACCURACY) -> pd.Series:
    """Per axis of an axes x formulations accuracy table: the share of the wordings (every column but
    "standard") whose held-out pairwise accuracy is below `weak`."""
    wordings = accuracy.drop(columns="standard")
    return (wordings < weak).mean(axis=1).rename("weak_share")


def persistent_axes(share: pd.Series, persistent: float = PERSISTENT_SHARE) -> list[str]:
    """The axes weak under at least a `persistent` share of the wordings (`weak_share` >= persistent)."""
    return list(share.index[share >= persistent])


def fewest_wordings(n_wordings: int, persistent: float = PERSISTENT_SHARE) -> int:
    """The fewest weak wordings out of `n_wordings` that make an axis persistent (the same comparison as
    `persistent_axes`)."""
    return next(k for k in range(n_wordings + 1) if k / n_wordings >= persistent)


@dataclass
class RobustnessResult(Result):
    """Notebook 07: the standard axes on answers under five wordings of each pole's instruction."""

    name: ClassVar[str] = "robustness"
    notebook: ClassVar[str] = "07_stability"

    scores: pd.DataFrame  # per (formulation, axis): pairwise_accuracy, dprime, cosine to the standard axis
    validation: pd.Series  # per axis: held-out status of the standard axis (`validity.heldout_status`)

    @property
    def accuracy(self) -> pd.DataFrame:
        """Axes x formulations (and "standard"): held-out pairwise accuracy of the standard axis."""
        return _pivot(self.scores, "pairwise_accuracy")

    @property
    def cosine(self) -> pd.DataFrame:
        """Axes x formulations: cosine between the formulation's direction and the standard axis."""
        return _pivot(self.scores, "cosine")

    @property
    def persistence(self) -> pd.Series:
        """Per axis: the share of the wordings with held-out accuracy below WEAK_ACCURACY (`weak_share`)."""
        return weak_share(self.accuracy)

    def marked(self, name: str) -> str:
        """The axis name, marked (`validity.mark`) when the standard axis failed held-out validation."""
        return mark(name, self.validation.get(name) == "valid")

    def persistent_sentence(self) -> str:
        """The persistently weak axes (`persistent_axes`), with the rule that selects them."""
        n_wordings = self.accuracy.shape[1] - 1
        persistent = persistent_axes(self.persistence)
        listed = ", ".join(axis_label(self.marked(n)) for n in persistent) or "none"
        sentence = (
            f"Axes with a held-out pairwise accuracy below {WEAK_ACCURACY:g} under at least "
            f"{fewest_wordings(n_wordings)} of the {n_wordings} wordings: {listed}"
        )
        if any(self.validation.get(n) != "valid" for n in persistent):
            sentence += " (marked: the standard axis failed held-out validation too)"
        return sentence + "."

    def paper(self) -> dict:
        wordings = self.accuracy.drop(columns="standard")
        persistent = persistent_axes(self.persistence)
        return {
            "robustness_accuracy": wordings.to_numpy().mean(),
            "robustness_cosine": self.cosine.drop(columns="standard").to_numpy().mean(),
            "robustness_n_formulations": wordings.shape[1],
            "robustness_weak_accuracy": WEAK_ACCURACY,
            "robustness_persistent_wordings": fewest_wordings(wordings.shape[1]),
            "robustness_persistent_axes": ", ".join(axis_label(self.marked(n)) for n in persistent) or "none",
            "robustness_persistent_sentence": self.persistent_sentence(),
        }
