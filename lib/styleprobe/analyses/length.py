"""Are the axes just measuring answer length? Each axis' baseline projection against the answer's length in
tokens, and the cross-axis correlations before and after regressing length out of every axis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.protocol.fingerprint import BaselineResult, baseline, project_results
from styleprobe.result import PaperTable, Result, axis_label

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

ALPHA = 0.05  # significance level of the per-axis length correlations


def length_correlations(answers: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Per axis of `names`: Pearson r (and p) of the projection with the answer's length (`n_tokens`)."""
    lengths = answers["n_tokens"].to_numpy(dtype=float)
    rows = [dict(zip(["r", "p"], stats.pearson(lengths, answers[n]), strict=True)) for n in names]
    return pd.DataFrame(rows, index=list(names))


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
    are then read from the run store, not generated again); see `measure`."""
    seeds = BaselineResult.load(ws).seeds if seeds is None else seeds
    axes = ws.axes()
    results = baseline(ws, seeds=tuple(seeds), batch_size=batch_size)
    return measure(project_results(axes, results, ws.model.model_id), axes.names)


def measure(projections: pd.DataFrame, names: Sequence[str]) -> LengthResult:
    """The length confound of `projections` (`project_results`: one column per axis of `names`, and
    n_tokens). Empty answers are left out, and so are axes whose projection takes fewer than 3 distinct
    values."""
    answers = projections.dropna(subset=list(names))
    usable = [n for n in names if answers[n].nunique() > 2]
    before, after = cross_axis_correlations(answers, usable)
    mean_before, mean_after = stats.mean_abs_offdiag(before), stats.mean_abs_offdiag(after)
    return LengthResult(
        per_axis=length_correlations(answers, usable),
        mean_abs_r_before=mean_before,
        mean_abs_r_after=mean_after,
        relative_change=(mean_after - mean_before) / mean_before,
        n_answers=len(answers),
        mean_length=float(answers["n_tokens"].mean()),
        answers=answers,
        before=before,
        after=after,
    )


@dataclass
class LengthResult(Result):
    """Notebook 04: the length confound of the baseline projections."""

    name: ClassVar[str] = "length_confound"
    notebook: ClassVar[str] = "04_length_confound"
    needs: ClassVar[tuple[str, ...]] = ("baseline",)

    per_axis: pd.DataFrame  # per usable axis: Pearson r and p of projection vs length
    mean_abs_r_before: float  # mean |r| between different axes, as measured
    mean_abs_r_after: float  # the same with length regressed out of every axis
    relative_change: float
    n_answers: int  # non-empty baseline answers measured
    mean_length: float  # their mean length in tokens
    # for the notebook's figures, this run only, not saved: the answers (projections and n_tokens) and the
    # cross-axis correlations
    answers: InitVar[pd.DataFrame | None] = None
    before: InitVar[pd.DataFrame | None] = None
    after: InitVar[pd.DataFrame | None] = None

    def __post_init__(self, answers, before, after) -> None:
        self.answers, self.before, self.after = answers, before, after

    def paper(self) -> dict:
        strongest = self.per_axis["r"].abs().idxmax()
        return {
            "n_answers": self.n_answers,
            "n_usable_axes": len(self.per_axis),
            "mean_length": self.mean_length,
            "per_axis": self.per_axis.to_dict(orient="index"),
            "alpha": ALPHA,
            "n_significant": int((self.per_axis["p"] < ALPHA).sum()),
            "strongest_axis": axis_label(strongest),
            "strongest_r": self.per_axis.loc[strongest, "r"],
            "mean_abs_r_before": self.mean_abs_r_before,
            "mean_abs_r_after": self.mean_abs_r_after,
            "change_percent": round(100 * self.relative_change),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        table = PaperTable(self.per_axis, digits=3, columns={"r": "Pearson r"}, index_name="axis")
        return {"length_confound_table": table}
