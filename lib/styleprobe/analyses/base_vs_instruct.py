"""Compare two models measured with the same protocol (a base model and an instruction-tuned one).

Per-item correctness: an evaluation question of an axis counts as correct for a model when its answer
under the positive-pole instruction projects above its answer under the negative-pole instruction (both
on that model's own axis). Both models answer the same evaluation questions, so their correctness is
paired item by item and compared with McNemar's exact test. An axis is separable in a model when it passes
that model's held-out validation (`validity.valid_axes`, the predicate of every table); the per-axis
binomial test of the items (`separability`) is shown beside it and decides nothing. Baseline variability is
the scale across baseline questions of the seed-averaged, unclipped projection (the mean absolute deviation
from the median, whose ratio has an interval that holds for skewed and heavy-tailed questions:
`scale_ratio`), in two units of each model's own axes: the normalised unit (half the held-out pole
separation under the crossfit normalisation), which shrinks a model's variability as its instructions move
answers further apart, and the within-pole spread (`AxisSet.in_spreads`), which does not depend on
how far the instructions move answers. Two models with the same spread of default answers but different
pole separations have a spread-unit ratio near 1 and a pole-unit ratio far from it; the variability
conclusions rest on the spread unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import scipy.stats
from numpy.typing import ArrayLike

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
    (`above_chance`: one-sided exact binomial test at `alpha`). Shown beside validation; it decides
    nothing (separable means validated, `separation_change`)."""
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
            "above_chance": p < alpha,
        }
    frame = pd.DataFrame(rows).T
    return frame.astype({"correct": int, "n": int, "share": float, "p_value": float, "above_chance": bool})


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


def scale_ratio(numerator: ArrayLike, denominator: ArrayLike, ci: float = 0.95) -> tuple[float, float, float]:
    """The ratio of two scales over paired questions, mad(numerator) / mad(denominator) with mad the mean
    absolute deviation from the median, and Bonett and Seier's (2003) `ci` interval for it: log ratio ± t se,
    t at n - 1 degrees of freedom and se² = var(log mad_1) + var(log mad_2) - 2 cov(log mad_1, log mad_2) by
    the delta method from the paired absolute deviations d = |x - median| (the median's own error does not
    enter to first order): var(log mad) = var(d) / (n mad²), cov = cov(d_1, d_2) / (n mad_1 mad_2).
    Vectorised over leading axes of [..., n] arrays (NaN pairs must be dropped first, see
    `variability_table`). For a rescaled copy (y = a x + b) the ratio and both ends are |a|.

    Why not a ratio of standard deviations: for paired questions (correlation 0.5) with normal, gamma(4), t3
    and chi²(1) margins at 15 and 30 questions, Pitman and Morgan's interval for the standard deviations
    covers 0.79-0.96 and a BCa bootstrap of the log ratio 0.87-0.93, this one 0.94-0.96 (notebook 12): the
    mean absolute deviation has a finite variance wherever the data have a variance. With uncorrelated
    questions and chi²(1) margins it covers 0.90 at 15 questions and 0.93 at 30."""
    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    n = x.shape[-1]
    if n < 3:
        raise ValueError(f"a scale ratio needs at least 3 paired questions, got {n}")
    dev = [np.abs(v - np.median(v, -1, keepdims=True)) for v in (x, y)]
    mad = [d.mean(-1) for d in dev]
    ratio = mad[0] / mad[1]
    centred = [(d - m[..., None]) / m[..., None] for d, m in zip(dev, mad, strict=True)]
    var = [(c * c).sum(-1) / ((n - 1) * n) for c in centred]
    cov = (centred[0] * centred[1]).sum(-1) / ((n - 1) * n)
    half = scipy.stats.t.ppf((1 + ci) / 2, n - 1) * np.sqrt(np.clip(var[0] + var[1] - 2 * cov, 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = ratio * np.exp(-half), ratio * np.exp(half)
    ok = np.isfinite(ratio) & (mad[0] > 0)
    return tuple(np.where(ok, v, np.nan)[()] for v in (ratio, low, high))


def variability_table(base: pd.DataFrame, instruct: pd.DataFrame) -> pd.DataFrame:
    """Per axis: the scale across questions of each model (both in one unit, see `question_means`): the mean
    absolute deviation from the median, and the ratio instruct/base with Bonett and Seier's interval
    (`scale_ratio`, over the questions with a value in both), and whether instruction tuning lowers (CI below
    1) or raises (CI above 1) the variability."""
    rows = {}
    for name in instruct.columns:
        both = pd.DataFrame({"b": base[name], "i": instruct[name]}).dropna()
        ratio, lo, hi = scale_ratio(both["i"].to_numpy(), both["b"].to_numpy())
        change = "lower" if hi < 1 else "higher" if lo > 1 else "no clear change"
        rows[name] = {
            "scale_base": float(np.mean(np.abs(both["b"] - both["b"].median()))),
            "scale_instruct": float(np.mean(np.abs(both["i"] - both["i"].median()))),
            "ratio": ratio,
            "ci_low": lo,
            "ci_high": hi,
            "after_tuning": change,
        }
    return pd.DataFrame(rows).T.astype(
        {k: float for k in ("scale_base", "scale_instruct", "ratio", "ci_low", "ci_high")}
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
    """Per axis, from each model's held-out evaluation table (`calibration.heldout_scores`): separable, i.e.
    validated (`validity.valid_axes`, the predicate of every table), only after tuning, in both, in neither,
    or only in the base model."""
    labels = {
        (False, True): "only after tuning",
        (True, True): "both",
        (False, False): "neither",
        (True, False): "only base",
    }
    valid = [set(valid_axes(table)) for table in (base, instruct)]
    return pd.Series(
        [labels[(n in valid[0], n in valid[1])] for n in base.index], index=base.index, name="separable"
    )


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
    summary: (
        pd.DataFrame
    )  # per axis: separable (validated), variability (spread unit), scale ratio, both units
    lower_variability_after_tuning: list[str]
    higher_variability_after_tuning: list[str]
    separable_only_after_tuning: list[str]

    def __post_init__(self) -> None:
        for name in ("evaluation", "per_item_correctness"):  # frames again when read from JSON
            frames = {
                role: f if isinstance(f, pd.DataFrame) else pd.DataFrame.from_dict(f, orient="index")
                for role, f in getattr(self, name).items()
            }
            frames = {role: f.fillna(np.nan) for role, f in frames.items()}  # JSON null -> NaN
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
        change = separation_change(self.evaluation["base"], self.evaluation["instruct"])  # today's rule
        return {
            "base_model": self.base_slug,
            "same_family": self.same_family,
            "base_family": self.families["base"],
            "instruct_family": self.families["instruct"],
            "pair_caveat": self.pair_caveat(),
            "profile": self.profile,
            "alpha": self.alpha,
            "mean_accuracy": {role: ev["pairwise_accuracy"].mean() for role, ev in self.evaluation.items()},
            "n_separable": {role: len(valid_axes(ev)) for role, ev in self.evaluation.items()},
            "n_items": int(pooled["n_pairs"]),
            "only_base": int(pooled["only_first"]),
            "only_instruct": int(pooled["only_second"]),
            "mcnemar_p": f"{pooled['p_value']:.2g}",
            "n_validated": len(self.validated),
            "not_interpreted": listed(n for n in self.summary.index if n not in self.validated),
            "lower_variability": listed(self.lower_variability_after_tuning),
            "higher_variability": listed(self.higher_variability_after_tuning),
            "separable_only_after": listed(change.index[change == "only after tuning"]),
            "separable_only_before": listed(change.index[change == "only base"]),
            "participation_ratio": self.dimensionality["participation_ratio"].to_dict(),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        accuracy = pd.DataFrame({role: ev["pairwise_accuracy"] for role, ev in self.evaluation.items()})
        ratios = self.variability[["ratio", "ci_low", "ci_high"]].add_prefix("spread ")
        frame = (
            accuracy.add_prefix("acc. ").join(ratios).join(self.variability_poles["ratio"].rename("poles"))
        )
        frame = frame.rename(index={n: mark(n, n in self.validated) for n in frame.index})
        columns = {"spread ratio": "scale ratio", "spread ci_low": "low", "spread ci_high": "high"}
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
    baseline variability (scale ratio instruct/base with Bonett and Seier's CI, in within-pole spreads and
    in the pole unit) and effective dimensionality. Variability conclusions are drawn only on axes
    validated in both models."""
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
            "separable": separation_change(cals["base"].evaluation, cals["instruct"].evaluation),
            "variability": variability["after_tuning"],
            "scale_ratio": variability["ratio"],
            "scale_ratio_poles": variability_poles["ratio"],
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
