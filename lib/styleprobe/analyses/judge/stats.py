"""Agreement between an external judge and the hidden-state projections, and the judge's pairwise check of
calibration compliance. Plain functions of tables; no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe import stats

if TYPE_CHECKING:
    from styleprobe.analyses.deadzones import DeadZonesResult


def long_ratings(
    ratings: pd.DataFrame,
    projections: pd.DataFrame,
    axes: Sequence[str],
    *,
    dead: Mapping[str, bool] | None = None,
    keys: Sequence[str] = ("q_index",),
) -> pd.DataFrame:
    """One row per (answer, axis): the judge's rating (NaN when missing), the clipped projection, whether it
    sits at the clip limit (|value| >= 1) and whether the axis is a dead zone. `ratings` and `projections`
    hold one row per answer, in the same order, with one column per axis."""
    if len(ratings) != len(projections):
        raise ValueError(f"{len(ratings)} rated answers but {len(projections)} projections")
    frames = []
    for name in axes:
        part = ratings[list(keys)].reset_index(drop=True).copy()
        part["axis"] = name
        part["rating"] = ratings[name].to_numpy(dtype=float)
        part["projection"] = projections[name].to_numpy(dtype=float)
        part["clipped"] = np.abs(part["projection"]) >= 1
        part["dead"] = bool((dead or {}).get(name, False))
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho, NaN when undefined (fewer than 3 pairs or a constant side)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(x, y).statistic)


def _rho_or_zero(x: np.ndarray, y: np.ndarray) -> float:
    """Bootstrap replicates where one side is constant carry no ordering: they count as rho = 0."""
    r = _rho(x, y)
    return 0.0 if np.isnan(r) else r


def correlation(x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Spearman rho with its p-value and a paired percentile bootstrap 95 % CI (NaN where undefined)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rho = _rho(x, y)
    if np.isnan(rho):
        return {"n": len(x), "rho": np.nan, "p": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    lo, hi = stats.bootstrap_ci(_rho_or_zero, x, y, n_boot=n_boot, seed=seed)
    return {"n": len(x), "rho": rho, "p": stats.spearman(x, y)[1], "ci_low": lo, "ci_high": hi}


def agreement(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per axis: Spearman between ratings and projections over the rated answers, with p and bootstrap CI,
    the number of missing ratings and clipped projections, the dead-zone flag, and rho without the clipped
    answers (clipping ties the extremes, and a dead axis' projection is mostly noise: both can turn rho
    negative)."""
    rows = {}
    for name, part in long.groupby("axis", sort=False):
        rated = part.dropna(subset=["rating", "projection"])
        kept = rated[~rated["clipped"]]
        rows[name] = {
            **correlation(rated["projection"], rated["rating"], n_boot=n_boot, seed=seed),
            "n_missing": int(part["rating"].isna().sum()),
            "n_clipped": int(rated["clipped"].sum()),
            "dead": bool(part["dead"].any()),
            "rho_unclipped": _rho(kept["projection"].to_numpy(), kept["rating"].to_numpy()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("axis")


def pooled(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Spearman over every rated (answer, axis) pair of every model. The CI resamples whole answers (all
    their axes together, per model), since the axes of one answer are not independent."""
    rated = long.dropna(subset=["rating", "projection"]).reset_index(drop=True)
    unit_cols = [c for c in ("model", "q_index") if c in rated]
    codes, units = pd.factorize(pd.MultiIndex.from_frame(rated[unit_cols].astype(str)))
    x, y = rated["projection"].to_numpy(), rated["rating"].to_numpy()
    out = {"n_pairs": len(rated), "n_answers": len(units), "rho": _rho(x, y), "p": np.nan}
    out["ci_low"] = out["ci_high"] = np.nan
    if np.isfinite(out["rho"]):
        members = [np.flatnonzero(codes == u) for u in range(len(units))]
        lo, hi = stats.bootstrap_ci(
            lambda s: _rho_or_zero(*(v[np.concatenate([members[u] for u in s])] for v in (x, y))),
            np.arange(len(units)),
            n_boot=n_boot,
            seed=seed,
        )
        out.update(p=stats.spearman(x, y)[1], ci_low=lo, ci_high=hi)
    return out


def leave_one_model_out(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The pooled correlation with each model left out in turn (needs a `model` column and two models)."""
    models = list(dict.fromkeys(long["model"]))
    if len(models) < 2:
        return pd.DataFrame(columns=["n_pairs", "n_answers", "rho", "p", "ci_low", "ci_high"])
    rows = {m: pooled(long[long["model"] != m], n_boot=n_boot, seed=seed) for m in models}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("left_out")


def dead_axes(dead_zones: DeadZonesResult, axes: Sequence[str]) -> dict[str, bool]:
    """Which of `axes` are dead zones of the model (notebook 08); an axis it did not score is not."""
    dead = set(dead_zones.dead_axes())
    return {a: a in dead for a in axes}


def compliance(compared: pd.DataFrame) -> pd.DataFrame:
    """Per axis and over all: share of held-out pairs where the judge picked the answer written under the
    positive instruction, with a Wilson 95 % CI and a two-sided binomial test against chance, and the share
    of picks of whichever answer was shown first (position bias)."""
    groups = [*compared.groupby("axis", sort=False), ("all", compared)]
    rows = {}
    for name, part in groups:
        answered = part.dropna(subset=["correct"])
        k, n = int(answered["correct"].sum()), len(answered)
        row = {"n": n, "n_missing": len(part) - n, "accuracy": np.nan, "ci_low": np.nan, "ci_high": np.nan}
        row.update(p=np.nan, chose_first=np.nan)
        if n:
            test = scipy.stats.binomtest(k, n, 0.5)
            ci = test.proportion_ci(confidence_level=0.95, method="wilson")
            row.update(accuracy=k / n, ci_low=ci.low, ci_high=ci.high, p=test.pvalue)
            row["chose_first"] = float(np.mean(answered["choice"] == "a"))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("axis")
