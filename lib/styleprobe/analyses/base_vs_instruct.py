"""Compare two models measured with the same protocol (a base model and an instruction-tuned one).

Per-item correctness: an evaluation question of an axis counts as correct for a model when its answer
under the positive-pole instruction projects above its answer under the negative-pole instruction (both
on that model's own axis). Both models answer the same evaluation questions, so their correctness is
paired item by item and compared with McNemar's exact test. Baseline variability is the standard deviation
across baseline questions of the seed-averaged, unclipped projection, in two units of each model's own
axes: the normalised unit (half the held-out pole separation under the crossfit normalisation), which
shrinks a model's variability as its instructions move answers further apart, and the held-out within-pole
spread (`AxisSet.in_spreads`), which does not depend on how far the instructions move answers. Two models
with the same spread of default answers but different pole separations have a spread-unit ratio near 1 and
a pole-unit ratio far from it; the variability conclusions rest on the spread unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe import stats
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import Calibration, calibrate
from styleprobe.protocol.fingerprint import baseline
from styleprobe.protocol.validity import mark, valid_axes
from styleprobe.result import PaperTable, Result, axis_list

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

ROLES = ("base", "instruct")


def evaluation_items(cal: Calibration) -> pd.DataFrame:
    """One row per (axis, evaluation question): the positive and the negative answer's unclipped
    projection and whether the pair is ordered correctly (NaN when either answer is empty)."""
    rec = cal.result.records
    values = cal.axes.project(cal.axes.states(cal.result), clip=False)
    values[_silent(cal.result)] = np.nan
    column = rec["axis"].map({name: i for i, name in enumerate(cal.axes.names)}).to_numpy()
    frame = rec[["axis", "q_index", "pole"]].assign(value=values[np.arange(len(rec)), column])
    frame = frame[(rec["split"] == "evaluation").to_numpy()]
    wide = frame.pivot_table(index=["axis", "q_index"], columns="pole", values="value", dropna=False)
    wide = wide.rename(columns={1: "positive", -1: "negative"})[["positive", "negative"]]
    wide.columns.name = None
    both = wide.notna().all(axis=1)
    wide["correct"] = (wide["positive"] > wide["negative"]).where(both)
    return wide.reset_index()


def mcnemar(first: pd.Series | np.ndarray, second: pd.Series | np.ndarray) -> dict:
    """McNemar's exact test on paired booleans (NaN pairs dropped): two-sided binomial test of the
    discordant pairs, `only_first` of `only_first + only_second`, against 1/2."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.shape} vs {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep].astype(bool), b[keep].astype(bool)
    only_first, only_second = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_first + only_second
    p = scipy.stats.binomtest(only_first, discordant, 0.5).pvalue if discordant else 1.0
    return {
        "n_pairs": int(keep.sum()),
        "both_correct": int(np.sum(a & b)),
        "only_first": only_first,
        "only_second": only_second,
        "neither": int(np.sum(~a & ~b)),
        "p_value": float(p),
    }


def separability(items: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per axis: share of evaluation questions ordered correctly, and whether that share is above 1/2
    (one-sided exact binomial test at `alpha`)."""
    rows = {}
    for name, group in items.groupby("axis", sort=False):
        correct = group["correct"].dropna().astype(bool)
        k, n = int(correct.sum()), len(correct)
        p = scipy.stats.binomtest(k, n, 0.5, alternative="greater").pvalue if n else np.nan
        rows[name] = {
            "correct": k,
            "n": n,
            "share": k / n if n else np.nan,
            "p_value": p,
            "separable": p < alpha,
        }
    frame = pd.DataFrame(rows).T
    return frame.astype({"correct": int, "n": int, "share": float, "p_value": float, "separable": bool})


UNITS = ("poles", "spreads")
"""Units of baseline variability: the normalised unit (pole separation) or the within-pole spread."""


def _silent(result: StageResult) -> np.ndarray:
    """Answers without visible text (empty or whitespace only), left out of every statistic."""
    return result.records["empty"].to_numpy(bool) | (result.records["n_measured"] == 0).to_numpy()


def question_means(
    axes: AxisSet, results: dict[int, StageResult], model_id: str, unit: str = "poles"
) -> pd.DataFrame:
    """Baseline questions x axes: unclipped projections averaged over seeds (empty answers left out), in
    the axes' normalised unit (`unit="poles"`) or in within-pole spreads (`"spreads"`)."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    frames = []
    for seed, res in results.items():
        raw = axes.project_raw(axes.states(res), model_id)
        values = axes.normalise(raw, clip=False) if unit == "poles" else axes.in_spreads(raw)
        values[_silent(res)] = np.nan
        frame = pd.DataFrame(values, columns=axes.names).assign(seed=seed)
        frames.append(frame.assign(q_index=res.records["q_index"].to_numpy()))
    return pd.concat(frames).groupby("q_index")[axes.names].mean()


def _std_ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    low = np.std(denominator, ddof=1)
    return float(np.std(numerator, ddof=1) / low) if low > 0 else np.nan


def std_ratio(numerator: np.ndarray, denominator: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """std(numerator) / std(denominator) over paired questions, with the Pitman-Morgan 95 % interval for
    the ratio of two correlated standard deviations: with F the variance ratio, r the correlation of the
    pairs and t the t quantile at n - 2 degrees of freedom, K = 1 + 2 (1 - r²) t² / (n - 2) and the
    ratio² lies in F (K ± √(K² - 1)). Notebook 12 measures its coverage (a BCa bootstrap covered 0.92 at
    15 questions)."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    keep = np.isfinite(num) & np.isfinite(den)
    num, den = num[keep], den[keep]
    n = len(num)
    if n < 3:
        raise ValueError(f"a std ratio needs at least 3 paired questions, got {n}")
    ratio = _std_ratio(num, den)
    if not np.isfinite(ratio) or ratio == 0:
        return ratio, np.nan, np.nan
    r = np.corrcoef(num, den)[0, 1] if np.ptp(num) > 0 and np.ptp(den) > 0 else 0.0
    t = scipy.stats.t.ppf((1 + ci) / 2, n - 2)
    k = 1 + 2 * (1 - r**2) * t**2 / (n - 2)
    spread = np.sqrt(max(k**2 - 1, 0.0))
    return ratio, float(ratio * np.sqrt(k - spread)), float(ratio * np.sqrt(k + spread))


def variability_table(base: pd.DataFrame, instruct: pd.DataFrame) -> pd.DataFrame:
    """Per axis: std across questions of each model (both in one unit, see `question_means`), the ratio
    instruct/base with its bootstrap CI, and whether instruction tuning lowers (CI below 1) or raises (CI
    above 1) the variability."""
    rows = {}
    for name in instruct.columns:
        ratio, lo, hi = std_ratio(instruct[name], base[name])
        change = "lower" if hi < 1 else "higher" if lo > 1 else "no clear change"
        rows[name] = {
            "std_base": float(base[name].std()),
            "std_instruct": float(instruct[name].std()),
            "ratio": ratio,
            "ci_low": lo,
            "ci_high": hi,
            "after_tuning": change,
        }
    return pd.DataFrame(rows).T.astype(
        {k: float for k in ("std_base", "std_instruct", "ratio", "ci_low", "ci_high")}
    )


def effective_dimensionality(per_question: pd.DataFrame) -> dict:
    """Participation ratio and PC1 share of the questions x axes matrix (constant axes left out)."""
    usable = [c for c in per_question.columns if per_question[c].dropna().nunique() > 1]
    matrix = per_question[usable].dropna().to_numpy()
    return {
        "participation_ratio": stats.participation_ratio(matrix),
        "pc1_share": stats.pc1_share(matrix),
        "n_axes": len(usable),
        "n_questions": len(matrix),
    }


def separation_change(base: pd.DataFrame, instruct: pd.DataFrame) -> pd.Series:
    """Per axis, from two `separability` tables: separable only after tuning, in both, in neither, or
    only in the base model."""
    labels = {
        (False, True): "only after tuning",
        (True, True): "both",
        (False, False): "neither",
        (True, False): "only base",
    }
    pairs = zip(
        base["separable"].astype(bool), instruct.loc[base.index, "separable"].astype(bool), strict=True
    )
    return pd.Series([labels[p] for p in pairs], index=base.index, name="separable")


def family(handle: ModelHandle) -> str:
    """The model's architecture family (`model_type` of its text config, e.g. `qwen2`)."""
    return handle.model.config.get_text_config().model_type


@dataclass
class BaseVsInstructResult(Result):
    """Notebook 03: a base model and an instruction-tuned one under the same protocol. Saved with the
    instruct model's results."""

    name: ClassVar[str] = "base_vs_instruct"
    notebook: ClassVar[str] = "03_base_vs_instruct"

    base_model: str  # model ids
    instruct_model: str
    base_slug: str  # the base model as its files (and the paper) name it
    same_family: bool  # same architecture family and shape: the first requirement of a true pair
    families: dict  # by role
    profile: str
    seeds: list[int]
    alpha: float  # level of the separability and McNemar tests
    evaluation: dict  # by role: a frame of held-out statistics per axis
    per_item_correctness: dict  # by role: a `separability` frame
    mcnemar_pooled: dict  # `mcnemar` of all axes' items, base first
    mcnemar_per_axis: pd.DataFrame
    variability: pd.DataFrame  # `variability_table` in within-pole spreads: the one conclusions rest on
    variability_poles: pd.DataFrame  # the same in the axes' normalised unit (confounded with separation)
    validated: list[str]  # axes that pass held-out validation in both models (`validity.valid_axes`)
    dimensionality: pd.DataFrame  # by role: `effective_dimensionality`
    summary: pd.DataFrame  # per axis: separable, variability (spread unit), std ratio in both units
    lower_variability_after_tuning: list[str]
    higher_variability_after_tuning: list[str]
    separable_only_after_tuning: list[str]

    def __post_init__(self) -> None:
        for name in ("evaluation", "per_item_correctness"):  # frames again when read from JSON
            frames = {
                role: f if isinstance(f, pd.DataFrame) else pd.DataFrame.from_dict(f, orient="index")
                for role, f in getattr(self, name).items()
            }
            setattr(self, name, frames)

    def pair_caveat(self) -> str:
        """What the comparison can isolate, from whether the two models are of one family and shape."""
        base, instruct = self.families["base"], self.families["instruct"]
        if not self.same_family:
            return (
                f"The base model, {self.base_slug} ({base}), is of another family or shape than the instruct"
                f" model ({instruct}), so the comparison mixes instruction tuning with differences of"
                " architecture, tokenizer and data; a true pair (an instruct model and its own base, such as"
                " Qwen2.5-7B and Qwen2.5-7B-Instruct) isolates instruction tuning."
            )
        return (
            f"The base model, {self.base_slug}, has the instruct model's family and shape ({base}); the"
            " comparison isolates instruction tuning only if the instruct model was tuned from this base."
        )

    def paper(self) -> dict:
        def listed(names) -> str:
            return axis_list(names)

        pooled = self.mcnemar_pooled
        return {
            "base_model": self.base_slug,
            "same_family": self.same_family,
            "base_family": self.families["base"],
            "instruct_family": self.families["instruct"],
            "pair_caveat": self.pair_caveat(),
            "profile": self.profile,
            "alpha": self.alpha,
            "mean_accuracy": {role: ev["pairwise_accuracy"].mean() for role, ev in self.evaluation.items()},
            "n_separable": {role: int(f["separable"].sum()) for role, f in self.per_item_correctness.items()},
            "n_items": int(pooled["n_pairs"]),
            "only_base": int(pooled["only_first"]),
            "only_instruct": int(pooled["only_second"]),
            "mcnemar_p": f"{pooled['p_value']:.2g}",
            "n_validated": len(self.validated),
            "not_interpreted": listed(n for n in self.summary.index if n not in self.validated),
            "lower_variability": listed(self.lower_variability_after_tuning),
            "higher_variability": listed(self.higher_variability_after_tuning),
            "separable_only_after": listed(self.separable_only_after_tuning),
            "separable_only_before": listed(self.summary.index[self.summary["separable"] == "only base"]),
            "participation_ratio": self.dimensionality["participation_ratio"].to_dict(),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        accuracy = pd.DataFrame({role: ev["pairwise_accuracy"] for role, ev in self.evaluation.items()})
        ratios = self.variability[["ratio", "ci_low", "ci_high"]].add_prefix("spread ")
        frame = (
            accuracy.add_prefix("acc. ").join(ratios).join(self.variability_poles["ratio"].rename("poles"))
        )
        frame = frame.rename(index={n: mark(n, n in self.validated) for n in frame.index})
        columns = {"spread ratio": "std ratio", "spread ci_low": "low", "spread ci_high": "high"}
        columns["poles"] = "ratio, pole unit"
        return {"base_vs_instruct_table": PaperTable(frame, columns=columns, index_name="axis")}


def run(
    base: Workspace,
    instruct: Workspace,
    *,
    seeds: Sequence[int],
    seed: int = 0,
    alpha: float = 0.05,
    batch_size: int | None = None,
) -> BaseVsInstructResult:
    """Calibrate both models (calibration sampling `seed`), answer the baseline under `seeds`, and compare
    each model on its own axes: held-out separation, per-item correctness paired by McNemar's test,
    baseline variability (std ratio instruct/base with a Pitman-Morgan CI, in within-pole spreads and in the
    pole unit) and effective dimensionality. Variability conclusions are drawn only on axes validated in
    both models."""
    models = dict(zip(ROLES, (base, instruct), strict=True))
    cals = {role: calibrate(ws, seed=seed, batch_size=batch_size) for role, ws in models.items()}
    answers = {
        role: baseline(ws, seeds=tuple(seeds), batch_size=batch_size, aggregation=cals[role].axes.reading())
        for role, ws in models.items()
    }
    per_question = {
        unit: {
            role: question_means(cals[role].axes, answers[role], ws.model.model_id, unit)
            for role, ws in models.items()
        }
        for unit in UNITS
    }
    items = {role: evaluation_items(cal) for role, cal in cals.items()}
    paired = items["base"].merge(items["instruct"], on=["axis", "q_index"], suffixes=("_base", "_instruct"))
    if not len(paired) == len(items["base"]) == len(items["instruct"]):
        raise ValueError("the two models were evaluated on different questions")
    separable = {role: separability(frame, alpha) for role, frame in items.items()}
    per_axis = {
        name: mcnemar(group["correct_base"], group["correct_instruct"])
        for name, group in paired.groupby("axis", sort=False)
    }
    pooled = mcnemar(paired["correct_base"], paired["correct_instruct"])
    variability, variability_poles = (
        variability_table(per_question[unit]["base"], per_question[unit]["instruct"])
        for unit in ("spreads", "poles")
    )
    summary = pd.DataFrame(
        {
            "separable": separation_change(separable["base"], separable["instruct"]),
            "variability": variability["after_tuning"],
            "std_ratio": variability["ratio"],
            "std_ratio_poles": variability_poles["ratio"],
        }
    )
    both_valid = set.intersection(*(set(valid_axes(cal.evaluation)) for cal in cals.values()))
    validated = [n for n in summary.index if n in both_valid]
    interpreted = summary.loc[validated]
    families = {role: family(ws.model) for role, ws in models.items()}
    shapes = {(ws.model.n_layers, ws.model.hidden_size) for ws in models.values()}
    return BaseVsInstructResult(
        base_model=base.model.model_id,
        instruct_model=instruct.model.model_id,
        base_slug=base.slug,
        same_family=len(set(families.values())) == 1 and len(shapes) == 1,
        families=families,
        profile=instruct.profile.name,
        seeds=list(seeds),
        alpha=alpha,
        evaluation={role: cal.evaluation for role, cal in cals.items()},
        per_item_correctness=separable,
        mcnemar_pooled=pooled,
        mcnemar_per_axis=pd.DataFrame(per_axis).T,
        variability=variability,
        variability_poles=variability_poles,
        validated=validated,
        dimensionality=pd.DataFrame(
            {role: effective_dimensionality(pq) for role, pq in per_question["poles"].items()}
        ).T,
        summary=summary,
        lower_variability_after_tuning=interpreted.index[interpreted["variability"] == "lower"].tolist(),
        higher_variability_after_tuning=interpreted.index[interpreted["variability"] == "higher"].tolist(),
        separable_only_after_tuning=summary.index[summary["separable"] == "only after tuning"].tolist(),
    )
