"""The fingerprint: a model's default answers (no system prompt) to the baseline questions, projected on
its axes. The command line (`styleprobe fingerprint`) and notebook 02 both compute it here (`run`), and both
save it as a `BaselineResult`: its default style, test-retest reliability and dimensionality."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from styleprobe.protocol.validity import mark
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
) -> dict[int, StageResult]:
    """The model's default answers (no system prompt) to the baseline questions, once per seed.

    All seeds run as one stage so they share batches; an answer's sampling key depends only on its seed
    and question, so seed 0 gives the same answers whichever other seeds run beside it. With `system`, the
    answers are written under that system prompt (e.g. to check that `styleprobe compare` sees a style
    shift) and read without it, like calibration answers. `profile` replaces the workspace's. With
    `aggregation` Readings (an axis set's `reading()`, or several sets' together, `readings_for`), the
    answers are the default stage's, re-read at the blocks they need."""
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


def fingerprint_table(projections: pd.DataFrame, axes: AxisSet) -> pd.DataFrame:
    """Per axis: the position (mean over questions of the seed-averaged projection) with its 95 % t
    interval over questions (`stats.mean_ci`; BCa covers too little at 15-30 questions, see notebook 12),
    the std over questions, the share of answers at or beyond ±1, and, beside the position, what the
    calibration measured for the axis: the neutral control's position and each pole's obedience
    (`calibration.neutral_control`; NaN for axes calibrated without it) and the held-out validation
    status (`validity.heldout_status`)."""
    per_question = projections.groupby("q_index")[axes.names].mean()
    rows = []
    for name in axes.names:
        v = per_question[name].dropna().to_numpy()
        lo, hi = stats.mean_ci(v)
        measured = axes.calibration.get(name, {})
        rows.append(
            {
                "axis": name,
                "mean": float(np.mean(v)) if len(v) else np.nan,
                "ci_low": lo,
                "ci_high": hi,
                "std": float(np.std(v, ddof=1)) if len(v) > 1 else np.nan,
                "beyond_poles": float(np.mean(np.abs(projections[name].dropna()) >= 1)),
                "n": len(v),
                **{c: float(measured.get(c, np.nan)) for c in NEUTRAL_COLUMNS},
                "validation": measured.get("validation", "unknown"),
            }
        )
    return pd.DataFrame(rows).set_index("axis")


def retest_icc(projections: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The baseline's test-retest reliability: per axis, ICC(2,1) of the questions x seeds matrix with its
    F-based 95 % interval (`stats.icc_with_ci`; columns icc, ci_low, ci_high; no rows with one seed, where
    it is undefined). Questions with an empty answer under any seed are left out.

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

        strongest = table.loc[validated, "mean"].abs().idxmax() if validated else None
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
            "max_beyond_poles_percent": round(100 * table["beyond_poles"].max()),
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
        shown = table[["mean", "ci_low", "ci_high", "std", *NEUTRAL_COLUMNS]]
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
