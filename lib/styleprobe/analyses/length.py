"""Are the axes just measuring answer length? Each axis' baseline projection against the answer's length in
tokens, and the cross-axis correlations before and after regressing length out of every axis.

Only the axes that pass validation (`styleprobe.protocol.validity`: held-out accuracy of notebook 01, not
dead in notebook 08) are tested and interpreted; their p-values are Holm-adjusted over those axes. The
others are shown, marked, and not interpreted. The token budget and the share of answers cut off at it are
part of the result: an answer cut off has the budget's length, whatever it would have said."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import InitVar, dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import pingouin

from styleprobe import stats
from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import BaselineResult, baseline, project_results
from styleprobe.protocol.validity import mark, valid_axes
from styleprobe.result import PaperTable, Result, axis_label, axis_list

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

ALPHA = 0.05  # family-wise error rate of the per-axis length correlations (Holm over the validated axes)


def length_correlations(
    answers: pd.DataFrame, names: Sequence[str], tested: Collection[str] | None = None
) -> pd.DataFrame:
    """Per axis of `names`: Pearson r (and p) of the projection with the answer's length (`n_tokens`), and
    p_holm: Holm's adjustment over the axes in `tested` (None: all; the others get NaN)."""
    lengths = answers["n_tokens"].to_numpy(dtype=float)
    rows = [dict(zip(["r", "p"], stats.pearson(lengths, answers[n]), strict=True)) for n in names]
    table = pd.DataFrame(rows, index=list(names))
    family = table.index.isin(list(names) if tested is None else list(tested)) & table["p"].notna()
    table["p_holm"] = np.nan
    if family.any():
        table.loc[family, "p_holm"] = pingouin.multicomp(table.loc[family, "p"].to_numpy(), method="holm")[1]
    return table


def cross_axis_correlations(answers: pd.DataFrame, names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The correlation matrix of the axes `names` across answers, as measured and with length regressed
    out of every axis."""
    names = list(names)
    raw = answers[names].to_numpy()
    residuals = stats.regress_out(raw, answers["n_tokens"].to_numpy(dtype=float))
    before, after = (np.corrcoef(m, rowvar=False) for m in (raw, residuals))
    return pd.DataFrame(before, names, names), pd.DataFrame(after, names, names)


def run(ws: Workspace, *, seeds: Sequence[int] | None = None, batch_size: int | None = None) -> LengthResult:
    """Length against projection on the baseline answers under `seeds` (None: notebook 02's, whose answers
    are then read from the run store, not generated again), testing only the axes that pass validation;
    see `measure`."""
    seeds = BaselineResult.load(ws).seeds if seeds is None else seeds
    axes = ws.axes()
    validated = valid_axes(CalibrationResult.load(ws).evaluation, DeadZonesResult.load(ws).dead_axes())
    results = baseline(ws, seeds=tuple(seeds), batch_size=batch_size, aggregation=axes.reading())
    projections = project_results(axes, results, ws.model.model_id)
    projections["finished"] = np.concatenate([r.records["finished"].to_numpy(bool) for r in results.values()])
    return measure(projections, axes.names, ws.profile.baseline_tokens, validated)


def measure(
    projections: pd.DataFrame, names: Sequence[str], budget: int, validated: Collection[str] | None = None
) -> LengthResult:
    """The length confound of `projections` (`project_results`: one column per axis of `names`, n_tokens,
    and `finished`: False for an answer cut off at the token `budget`). Empty answers are left out, and so
    are axes whose projection takes fewer than 3 distinct values. Only the axes in `validated` (None: all)
    are tested; the cross-axis correlations use every usable axis."""
    answers = projections.dropna(subset=list(names))
    usable = [n for n in names if answers[n].nunique() > 2]
    tested = [n for n in usable if validated is None or n in set(validated)]
    before, after = cross_axis_correlations(answers, usable)
    mean_before, mean_after = stats.mean_abs_offdiag(before), stats.mean_abs_offdiag(after)
    return LengthResult(
        per_axis=length_correlations(answers, usable, tested),
        validated=tested,
        mean_abs_r_before=mean_before,
        mean_abs_r_after=mean_after,
        relative_change=(mean_after - mean_before) / mean_before,
        n_answers=len(answers),
        mean_length=float(answers["n_tokens"].mean()),
        budget=budget,
        n_cut=int((~answers["finished"].astype(bool)).sum()),
        answers=answers,
        before=before,
        after=after,
    )


@dataclass
class LengthResult(Result):
    """Notebook 04: the length confound of the baseline projections."""

    name: ClassVar[str] = "length_confound"
    notebook: ClassVar[str] = "04_length_confound"
    needs: ClassVar[tuple[str, ...]] = ("baseline", "calibration", "dead_zones")

    per_axis: pd.DataFrame  # per usable axis: Pearson r and p of projection vs length, p_holm if validated
    validated: list[str]  # the usable axes that passed validation: the only ones tested and interpreted
    mean_abs_r_before: float  # mean |r| between different axes, as measured
    mean_abs_r_after: float  # the same with length regressed out of every axis
    relative_change: float
    n_answers: int  # non-empty baseline answers measured
    mean_length: float  # their mean length in tokens
    budget: int  # the answers' token budget
    n_cut: int  # of the measured answers, those cut off at the budget
    # for the notebook's figures, this run only, not saved: the answers (projections and n_tokens) and the
    # cross-axis correlations
    answers: InitVar[pd.DataFrame | None] = None
    before: InitVar[pd.DataFrame | None] = None
    after: InitVar[pd.DataFrame | None] = None

    def __post_init__(self, answers, before, after) -> None:
        self.answers, self.before, self.after = answers, before, after

    def significant(self) -> list[str]:
        """The validated axes whose projection correlates with length (Holm-adjusted p below ALPHA)."""
        return list(self.per_axis.index[self.per_axis["p_holm"] < ALPHA])

    def paper(self) -> dict:
        tested = self.per_axis.loc[self.validated, "r"]
        strongest = tested.abs().idxmax() if len(tested) else None
        return {
            "n_answers": self.n_answers,
            "n_usable_axes": len(self.per_axis),
            "mean_length": self.mean_length,
            "budget": self.budget,
            "n_cut": self.n_cut,
            "cut_percent": round(100 * self.n_cut / self.n_answers),
            "per_axis": self.per_axis[["r", "p"]].to_dict(orient="index"),
            "alpha": ALPHA,
            "n_validated": len(self.validated),
            "n_not_interpreted": len(self.per_axis) - len(self.validated),
            "not_interpreted": axis_list(n for n in self.per_axis.index if n not in self.validated),
            "n_significant": len(self.significant()),
            "significant": axis_list(self.significant()),
            "strongest_axis": axis_label(strongest) if strongest else "none",
            "strongest_r": tested.loc[strongest] if strongest else np.nan,
            "mean_abs_r_before": self.mean_abs_r_before,
            "mean_abs_r_after": self.mean_abs_r_after,
            "change_percent": round(100 * self.relative_change),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        valid = set(self.validated)
        frame = self.per_axis.rename(index={n: mark(n, n in valid) for n in self.per_axis.index})
        columns = {"r": "Pearson r", "p_holm": "p (Holm)"}
        return {"length_confound_table": PaperTable(frame, digits=3, columns=columns, index_name="axis")}
