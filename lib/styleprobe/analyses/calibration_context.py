"""Calibration context: the same calibration answers read with the style instruction still in context (the
original study's way) and without it (question + answer only, the default). An instructed axis can partly
encode "the system prompt said warm" rather than "this text is warm"; the comparison shows how much."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.analyses.stability import calibrate_sets, set_cosines
from styleprobe.analyses.textmetrics import axis_metrics, metrics_frame, protocol_lexicon
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxisSet, readings_for
from styleprobe.protocol.calibration import heldout_scores
from styleprobe.protocol.fingerprint import baseline, stored_baseline_seeds
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, other_context
from styleprobe.result import PaperTable, Result

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace


def text_agreement(
    axes: AxisSet, answers: StageResult | np.ndarray, metrics: pd.DataFrame, axis_metric: dict
) -> pd.Series:
    """Per axis, Spearman rho between its unclipped projections of `answers` (a StageResult, or states) and
    its text metric (`axis_metric`: axis -> a column of `metrics`, one row per answer); NaN for an axis
    without a metric or with a constant side."""
    states = axes.states(answers) if isinstance(answers, StageResult) else answers
    values = axes.project(states, clip=False)
    out = {}
    for i, name in enumerate(axes.names):
        out[name] = np.nan
        if name in axis_metric:
            x, y = values[:, i], metrics[axis_metric[name]].to_numpy(float)
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                out[name] = stats.spearman(x, y)[0]
    return pd.Series(out)


def run(
    ws: Workspace,
    *,
    seeds: Sequence[int] | None = None,
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
) -> ContextAblationResult:
    """Sets A, B and C read in both contexts (their answers generated once, the re-read stored): held-out
    accuracy and d', the instructed axes on the uninstructed reading, A/B/C stability, the cosine between
    the two readings' axes, and Spearman rho with the text metrics on the baseline answers of the first of
    `seeds` (None: the stored baseline's). Saves the standard axes of the context other than `context` in
    the run store, for the judge (notebook 05). The `context` axes are calibrated as `calibrate` does by
    default; every other set, in either context, is fitted the way they were (`calibration.fitted_like`),
    so that all directions compared lie in the same spaces."""
    other = other_context(context)
    both = {context: calibrate_sets(ws, context=context, batch_size=batch_size)}
    both[other] = calibrate_sets(ws, context=other, batch_size=batch_size, like=both[context]["A"].axes)
    both[other]["A"].axes.save(ws.runs.axes(other))
    seeds = tuple(seeds) if seeds is not None else stored_baseline_seeds(ws)
    every = [c.axes for sets in both.values() for c in sets.values()]
    answers = next(
        iter(baseline(ws, seeds=seeds, batch_size=batch_size, aggregation=readings_for(*every)).values())
    )
    metrics = metrics_frame(list(answers.records["response"]), protocol_lexicon(ws.protocol))
    axis_metric = axis_metrics(ws.protocol)
    instructed, uninstructed = ({s: c.axes for s, c in both[ctx].items()} for ctx in both)
    per_axis = pd.DataFrame(
        {
            "acc_instructed": both["instructed"]["A"].evaluation["pairwise_accuracy"],
            "acc_uninstructed": both["uninstructed"]["A"].evaluation["pairwise_accuracy"],
            "acc_instructed_axes_on_plain_text": heldout_scores(
                instructed["A"], both["uninstructed"]["A"].grid or both["uninstructed"]["A"].result
            )["pairwise_accuracy"],
            "dprime_instructed": both["instructed"]["A"].evaluation["dprime"],
            "dprime_uninstructed": both["uninstructed"]["A"].evaluation["dprime"],
            "stability_instructed": set_cosines(instructed)["mean"],
            "stability_uninstructed": set_cosines(uninstructed)["mean"],
            "cosine_between_readings": np.sum(instructed["A"].vectors * uninstructed["A"].vectors, axis=1),
            "text_rho_instructed": text_agreement(instructed["A"], answers, metrics, axis_metric),
            "text_rho_uninstructed": text_agreement(uninstructed["A"], answers, metrics, axis_metric),
        }
    )
    return ContextAblationResult(per_axis, per_axis.mean(numeric_only=True))


@dataclass
class ContextAblationResult(Result):
    """Notebook 07: axes read with and without the instruction in context."""

    name: ClassVar[str] = "context_ablation"
    notebook: ClassVar[str] = "07_stability"

    per_axis: pd.DataFrame  # acc_/dprime_/stability_/text_rho_ instructed and uninstructed, ...
    means: pd.Series  # the mean over axes of each column of per_axis

    def paper(self) -> dict:
        return {"context": self.means.to_dict()}

    def paper_tables(self) -> dict[str, PaperTable]:
        columns = {
            "acc_instructed": "acc. instr.",
            "acc_uninstructed": "acc. plain",
            "acc_instructed_axes_on_plain_text": "instr. axes on plain",
            "stability_instructed": "cos instr.",
            "stability_uninstructed": "cos plain",
            "cosine_between_readings": "cos between",
        }
        return {"context_table": PaperTable(self.per_axis[list(columns)], columns=columns, index_name="axis")}
