"""Do the axes depend on the calibration data, and are the projections repeatable? Agreement across
independent calibration sets, convergence with the number of calibration questions, and test-retest
reliability across sampling seeds (the wording of the instruction: `robustness`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass
from itertools import combinations
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from styleprobe import stats
from styleprobe.analyses import instruction_benchmark as benchmark
from styleprobe.engine.pipeline import StageResult
from styleprobe.errors import UsageError
from styleprobe.protocol.axes import AxisSet, readings_for
from styleprobe.protocol.calibration import (
    Calibration,
    calibrate,
    fit_from_result,
    fitted_like,
    heldout_scores,
)
from styleprobe.protocol.fingerprint import BaselineResult, baseline
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext
from styleprobe.protocol.spec import INSTRUCTION_SETS
from styleprobe.protocol.validity import heldout_status, mark
from styleprobe.result import PaperTable, Result, axis_label

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace


def set_cosines(axis_sets: Mapping[str, AxisSet]) -> pd.DataFrame:
    """Per axis (rows), the cosine between each pair of sets' axis vectors (columns "A~B", ...) and their
    mean. Every set must hold the same axes."""
    if len(axis_sets) < 2:
        raise ValueError("set_cosines needs at least two axis sets")
    first = next(iter(axis_sets.values()))
    names = first.names
    for label, axes in axis_sets.items():
        if axes.names != names or axes.hidden_size != first.hidden_size:
            raise ValueError(f"axis set {label!r} holds other axes or another hidden size than the first")
    out = pd.DataFrame(index=pd.Index(names, name="axis"))
    for a, b in combinations(axis_sets, 2):
        out[f"{a}~{b}"] = np.sum(axis_sets[a].vectors * axis_sets[b].vectors, axis=1)
    out["mean"] = out.mean(axis=1)
    return out.astype(float)  # as saved, so that the paper's means are the same from a reloaded result


def projection_agreement(projections: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per axis, Pearson r between the projections of the same answers under each pair of sets (frames with
    one column per axis, rows aligned) and their mean: do different calibrations rank answers alike?"""
    labels = list(projections)
    names = list(projections[labels[0]].columns)
    out = pd.DataFrame(index=pd.Index(names, name="axis"))
    for a, b in combinations(labels, 2):
        col = []
        for name in names:
            x, y = projections[a][name].to_numpy(float), projections[b][name].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            varies = ok.sum() > 2 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0
            col.append(stats.pearson(x[ok], y[ok])[0] if varies else np.nan)
        out[f"{a}~{b}"] = col
    out["mean"] = out.mean(axis=1)
    return out


def convergence(
    result: StageResult,
    full: AxisSet,
    sizes: Sequence[int] = (5, 10, 15, 20, 30),
    *,
    n_repeats: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Axes refitted on random subsets of n calibration questions (the same subset for every axis, both poles
    of each question kept), per n in `sizes` below the number available, `n_repeats` times each, and the
    full set itself as the last size.

    Rows: n, repeat, axis, cosine to the `full` axis and held-out pairwise accuracy / d' on the evaluation
    split (which the subsets never touch). The largest n equals the full set, so its cosine is 1 by design."""
    rec = result.records
    cal = (rec["split"] == "calibration").to_numpy()
    available = np.unique(rec.loc[cal, "q_index"])
    if len(available) < 2:
        raise ValueError(f"convergence needs at least 2 calibration questions, got {len(available)}")
    sizes = sorted({n for n in sizes if 0 < n < len(available)} | {len(available)})
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for repeat in range(1 if n == len(available) else n_repeats):
            chosen = rng.choice(available, size=n, replace=False)
            keep = ~cal | np.isin(rec["q_index"].to_numpy(), chosen)
            axes, scores = fit_from_result(
                result.select(keep), full.model_id or "", layers=full.layers, **_refit_like(full)
            )
            cos = np.sum(axes.vectors * full.subset(axes.names).vectors, axis=1)
            for i, name in enumerate(axes.names):
                rows.append(
                    {
                        "n": n,
                        "repeat": repeat,
                        "axis": name,
                        "cosine": float(cos[i]),
                        "pairwise_accuracy": scores.loc[name, "pairwise_accuracy"],
                        "dprime": scores.loc[name, "dprime"],
                    }
                )
    return pd.DataFrame(rows)


def _refit_like(axes: AxisSet) -> dict:
    """`fit_from_result` arguments that refit answers read the way of `axes` with their estimators."""
    return {k: v for k, v in fitted_like(axes).items() if k == "estimator"}


def calibrate_sets(
    ws: Workspace,
    *,
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
    like: AxisSet | None = None,
) -> dict[str, Calibration]:
    """The axes of instruction sets A, B and C read in `context`: the first set calibrated as `calibrate`
    does by default (or fitted like the axes `like`), the others fitted the way the first set's axes were
    (`calibration.fitted_like`: the same reading and estimator per axis), so that the sets' directions lie
    in the same spaces and their cosines compare them."""
    first, *others = INSTRUCTION_SETS
    options = fitted_like(like) if like is not None else {}
    out = {first: calibrate(ws, instruction_set=first, context=context, batch_size=batch_size, **options)}
    same = fitted_like(out[first].axes)
    for s in others:
        out[s] = calibrate(ws, instruction_set=s, context=context, batch_size=batch_size, **same)
    return out


def baseline_snr(values: ArrayLike) -> float:
    """Baseline signal-to-noise of a questions x seeds matrix of normalised projections.

    snr = std over questions (ddof=1) of the per-question seed mean / mean over questions of the std across
    seeds (ddof=1): does the axis separate questions by more than sampling noise? Zero noise gives inf (NaN
    with no signal either); a NaN value gives NaN, so the dead-zone severity skips the component.
    """
    m = np.asarray(values, dtype=float)
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 2:
        raise ValueError(f"values must be a questions x seeds matrix of at least 2 x 2, got shape {m.shape}")
    signal, noise = m.mean(axis=1).std(ddof=1), m.std(axis=1, ddof=1).mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(signal / noise)


def baseline_retest(
    icc: pd.DataFrame, projections: Mapping[int, np.ndarray], names: Sequence[str]
) -> pd.DataFrame:
    """Per axis: the baseline's ICC(2,1) across seeds with its CI (`icc`, as notebook 02 computed it) and the
    `baseline_snr` of the questions x seeds matrix of unclipped projections
    (`projections`: seed -> [questions, axes]); snr is NaN with one seed."""
    out = icc.reindex(index=list(names), columns=["icc", "ci_low", "ci_high"]).astype(float)
    out = out.rename(columns={"icc": "baseline_icc"}).rename_axis("axis")
    snr = []
    for i in range(len(names)):
        matrix = np.column_stack([values[:, i] for values in projections.values()])
        matrix = matrix[np.isfinite(matrix).all(axis=1)]
        snr.append(baseline_snr(matrix) if matrix.shape[1] > 1 else np.nan)
    out["snr"] = snr
    return out


def run(
    ws: Workspace,
    *,
    seeds: Sequence[int] | None = None,
    benchmark_seeds: Sequence[int] = (0, 1, 2),
    convergence_sizes: Sequence[int] = (5, 10, 15, 20, 30),
    n_repeats: int = 20,
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
) -> StabilityResult:
    """Axes of instruction sets A, B and C (read in `context`) compared on set A's held-out answers and on
    the baseline answers of the first seed; convergence of set A's axes with the number of calibration
    questions; test-retest reliability of the baseline (notebook 02's ICC, whose `seeds` these must be;
    None: its seeds) and of the instruction benchmark's answers (`benchmark_seeds`; F-based intervals).
    Each axis carries set A's held-out validation status (`validity.heldout_status`)."""
    stored = BaselineResult.load(ws)
    seeds = list(stored.seeds if seeds is None else seeds)
    if seeds != list(stored.seeds):
        raise UsageError(
            f"notebook 02 measured the baseline ICC over seeds {stored.seeds}, not {seeds}: give its seeds"
        )
    cal = calibrate_sets(ws, context=context, batch_size=batch_size)
    standard = cal["A"].axes
    names = standard.names
    runs = baseline(
        ws,
        seeds=tuple(seeds),
        batch_size=batch_size,
        aggregation=readings_for(*(c.axes for c in cal.values())),
    )
    first = runs[seeds[0]]
    subsets = convergence(cal["A"].result, standard, convergence_sizes, n_repeats=n_repeats)
    shifts = benchmark.shifts(ws, standard, seeds=benchmark_seeds, context=context, batch_size=batch_size)
    retest = baseline_retest(
        stored.icc, {s: standard.project(standard.states(r), clip=False) for s, r in runs.items()}, names
    ).join(benchmark.retest_icc(shifts).add_prefix("benchmark_"))
    held_out = cal["A"].grid or cal["A"].result  # set A's evaluation answers, read every way the sets need
    return StabilityResult(
        profile=ws.profile.name,
        set_accuracy=pd.concat(
            {s: heldout_scores(c.axes, held_out)["pairwise_accuracy"] for s, c in cal.items()}, axis=1
        ),
        set_cosines=set_cosines({s: c.axes for s, c in cal.items()}),
        baseline_projection_r=projection_agreement(
            {
                s: pd.DataFrame(c.axes.project(c.axes.states(first), clip=False), columns=names)
                for s, c in cal.items()
            }
        ),
        convergence=subsets.groupby(["n", "axis"], as_index=False)[["cosine", "pairwise_accuracy"]].mean(),
        retest=retest,
        validation=heldout_status(cal["A"].evaluation),
        seeds=seeds,
        n_repeats=n_repeats,
        subsets=subsets,
    )


@dataclass
class StabilityResult(Result):
    """Notebook 07: agreement of the calibration sets, convergence and test-retest reliability."""

    name: ClassVar[str] = "stability"
    notebook: ClassVar[str] = "07_stability"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "baseline")

    profile: str
    set_accuracy: pd.DataFrame  # per axis, per set A/B/C: held-out pairwise accuracy on set A's answers
    set_cosines: pd.DataFrame  # per axis: cosine of each pair of sets ("A~B", ...) and their mean
    baseline_projection_r: pd.DataFrame  # per axis: Pearson r of the baseline projections, pairs and mean
    convergence: pd.DataFrame  # per (n, axis): mean cosine to the full axis and held-out accuracy
    retest: pd.DataFrame  # per axis: baseline_icc, ci_low, ci_high, snr, benchmark_icc, benchmark_ci_...
    validation: pd.Series  # per axis: set A's held-out status, "valid", "chance" or "weak" (validity)
    seeds: list[int]  # the baseline's
    n_repeats: int  # random subsets per convergence size
    subsets: InitVar[pd.DataFrame | None] = None  # every subset's convergence row; this run only, not saved

    def __post_init__(self, subsets: pd.DataFrame | None) -> None:
        self.subsets = subsets

    def marked(self, name: str) -> str:
        """The axis name, marked (`validity.mark`) when set A's axis failed held-out validation: for tables
        and figures."""
        return mark(name, self.validation.get(name) == "valid")

    def paper(self) -> dict:
        cosine = self.set_cosines["mean"]
        by_size = self.convergence.groupby("n")[["cosine", "pairwise_accuracy"]].mean()
        return {
            "profile": self.profile,
            "set_accuracy_mean": self.set_accuracy.mean().to_dict(),
            "mean_set_cosine": cosine.mean(),
            "min_set_cosine_axis": axis_label(self.marked(cosine.idxmin())),
            "min_set_cosine": cosine.min(),
            "max_set_cosine_axis": axis_label(self.marked(cosine.idxmax())),
            "max_set_cosine": cosine.max(),
            "mean_projection_r": self.baseline_projection_r["mean"].mean(),
            "convergence_smallest_n": int(by_size.index.min()),
            "convergence_largest_n": int(by_size.index.max()),
            "convergence_cosine_smallest": by_size["cosine"].iloc[0],
            "convergence_cosine_largest": by_size["cosine"].iloc[-1],
            "convergence_accuracy_smallest": by_size["pairwise_accuracy"].iloc[0],
            "convergence_accuracy_largest": by_size["pairwise_accuracy"].iloc[-1],
            "n_repeats": self.n_repeats,
            "mean_baseline_icc": self.retest["baseline_icc"].mean(),
            "mean_benchmark_icc": self.retest["benchmark_icc"].mean(),
            "mean_snr": self.retest["snr"].mean(),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        sets = (
            self.set_accuracy.add_prefix("acc. ")
            .join(self.set_cosines.add_prefix("cos "))
            .join(self.baseline_projection_r[["mean"]].add_prefix("r "))
        )
        retest = self.retest[["baseline_icc", "ci_low", "ci_high", "snr", "benchmark_icc"]]
        names = {
            "baseline_icc": "baseline ICC",
            "ci_low": "low",
            "ci_high": "high",
            "benchmark_icc": "benchmark ICC",
        }
        return {
            "stability_sets_table": PaperTable(sets.rename(index=self.marked), index_name="axis"),
            "retest_table": PaperTable(retest.rename(index=self.marked), columns=names, index_name="axis"),
        }
