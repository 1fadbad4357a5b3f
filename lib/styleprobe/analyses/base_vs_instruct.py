"""Compare two models measured with the same protocol (a base model and an instruction-tuned one).

Per-item correctness: an evaluation question of an axis counts as correct for a model when its answer
under the positive-pole instruction projects above its answer under the negative-pole instruction (both
on that model's own axis). Both models answer the same evaluation questions, so their correctness is
paired item by item and compared with McNemar's exact test. Baseline variability is the standard deviation
across baseline questions of the seed-averaged, unclipped normalised projection: each model in units of
its own calibration IQR, unclipped so that answers far outside the calibration range are not flattened
to ±1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe import stats
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import Calibration


def evaluation_items(cal: Calibration) -> pd.DataFrame:
    """One row per (axis, evaluation question): the positive and the negative answer's unclipped
    projection and whether the pair is ordered correctly (NaN when either answer is empty)."""
    rec = cal.result.records
    values = cal.axes.project(cal.result.states, clip=False)
    values[(rec["n_measured"] == 0).to_numpy()] = np.nan
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


def question_means(axes: AxisSet, results: dict[int, StageResult], model_id: str) -> pd.DataFrame:
    """Baseline questions x axes: unclipped normalised projections averaged over seeds (empty answers
    left out)."""
    frames = []
    for seed, res in results.items():
        values = axes.project(res.states, model_id, clip=False)
        values[(res.records["n_measured"] == 0).to_numpy()] = np.nan
        frame = pd.DataFrame(values, columns=axes.names).assign(seed=seed)
        frames.append(frame.assign(q_index=res.records["q_index"].to_numpy()))
    return pd.concat(frames).groupby("q_index")[axes.names].mean()


def _std_ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    low = np.std(denominator, ddof=1)
    return float(np.std(numerator, ddof=1) / low) if low > 0 else np.nan


def std_ratio(
    numerator: np.ndarray, denominator: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """std(numerator) / std(denominator) over paired questions, with a paired percentile bootstrap
    95 % CI (questions resampled together)."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    keep = np.isfinite(num) & np.isfinite(den)
    num, den = num[keep], den[keep]
    if len(num) < 3:
        raise ValueError(f"a std ratio needs at least 3 paired questions, got {len(num)}")
    lo, hi = stats.bootstrap_ci(_std_ratio, num, den, n_boot=n_boot, seed=seed)
    return _std_ratio(num, den), lo, hi


def variability_table(
    base: pd.DataFrame, instruct: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per axis: std across questions of each model, the ratio instruct/base with its bootstrap CI, and
    whether instruction tuning lowers (CI below 1) or raises (CI above 1) the variability."""
    rows = {}
    for name in instruct.columns:
        ratio, lo, hi = std_ratio(instruct[name], base[name], n_boot=n_boot, seed=seed)
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
