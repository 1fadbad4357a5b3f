"""Which axes may carry a conclusion: the one predicate every table, figure and generated sentence uses.

An axis is *validated* when its held-out evaluation answers separate the poles: the lower end of the 95 %
interval of its held-out pairwise accuracy lies above chance (0.5) and the accuracy itself reaches
SEPARABLE_ACCURACY. An axis classed dead by the dead-zone analysis (notebook 08) is not validated either.
Everything reported about an axis that is not validated is marked (`mark`), and generated prose draws no
conclusion from it."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

SEPARABLE_ACCURACY = 0.65
"""An axis separates its poles when its held-out pairwise accuracy reaches this (below: a hard dead zone)."""
CHANCE = 0.5
MARK = "\u2020"  # dagger after an axis label: failed validation, no conclusion drawn from it


def heldout_status(evaluation: pd.DataFrame) -> pd.Series:
    """Per axis of a calibration's evaluation table (columns pairwise_accuracy, accuracy_ci_low): "valid",
    "chance" (the accuracy's interval includes 0.5) or "weak" (above chance but below SEPARABLE_ACCURACY)."""
    acc = evaluation["pairwise_accuracy"].astype(float)
    low = evaluation["accuracy_ci_low"].astype(float)
    status = pd.Series("valid", index=evaluation.index, name="validation")
    status[~(acc >= SEPARABLE_ACCURACY)] = "weak"
    status[~(low > CHANCE)] = "chance"  # NaN (too few answers) counts as chance: nothing shown
    return status


def valid_axes(evaluation: pd.DataFrame, dead: Iterable[str] = ()) -> list[str]:
    """The axes of `evaluation` that pass held-out validation and are not in `dead`, in table order."""
    dead = set(dead)
    status = heldout_status(evaluation)
    return [name for name in evaluation.index if status[name] == "valid" and name not in dead]


def mark(label: str, valid: bool) -> str:
    """`label`, followed by MARK when the axis is not validated."""
    return label if valid else f"{label}{MARK}"


# -- what an axis adds over its text (notebook 13, `styleprobe.analyses.controls`) -----------------------

BEYOND, LEXICAL = "beyond", "lexical"


def lexical_status(controls: pd.DataFrame) -> pd.Series:
    """Per axis of a controls table (column gain_ci_low: the lower end of the 95 % interval of the axis's
    held-out accuracy minus that of its best lexical control, paired over evaluation questions): BEYOND when
    it lies above 0, else LEXICAL: the axis does no better than its words and length, it measures what the
    text already shows. NaN (too few answers for an interval) counts as LEXICAL: nothing shown beyond."""
    low = controls["gain_ci_low"].astype(float)
    status = pd.Series(LEXICAL, index=controls.index, name="control_status")
    status[low > 0] = BEYOND
    return status


def beyond_lexical(evaluation: pd.DataFrame, controls: pd.DataFrame, dead: Iterable[str] = ()) -> list[str]:
    """The axes that pass held-out validation (`valid_axes`) and go beyond their lexical control
    (`lexical_status`), in table order."""
    status = lexical_status(controls)
    return [n for n in valid_axes(evaluation, dead) if n in status.index and status[n] == BEYOND]
