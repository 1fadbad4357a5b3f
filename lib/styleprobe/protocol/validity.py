"""Which axes may carry a conclusion: the one predicate every table, figure and generated sentence uses.

An axis is *validated* when its held-out evaluation answers separate the poles by at least a minimum useful
accuracy: the lower end of the 95 % interval of its held-out pairwise accuracy (`stats.pairwise_accuracy_ci`)
lies above MIN_ACCURACY. An axis whose true accuracy is MIN_ACCURACY or less then validates at most 2.5 % of
the time at every number of answers (notebook 12 measures it at 0.5, 0.6, 0.65 and 0.8). An axis classed dead
by the dead-zone analysis (notebook 08) is not validated either. Everything reported about an axis that is
not validated is marked (`mark`), and generated prose draws no conclusion from it."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

MIN_ACCURACY = 0.6
"""The least useful held-out pairwise accuracy: a validated axis has its interval's lower end above it."""
SEPARABLE_ACCURACY = 0.65
"""The dead-zone analysis calls an axis whose held-out accuracy is below this a hard dead zone."""
CHANCE = 0.5
MARK = "\u2020"  # dagger after an axis label: failed validation, no conclusion drawn from it


def heldout_status(evaluation: pd.DataFrame) -> pd.Series:
    """Per axis of a calibration's evaluation table (column accuracy_ci_low, the lower end of the held-out
    pairwise accuracy's 95 % interval): "valid" (above MIN_ACCURACY), "weak" (above chance, not above
    MIN_ACCURACY) or "chance" (the interval includes 0.5; NaN, too few answers, counts as chance)."""
    low = evaluation["accuracy_ci_low"].astype(float)
    status = pd.Series("valid", index=evaluation.index, name="validation")
    status[~(low > MIN_ACCURACY)] = "weak"
    status[~(low > CHANCE)] = "chance"
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
