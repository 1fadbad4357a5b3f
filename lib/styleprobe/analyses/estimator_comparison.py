"""Axis estimators compared honestly (notebook 07): every estimator at the study's reading and at a reading
chosen on calibration folds, the nested choice of both beside the study's, all scored on the evaluation
answers of instruction set A, which choose nothing; and a learning curve of held-out accuracy against
the number of calibration answers per pole, pooling the calibration questions of sets A, B and C.

Everything is read from the answers' grid (`calibration_grid`: every block with every pooling, stored in
the run store); nothing new is generated where `calibrate` ran before."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol import estimators as est
from styleprobe.protocol import selection
from styleprobe.protocol.calibration import calibrate, fit_from_result
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext
from styleprobe.protocol.spec import INSTRUCTION_SETS
from styleprobe.result import PaperTable, Result

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

POOL = ("study", "mean_diff", "zscore", "lda")
"""The estimators the nested choice chooses among (with the reading): the grouped-CV logistic fit is
compared alone but left out of the choice, whose inner folds would refit it hundreds of times."""
SIZES = (5, 10, 15, 20, 30, 45, 60, 90)
"""Calibration answers per pole of the learning curve (those the pooled sets have)."""
QUESTION_OFFSET = 10_000  # set k's calibration questions are numbered from k * QUESTION_OFFSET when pooled


def _scores(evaluation: pd.DataFrame, **columns) -> pd.DataFrame:
    keep = evaluation[["pairwise_accuracy", "accuracy_ci_low", "accuracy_ci_high"]]
    return keep.rename_axis("axis").reset_index().assign(**columns)


def study_fit(grid: StageResult, model_id: str, n_blocks: int) -> pd.DataFrame:
    """The study's axes (its reading, its estimator) scored on the evaluation answers of `grid`."""
    study = selection.STUDY.absolute(n_blocks)
    names = list(dict.fromkeys(grid.records["axis"]))
    return fit_from_result(grid, model_id, estimator="study", reading=dict.fromkeys(names, study))[1]


def nested_fit(
    grid: StageResult, model_id: str, n_blocks: int, estimators: Sequence[str] = POOL
) -> pd.DataFrame:
    """Each axis's reading and estimator (among `estimators`) chosen on the calibration folds of `grid`
    (`selection.select`, no nested estimate), scored on its evaluation answers."""
    candidates = selection.candidate_readings(n_blocks)
    return fit_from_result(grid, model_id, estimator=list(estimators), reading=candidates, nested=False)[1]


def compare(grid: StageResult, model_id: str, n_blocks: int) -> pd.DataFrame:
    """Per axis and method, the held-out pairwise accuracy with its 95 % interval
    (`stats.pairwise_accuracy_ci`) on the evaluation answers of `grid`: every estimator at the study's
    reading ("study" reading) and at the reading chosen on calibration folds ("chosen"), then the nested
    choice of reading and estimator ("nested choice", among POOL). Columns axis, estimator, reading,
    chosen (what the calibration folds chose), pairwise_accuracy, accuracy_ci_low, accuracy_ci_high."""
    study = selection.STUDY.absolute(n_blocks)
    names = list(dict.fromkeys(grid.records["axis"]))
    frames = []
    for name in est.ESTIMATORS:
        fixed = fit_from_result(grid, model_id, estimator=name, reading=dict.fromkeys(names, study))[1]
        frames.append(_scores(fixed, estimator=name, reading="study", chosen=study.label()))
        chosen = nested_fit(grid, model_id, n_blocks, [name])
        frames.append(_scores(chosen, estimator=name, reading="chosen", chosen=chosen["reading"].to_numpy()))
    both = nested_fit(grid, model_id, n_blocks)
    label = (both["estimator"] + " @ " + both["reading"]).to_numpy()
    frames.append(_scores(both, estimator="nested choice", reading="chosen", chosen=label))
    columns = ["axis", "estimator", "reading", "chosen", "pairwise_accuracy", "accuracy_ci_low"]
    return pd.concat(frames, ignore_index=True)[[*columns, "accuracy_ci_high"]]


def pooled(grids: dict[str, StageResult]) -> StageResult:
    """The calibration answers of every set in `grids` (instruction set -> its grid, the first one's
    evaluation answers kept too), each set's questions numbered apart (QUESTION_OFFSET), as one result."""
    first = next(iter(grids))
    parts = []
    for k, (name, grid) in enumerate(grids.items()):
        if grid.aggregation != grids[first].aggregation:
            raise ValueError(f"set {name} was read on another grid than set {first}")
        keep = (grid.records["split"] == "calibration").to_numpy() | (name == first)
        part = grid.select(keep)
        part.records["q_index"] = part.records["q_index"] + k * QUESTION_OFFSET
        parts.append(part)
    records = pd.concat([p.records for p in parts], ignore_index=True)
    return StageResult(records, np.concatenate([p.per_layer for p in parts]), grids[first].aggregation)


def learning_curve(
    answers: StageResult,
    model_id: str,
    n_blocks: int,
    *,
    sizes: Sequence[int] = SIZES,
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out accuracy against calibration answers per pole: for each n of `sizes` the answers hold (and
    all of them), `repeats` random draws of n calibration questions per axis (one draw with all), each
    fitted the study's way (`study_fit`) and with the nested choice (`nested_fit`), and scored on the
    same evaluation answers. Rows n, repeat, axis, method, pairwise_accuracy."""
    rng = np.random.default_rng(seed)
    rec = answers.records
    cal = (rec["split"] == "calibration").to_numpy()
    names = list(dict.fromkeys(rec["axis"]))
    available = min(rec.loc[cal & (rec["axis"] == n).to_numpy(), "q_index"].nunique() for n in names)
    rows = []
    for n in sorted({s for s in sizes if s < available} | {available}):
        for repeat in range(1 if n == available else repeats):
            keep = ~cal
            for name in names:
                own = cal & (rec["axis"] == name).to_numpy()
                drawn = rng.choice(np.unique(rec.loc[own, "q_index"]), size=n, replace=False)
                keep = keep | (own & np.isin(rec["q_index"].to_numpy(), drawn))
            part = answers.select(keep)
            for method, fit in (("study", study_fit), ("nested choice", nested_fit)):
                scores = fit(part, model_id, n_blocks)["pairwise_accuracy"]
                rows += [
                    {"n": n, "repeat": repeat, "axis": a, "method": method, "pairwise_accuracy": v}
                    for a, v in scores.items()
                ]
    return pd.DataFrame(rows)


def calibration_grid(
    ws: Workspace, instruction_set: str, *, context: ReadingContext, batch_size: int | None = None
) -> StageResult:
    """The calibration and evaluation answers of `instruction_set` read at the embedding and every block
    with every pooling (what `calibrate(reading="nested")` re-reads once and stores in the run store)."""
    cal = calibrate(
        ws,
        instruction_set=instruction_set,
        context=context,
        reading="nested",
        neutral=False,
        batch_size=batch_size,
        progress=False,
    )
    return cal.grid


def run(
    ws: Workspace,
    *,
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
    sizes: Sequence[int] = SIZES,
    repeats: int = 3,
) -> EstimatorComparisonResult:
    """`compare` on set A's answers read in `context`, and the `learning_curve` of sets A+B+C pooled."""
    grids = {s: calibration_grid(ws, s, context=context, batch_size=batch_size) for s in INSTRUCTION_SETS}
    model_id, n_blocks = ws.model.model_id, ws.model.n_layers
    table = compare(grids["A"], model_id, n_blocks)
    curve = learning_curve(pooled(grids), model_id, n_blocks, sizes=sizes, repeats=repeats)
    return EstimatorComparisonResult(ws.profile.name, table, curve)


@dataclass
class EstimatorComparisonResult(Result):
    """Notebook 14: held-out accuracy per axis, estimator and reading, and its learning curve."""

    name: ClassVar[str] = "estimator_comparison"
    notebook: ClassVar[str] = "14_estimators"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "stability")  # sets B and C: notebook 07's answers

    profile: str
    table: pd.DataFrame  # `compare`'s rows
    curve: pd.DataFrame  # `learning_curve`'s rows

    def means(self) -> pd.DataFrame:
        """Per (estimator, reading): the mean over axes of the held-out accuracy and of its interval's
        bounds, the study's estimator at the study's reading first."""
        columns = ["pairwise_accuracy", "accuracy_ci_low", "accuracy_ci_high"]
        return self.table.groupby(["estimator", "reading"], sort=False)[columns].mean()

    def curve_means(self) -> pd.DataFrame:
        """Per n: the mean held-out accuracy over axes and draws of each method (columns)."""
        return self.curve.pivot_table(index="n", columns="method", values="pairwise_accuracy", aggfunc="mean")

    def paper(self) -> dict:
        means = self.means()["pairwise_accuracy"]
        curve = self.curve_means()
        return {
            "study_accuracy": means[("study", "study")],
            "nested_accuracy": means[("nested choice", "chosen")],
            "best_fixed_reading": max(means[(e, "study")] for e in est.ESTIMATORS),
            "max_answers_per_pole": int(curve.index.max()),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        means = self.means()
        means.index = [f"{e} ({r} reading)" for e, r in means.index]
        return {
            "estimator_comparison": PaperTable(
                means,
                index_name="estimator",
                columns={
                    "pairwise_accuracy": "mean acc.",
                    "accuracy_ci_low": "low",
                    "accuracy_ci_high": "high",
                },
            ),
            "estimator_learning_curve": PaperTable(self.curve_means(), index_name="answers per pole"),
        }
