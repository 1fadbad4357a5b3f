"""The fingerprint: a model's default answers (no system prompt) to the baseline questions, projected on
its axes. The command line (`styleprobe fingerprint`) and notebook 02 both compute it here (`run`), and both
save it as a `BaselineResult`: its default style, test-retest reliability and dimensionality."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.extraction import Aggregation, Reading
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, run_stage
from styleprobe.protocol.axes import AxisSet, axes_id
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.reading import default_thinking
from styleprobe.protocol.runs import Session
from styleprobe.protocol.validity import heldout_status, mark
from styleprobe.result import PaperTable, Result, axis_label, axis_list


def stored_baseline_seeds(ws: Session, profile: Profile | None = None) -> tuple[int, ...] | None:
    """The seeds of the largest default baseline run already in the run store (None if there is none), so
    that a later reader reuses notebook 02's answers instead of generating new ones."""
    profile = profile or ws.profile
    runs = ws.runs.baseline_seeds(profile.name, default_thinking(ws.model, None))
    return max(runs, key=len) if runs else None


def baseline(
    ws: Session,
    *,
    seeds: tuple[int, ...] | None = None,
    aggregation: Reading = Aggregation(),
    sampling: SamplingConfig | None = None,
    batch_size: int | None = None,
    thinking: bool | None = None,
    system: str | None = None,
    profile: Profile | None = None,
    progress: bool = True,
    on_progress: Callable[[float], None] | None = None,
) -> dict[int, StageResult]:
    """The model's default answers (no system prompt) to the baseline questions, once per seed.

    All seeds run as one stage so they share batches; an answer's sampling key depends only on its seed
    and question, so seed 0 gives the same answers whichever other seeds run beside it. With `system`, the
    answers are written under that system prompt (e.g. to check that `styleprobe compare` sees a style
    shift) and read without it, like calibration answers. `profile` replaces the workspace's; `on_progress`
    is called with the share answered (`run_stage`). With `aggregation` Readings (an axis set's `reading()`,
    or several sets' together, `readings_for`), the answers are the default stage's, re-read at the blocks
    they need."""
    handle, profile = ws.model, profile or ws.profile
    sampling = sampling or SamplingConfig(profile.baseline_tokens)
    seeds = tuple(seeds if seeds is not None else profile.seeds)
    thinking = default_thinking(handle, thinking)
    questions = ws.protocol.questions.baseline[: profile.n_baseline]
    items = [
        Item(f"seed-{s}/baseline/{i:02d}", q, system, meta={"q_index": i, "seed": s}, seed=s)
        for s in seeds
        for i, q in enumerate(questions)
    ]
    result = run_stage(
        handle,
        ws.runs.baseline(profile.name, seeds, thinking, system),
        items,
        sampling,
        aggregation,
        batch_size=batch_size,
        thinking=thinking,
        read_with_system=system is None,
        desc="baseline",
        progress=progress,
        on_progress=on_progress,
    )
    seed_col = result.records["seed"].to_numpy()
    return {s: result.select(seed_col == s) for s in seeds}


def project_results(
    axes: AxisSet, results: dict[int, StageResult], model_id: str, clip: bool | None = None
) -> pd.DataFrame:
    """Long table of normalised projections (clipped to [-1, 1] by `clip`, default the normalisation's
    convention, `AxisSet.clips`): one row per (seed, question), one column per axis. Empty and
    whitespace-only answers get NaN projections (kept, flagged, never averaged in). The last two columns name
    what was projected: `model_id` (the model that answered; "" when not given) and `axes_id`
    (`styleprobe.protocol.axes.axes_id` of `axes`)."""
    identity = axes_id(axes)
    frames = []
    for seed, res in results.items():
        values = axes.project(axes.states(res), model_id, clip=clip)
        silent = res.records["empty"].to_numpy(bool) | (res.records["n_measured"] == 0).to_numpy()
        values[silent] = np.nan
        frame = pd.DataFrame(values, columns=axes.names)
        frame.insert(0, "seed", seed)
        frame.insert(1, "q_index", res.records["q_index"].to_numpy())
        frame["n_tokens"] = res.records["n_tokens"].to_numpy()
        frame["model_id"] = model_id if model_id is not None else ""
        frame["axes_id"] = identity
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


NEUTRAL_COLUMNS = ("neutral", "obey_positive", "obey_negative")
POLES, SPREADS = "poles", "spreads"
"""The units of a position: half the held-out pole separation (the crossfit scale), or the held-out
within-pole spread (`AxisSet.in_spreads`)."""


def mean_variance(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The variance of the grand mean of a [..., questions, seeds] matrix and its degrees of freedom, with
    questions and seeds both random, so a seed that shifts a whole run counts: (MS_R + MS_C) / (n k) from the
    two-way ANOVA on Satterthwaite's degrees of freedom. MS_C is not reduced by MS_E (which would be
    unbiased): the seeds' part rests on k - 1 degrees of freedom, and with 3 seeds the unbiased form covered
    0.92-0.93 under seed offsets of sd 0.3 (notebook 12's fitted axes), this one 0.94-0.95. With one seed,
    var(rows) / n and n - 1: a run's own offset cannot be told from the style then (notebook 12 measures
    what that costs)."""
    n, k = matrix.shape[-2:]
    ms_r = k * matrix.mean(-1).var(-1, ddof=1)
    if k == 1:
        return ms_r / n, np.full(ms_r.shape, n - 1.0)[()]
    ms_c = n * matrix.mean(-2).var(-1, ddof=1)
    df = (ms_r + ms_c) ** 2 / (ms_r**2 / (n - 1) + ms_c**2 / (k - 1))
    return (ms_r + ms_c) / (n * k), df


def position_ci(
    mean: np.ndarray,
    var_mean: np.ndarray,
    df_mean: np.ndarray,
    scale: np.ndarray,
    spread: np.ndarray,
    errors: np.ndarray,
    in_poles: np.ndarray,
    ci: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A position with its `ci` interval, in pole units where `in_poles`, else in within-pole spreads; the
    interval carries the error of the fitted centre and scale. `mean` is the mean normalised projection
    (pole units) with variance `var_mean` on `df_mean` degrees of freedom (`mean_variance`); `scale`,
    `spread` and `errors` (`AxisSet.errors`: var centre, var scale, their covariance, n questions) are the
    axis's. In raw units the position is (m - c) / d with d the scale or the spread: Fieller's interval
    (`stats.ratio_ci`) of that ratio, with var(m - c) = var(m) + var(c), var(d) = var(scale) (poles) or
    spread² / (2 (2n - 2)) (spreads, the pooled standard deviation of 2n answers), cov(m - c, d) = -cov(c,
    scale) (poles) or 0, on Satterthwaite's degrees of freedom. Vectorised over arrays (broadcast)."""
    var_c, var_s, cov_cs, n_cal = np.moveaxis(np.asarray(errors, dtype=float), -1, 0)
    offset, var_offset = scale * mean, scale**2 * var_mean
    den = np.where(in_poles, scale, spread)
    var_den = np.where(in_poles, var_s, spread**2 / (2 * np.maximum(2 * n_cal - 2, 1)))
    cov = np.where(in_poles, -cov_cs, 0.0)
    point = offset / den
    calibration = np.clip(var_c + point**2 * var_den - 2 * point * cov, 0, None)
    df = (var_offset + calibration) ** 2 / (
        var_offset**2 / df_mean + calibration**2 / np.maximum(n_cal - 1, 1)
    )
    low, high = stats.ratio_ci(offset, den, var_offset + var_c, var_den, cov, df, ci)
    return point, low, high


def _validation(axes: AxisSet) -> dict[str, str]:
    """Per axis, its held-out status from the accuracy its calibration recorded (today's rule), or the status
    recorded with it, or "unknown"."""
    table = pd.DataFrame.from_dict(axes.calibration, orient="index")
    if "accuracy_ci_low" in table:
        return heldout_status(table).to_dict()
    return {n: axes.calibration.get(n, {}).get("validation", "unknown") for n in axes.names}


def position_units(axes: AxisSet, validation: dict[str, str]) -> list[str]:
    """Per axis, the unit its position is given in: POLES on a validated axis whose scale is not the floor,
    else SPREADS (the floor, or the pole separation of an axis that fails, is no unit); axes without a
    measured spread keep their normalisation's unit (its name, or POLES under crossfit)."""
    units = []
    for i, name in enumerate(axes.names):
        if axes.spreads is None:
            units.append(POLES if axes.normalisation == "crossfit" else axes.normalisation)
        else:
            units.append(POLES if validation.get(name) == "valid" and not axes.floored[i] else SPREADS)
    return units


def fingerprint_table(projections: pd.DataFrame, axes: AxisSet) -> pd.DataFrame:
    """Per axis: the position (mean over questions of the seed-averaged projection) in its unit
    (`position_units`: POLES on a validated axis whose scale is not the floor, else SPREADS) with its 95 %
    interval (`position_ci`: it carries the seeds' offsets when there are several, and the error of the
    fitted centre and scale when the axes recorded it, `AxisSet.errors`), the std over questions in that
    unit, the share of answers at or beyond ±1 (POLES only), and, beside the position, what the calibration
    measured for the axis: the neutral control's position and each pole's obedience
    (`calibration.neutral_control`; POLES only, NaN for axes calibrated without it) and the held-out
    validation status (`validity.heldout_status`)."""
    per_question = projections.groupby("q_index")[axes.names].mean()
    validation = _validation(axes)
    units = position_units(axes, validation)
    errors = (
        axes.errors if axes.errors is not None else np.tile([0.0, 0.0, 0.0, np.inf], (len(axes.names), 1))
    )
    rows = []
    for i, name in enumerate(axes.names):
        v = per_question[name].dropna().to_numpy()
        matrix = projections.pivot_table(index="q_index", columns="seed", values=name, dropna=False).dropna()
        if len(matrix) < 2:  # a few seeds' answers empty on most questions: the questions' means alone
            matrix = per_question[[name]].dropna()
        var, df = mean_variance(matrix.to_numpy()) if len(matrix) > 1 else (np.nan, np.nan)
        spread = axes.spreads[i] if axes.spreads is not None else np.nan
        to_unit = 1.0 if units[i] != SPREADS else axes.scales[i] / spread
        mean, lo, hi = position_ci(
            np.mean(v) if len(v) else np.nan, var, df, axes.scales[i], spread, errors[i], units[i] != SPREADS
        )
        lo, hi = (lo, hi) if np.isfinite([lo, hi]).all() else (np.nan, np.nan)  # unbounded: no interval
        measured = axes.calibration.get(name, {})
        in_poles = units[i] == POLES
        rows.append(
            {
                "axis": name,
                "mean": float(mean),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "std": float(np.std(v, ddof=1) * to_unit) if len(v) > 1 else np.nan,
                "unit": units[i],
                "beyond_poles": float(np.mean(np.abs(projections[name].dropna()) >= 1))
                if in_poles
                else np.nan,
                "n": len(v),
                **{c: float(measured.get(c, np.nan)) if in_poles else np.nan for c in NEUTRAL_COLUMNS},
                "validation": validation.get(name, "unknown"),
            }
        )
    return pd.DataFrame(rows).set_index("axis")


def retest_icc(projections: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The baseline's test-retest reliability: per axis, ICC(2,1) of the questions x seeds matrix with its
    kurtosis-adjusted F-based 95 % interval (`stats.icc_with_ci`; columns icc, ci_low, ci_high; no rows
    with one seed, where it is undefined). Questions with an empty answer under any seed are left out.

    `projections` must be UNCLIPPED (`project_results(..., clip=False)`): clipping to [-1, 1] squeezes the
    questions that sit beyond a pole onto it, which shrinks the between-question variance the ICC compares
    with the seed noise, so an axis near its pole would look less reliable than it is."""
    rows = {}
    if projections["seed"].nunique() > 1:
        for name in names:
            matrix = projections.pivot(index="q_index", columns="seed", values=name).dropna().to_numpy()
            rows[name] = stats.icc_with_ci(matrix)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["icc", "ci_low", "ci_high"])


def summarise(
    axes: AxisSet,
    results: dict[int, StageResult],
    model_id: str,
    *,
    profile: Profile,
) -> BaselineResult:
    """The BaselineResult of baseline answers (`results`, by seed) projected on `axes`: the fingerprint
    table, the retest ICC, the axes' correlation across questions and its spectrum, and the axes' poles and
    cosines. Axes whose per-question values do not vary are left out of the correlation and the spectrum."""
    projections = project_results(axes, results, model_id)
    per_question = projections.groupby("q_index")[axes.names].mean()
    usable = [n for n in axes.names if per_question[n].nunique() > 1]
    matrix = per_question[usable].to_numpy()
    several = len(usable) > 1  # a correlation spectrum needs two axes
    return BaselineResult(
        profile=profile.name,
        seeds=list(results),
        model_id=model_id,
        axes_id=axes_id(axes),
        fingerprint=fingerprint_table(projections, axes),
        icc=retest_icc(project_results(axes, results, model_id, clip=False), axes.names),
        normalisation=axes.normalisation,
        behavioural_correlation=per_question[usable].corr(),
        pc1_share=stats.pc1_share(matrix) if several else np.nan,
        participation_ratio=stats.participation_ratio(matrix) if several else np.nan,
        eigenvalues=np.linalg.eigvalsh(np.corrcoef(matrix, rowvar=False))[::-1].tolist() if several else [],
        per_question=per_question,
        n_empty=int(projections[axes.names].isna().any(axis=1).sum()),
        n_cut=int(sum((~r.records["finished"].astype(bool)).sum() for r in results.values())),
        baseline_tokens=profile.baseline_tokens,
        poles={name: list(pair) for name, pair in zip(axes.names, axes.poles, strict=True)},
        axis_cosines=pd.DataFrame(axes.cosine_matrix(), index=axes.names, columns=axes.names),
        per_seed=projections[["seed", "q_index", *axes.names]],
    )


def run(
    ws: Session,
    *,
    axes: AxisSet | None = None,
    seeds: Sequence[int] | None = None,
    batch_size: int | None = None,
    system: str | None = None,
    progress: bool = True,
) -> BaselineResult:
    """The model's fingerprint on `axes` (None: the workspace's, `ws.axes()`): its default answers under
    `seeds` (None: the profile's), projected and summarised (`summarise`). `system`: answers written
    under that system prompt instead (see `baseline`)."""
    axes = axes if axes is not None else ws.axes()
    results = baseline(
        ws,
        seeds=None if seeds is None else tuple(seeds),
        aggregation=axes.reading(),
        batch_size=batch_size,
        system=system,
        progress=progress,
    )
    return summarise(axes, results, ws.model.model_id, profile=ws.profile)


def beyond_poles_sentence(beyond: pd.Series) -> str:
    """The paper's sentence on how far out the default answers lie, from `beyond_poles` of the validated axes
    whose position is in pole units (on any other axis ±1 is not where the instructed answers land)."""
    if beyond.empty:
        return (
            "No validated axis has a pole unit, so how far the default answers lie relative to the"
            " instructed ones is not stated."
        )
    return (
        f"At most {round(100 * beyond.max())} % of the answers on any validated axis lie at or beyond"
        " +1 or -1, further than the instructed answers land on average."
    )


@dataclass
class BaselineResult(Result):
    """Notebook 02 and `styleprobe fingerprint`: the default style, its reliability and dimensionality."""

    name: ClassVar[str] = "baseline"
    notebook: ClassVar[str] = "02_baseline"
    needs: ClassVar[tuple[str, ...]] = ("calibration",)

    profile: str
    seeds: list[int]
    model_id: str
    axes_id: str  # `styleprobe compare` refuses fingerprints made with other axes
    fingerprint: (
        pd.DataFrame
    )  # per axis (`fingerprint_table`): position, CI, std, neutral control, validation
    icc: pd.DataFrame  # test-retest ICC(2,1) per axis over seeds, unclipped projections (`retest_icc`)
    behavioural_correlation: pd.DataFrame
    pc1_share: float
    participation_ratio: float
    eigenvalues: list[float]
    per_question: pd.DataFrame  # per question (rows) and axis: the projection averaged over seeds
    n_empty: int
    baseline_tokens: int  # the answers' token budget
    poles: dict  # per axis: its positive and negative pole's names
    axis_cosines: pd.DataFrame  # cosines between the axis vectors
    normalisation: str = "crossfit"  # of the axes: what 0 and ±1 mean (`protocol.axes.centre_and_scale`)
    n_cut: int = 0  # answers that ran into the token budget (`baseline_tokens`) instead of ending
    # per answer: seed, q_index and its normalised projection per axis (NaN: empty), for `compare` to treat
    # seeds as a random effect; empty in results written before it was recorded
    per_seed: pd.DataFrame = field(default_factory=pd.DataFrame)

    def validated(self) -> list[str]:
        """The axes that passed held-out validation (`validity.heldout_status`): the only ones conclusions
        are drawn from."""
        return list(self.fingerprint.index[self.fingerprint["validation"] == "valid"])

    def leaning(self, dead: Sequence[str] = ()) -> dict[str, str]:
        """{axis: the pole the model leans to} for each validated axis not in `dead` whose CI excludes 0."""
        return {
            n: self.poles[n][0] if row.ci_low > 0 else self.poles[n][1]
            for n, row in self.fingerprint.loc[self.validated()].iterrows()
            if (row.ci_low > 0 or row.ci_high < 0) and n not in dead
        }

    def leans(self) -> list[str]:
        """The poles the model leans to: one per validated axis whose CI excludes 0."""
        return list(self.leaning().values())

    def paper(self) -> dict:
        table, behaviour, icc = self.fingerprint, self.behavioural_correlation, self.icc
        usable = list(behaviour.index)
        pairs = behaviour.where(np.triu(np.ones(behaviour.shape, dtype=bool), k=1)).stack().dropna()
        top_pair = pairs.abs().idxmax() if len(pairs) else None  # the most correlated pair of axes
        leans, validated = self.leans(), self.validated()

        def named(axis: str) -> str:  # the paper's label, marked when the axis failed validation
            return mark(axis_label(axis), axis in validated)

        in_poles = [
            n for n in validated if table.loc[n].get("unit", POLES) == POLES
        ]  # one unit to compare in
        strongest = table.loc[in_poles, "mean"].abs().idxmax() if in_poles else None
        numbers = {
            "profile": self.profile,
            "n_baseline": len(self.per_question),
            "baseline_tokens": self.baseline_tokens,
            "n_seeds": len(self.seeds),
            "n_answers": len(self.seeds) * len(self.per_question),
            "n_empty": self.n_empty,
            "n_cut": self.n_cut,
            "cut_percent": round(100 * self.n_cut / max(1, len(self.seeds) * len(self.per_question))),
            "fingerprint": table[["mean", "ci_low", "ci_high", "std"]].to_dict(orient="index"),
            "normalisation": self.normalisation,
            "n_validated": len(validated),
            "n_not_interpreted": len(table) - len(validated),
            "not_interpreted": axis_list(n for n in table.index if n not in validated),
            "n_axes_ci_excluding_zero": len(leans),
            "leans": ", ".join(leans) or "none",
            "strongest_axis": axis_label(strongest) if strongest else "none",
            "strongest_mean": table["mean"].loc[strongest] if strongest else np.nan,
            "beyond_poles": beyond_poles_sentence(table.loc[in_poles, "beyond_poles"]),
            "pc1_percent": round(100 * self.pc1_share) if np.isfinite(self.pc1_share) else np.nan,
            "participation_ratio": self.participation_ratio,
            "n_usable_axes": len(usable),
            "top_pair": " and ".join(named(n) for n in top_pair) if top_pair else "none",
            "top_pair_r": pairs.loc[top_pair] if top_pair else np.nan,
            "top_pair_cosine": self.axis_cosines.loc[top_pair] if top_pair else np.nan,
        }
        if len(icc):
            numbers |= {
                "icc": icc.to_dict(orient="index"),
                "mean_icc": icc["icc"].mean(),
                "min_icc_axis": named(icc["icc"].idxmin()),
                "min_icc": icc["icc"].min(),
                "max_icc_axis": named(icc["icc"].idxmax()),
                "max_icc": icc["icc"].max(),
            }
        return numbers

    def paper_tables(self) -> dict[str, PaperTable]:
        table = self.fingerprint
        units = ["unit"] if "unit" in table else []  # absent from results saved before it was recorded
        shown = table[["mean", "ci_low", "ci_high", "std", *units, *NEUTRAL_COLUMNS]]
        if len(self.icc):
            shown = shown.join(self.icc.add_prefix("ICC "))
        valid = set(self.validated())
        shown = shown.rename(index={n: mark(n, n in valid) for n in shown.index})
        columns = {
            "mean": "position",
            "ci_low": "CI low",
            "ci_high": "CI high",
            "obey_positive": "obey +",
            "obey_negative": "obey -",
            "ICC icc": "ICC(2,1)",
            "ICC ci_low": "ICC low",
            "ICC ci_high": "ICC high",
        }
        return {"baseline_fingerprint_table": PaperTable(shown, columns=columns, index_name="axis")}
