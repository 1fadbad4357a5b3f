"""Agreement between an external judge and the hidden-state projections, and the judge's pairwise check of
calibration compliance. Plain functions of tables and arrays; no I/O.

The decision rules are pure functions of arrays, so notebook 12 can simulate their false-positive rates:

- `agreeing(rho, n)`: on which axes the judge's ratings follow the projections (Bonett-Wright interval of
  Spearman's rho above 0, Bonferroni over the axes with a defined rho);
- `mean_agreement(rho)`: the mean per-axis rho, only over at least MIN_DEFINED_AXES defined axes;
- `answers_by_position(first_a, first_b)`: the judge picks by position (exact McNemar test at 5 %), which
  makes its compliance check invalid.

Per-axis intervals are the Bonett-Wright Fisher-z interval of Spearman's rho, not a bootstrap: a judge's
ratings are few and heavily tied, so many bootstrap resamples have constant ratings (rho undefined), and an
interval over the defined resamples alone covers too little. In simulation (5-level ratings, 80 % of them
on one level, n = 8 and 15, true rho 0 and 0.43) BCa over the defined resamples covered 0.71-0.87 and the
percentile interval 0.68-0.84, Bonett-Wright 0.97-0.99; with milder ties (n = 8, 15, 30) Bonett-Wright
covered 0.95-0.98. The pooled rho, whose answers are clusters of axes, keeps the project's bootstrap
(`styleprobe.stats.bootstrap_ci`, BCa over the defined resamples) over whole answers and reports the exact
share of resamples in which rho is undefined; those are never counted as a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.stats
from numpy.typing import ArrayLike

from styleprobe import stats

if TYPE_CHECKING:
    from styleprobe.analyses.deadzones import DeadZonesResult

MIN_ANSWERS = 4
"""Spearman's rho and its interval need this many rated answers (the Fisher-z SE divides by n - 3)."""
MIN_DEFINED_AXES = 4
"""No mean per-axis rho is reported over fewer validated axes with a defined rho than this."""
ALPHA = 0.05
"""Level of the agreement rule (family-wise, Bonferroni over axes) and of the position test."""


def undefined_reason(projection: np.ndarray, rating: np.ndarray) -> str:
    """Why Spearman's rho of the pairs is undefined ("" when it is defined)."""
    x, y = np.asarray(projection, dtype=float), np.asarray(rating, dtype=float)
    if len(x) < MIN_ANSWERS:
        return f"fewer than {MIN_ANSWERS} rated answers"
    flat = [name for name, v in (("ratings", y), ("projections", x)) if np.ptp(v) == 0]
    return f"constant {' and '.join(flat)}" if flat else ""


def fisher_interval(rho: ArrayLike, n: ArrayLike, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bonett-Wright interval of Spearman's rho from n pairs: tanh(atanh(rho) -+ z sqrt((1 + rho^2/2) / (n -
    3))). NaN where rho is NaN or n < MIN_ANSWERS; |rho| = 1 gives the point interval."""
    r, m = np.asarray(rho, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt((1 + r**2 / 2) / (m - 3))
        se = np.where(m >= MIN_ANSWERS, se, np.nan)
        z = np.arctanh(r)
        half = scipy.stats.norm.ppf((1 + ci) / 2) * se
        return np.tanh(z - half), np.tanh(z + half)


def correlation(projection: np.ndarray, rating: np.ndarray, ci: float = 0.95) -> dict:
    """Spearman rho with its p-value and Bonett-Wright interval, or NaN with the reason (`undefined`)."""
    x, y = np.asarray(projection, dtype=float), np.asarray(rating, dtype=float)
    reason = undefined_reason(x, y)
    out = {"n": len(x), "rho": np.nan, "p": np.nan, "ci_low": np.nan, "ci_high": np.nan, "undefined": reason}
    if not reason:
        rho, p = stats.spearman(x, y)
        lo, hi = fisher_interval(rho, len(x), ci)
        out.update(rho=rho, p=p, ci_low=float(lo), ci_high=float(hi))
    return out


def agreeing(rho: ArrayLike, n: ArrayLike, alpha: float = ALPHA) -> np.ndarray:
    """The agreement rule: per entry (axis), whether the judge's ratings follow the projections, i.e. the
    Bonett-Wright interval of rho at level 1 - alpha/m lies above 0, m being the number of entries with a
    defined rho (Bonferroni: on independent data no entry is claimed with probability >= 1 - alpha/2).
    Entries with an undefined rho are False. Pass only the axes a conclusion may be drawn from."""
    r = np.asarray(rho, dtype=float)
    defined = np.isfinite(r) & (np.asarray(n) >= MIN_ANSWERS)
    m = int(defined.sum())
    if m == 0:
        return np.zeros(r.shape, dtype=bool)
    lo, _ = fisher_interval(np.where(defined, r, np.nan), n, 1 - alpha / m)
    return defined & (lo > 0)


def mean_agreement(rho: ArrayLike, min_defined: int = MIN_DEFINED_AXES) -> float:
    """The mean of the defined per-axis rho, NaN when fewer than `min_defined` are defined."""
    r = np.asarray(rho, dtype=float)
    defined = r[np.isfinite(r)]
    return float(defined.mean()) if len(defined) >= min_defined else np.nan


def long_ratings(
    ratings: pd.DataFrame,
    projections: pd.DataFrame,
    axes: Sequence[str],
    *,
    dead: Mapping[str, bool] | None = None,
    valid: Mapping[str, bool] | None = None,
    clips: bool = True,
    keys: Sequence[str] = ("q_index",),
) -> pd.DataFrame:
    """One row per (answer, axis): the judge's rating (NaN when missing), the projection, whether it was
    clipped (`clips`: the projections are clipped to [-1, 1], and |value| >= 1), whether the axis is a dead
    zone and whether it passed validation (`valid`, default: every axis not dead). `ratings` and
    `projections` hold one row per answer, in the same order, with one column per axis."""
    if len(ratings) != len(projections):
        raise ValueError(f"{len(ratings)} rated answers but {len(projections)} projections")
    dead = dead or {}
    frames = []
    for name in axes:
        part = ratings[list(keys)].reset_index(drop=True).copy()
        part["axis"] = name
        part["rating"] = ratings[name].to_numpy(dtype=float)
        part["projection"] = projections[name].to_numpy(dtype=float)
        part["clipped"] = clips & (np.abs(part["projection"]) >= 1)
        part["dead"] = bool(dead.get(name, False))
        part["valid"] = bool(valid[name]) if valid is not None else not part["dead"].iloc[0]
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def agreement(long: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Per axis: Spearman between ratings and projections over the rated answers, with p, Bonett-Wright
    interval and why rho is undefined (`undefined`, "" when defined); the number of missing ratings and
    clipped projections; the dead-zone and validation flags; `agrees` (the `agreeing` rule over the valid
    axes; False on the others); and rho without the clipped answers (clipping ties the extremes, and a dead
    axis' projection is mostly noise: both can turn rho negative)."""
    rows = {}
    for name, part in long.groupby("axis", sort=False):
        rated = part.dropna(subset=["rating", "projection"])
        kept = rated[~rated["clipped"]]
        rows[name] = {
            **correlation(rated["projection"], rated["rating"], ci),
            "n_missing": int(part["rating"].isna().sum()),
            "n_clipped": int(rated["clipped"].sum()),
            "dead": bool(part["dead"].any()),
            "valid": bool(part["valid"].all()),
            "rho_unclipped": correlation(kept["projection"], kept["rating"], ci)["rho"],
        }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("axis")
    table["agrees"] = False
    valid = table[table["valid"]]
    table.loc[valid.index, "agrees"] = agreeing(valid["rho"], valid["n"])
    return table


def undefined_share(projection: ArrayLike, rating: ArrayLike, units: ArrayLike | None = None) -> float:
    """The exact probability that a bootstrap resample of the units (default: each pair its own unit) has
    constant ratings or constant projections, where Spearman's rho is undefined: P(x constant) + P(y
    constant) - P(both), with P(x constant) = sum over values v of (m_v / M)^M, m_v being the units whose x
    are all v, M the number of units."""
    frame = pd.DataFrame({"x": np.asarray(projection, dtype=float), "y": np.asarray(rating, dtype=float)})
    frame["unit"] = np.arange(len(frame)) if units is None else np.asarray(units)
    per_unit = frame.groupby("unit").agg(["nunique", "first"])
    n_units = len(per_unit)

    def constant(*cols: str) -> float:
        flat = per_unit[[(c, "nunique") for c in cols]].eq(1).all(axis=1)
        counts = per_unit.loc[flat, [(c, "first") for c in cols]].value_counts().to_numpy()
        return float(np.sum((counts / n_units) ** n_units))

    return constant("x") + constant("y") - constant("x", "y")


def pooled(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Spearman over every rated (answer, axis) pair of the valid axes of every model, or NaN with the reason
    (`undefined`). The interval is the project's bootstrap over whole answers (all their axes together, per
    model; at least MIN_ANSWERS answers), since the axes of one answer are not independent; `p_undefined` is
    the exact share of resamples with constant ratings or projections, whose rho is undefined: they are
    never counted as a value. No p-value: one that treats the pairs as independent would ignore that
    clustering."""
    rated = long[long["valid"]].dropna(subset=["rating", "projection"]).reset_index(drop=True)
    unit_cols = [c for c in ("model", "q_index") if c in rated]
    codes, units = pd.factorize(pd.MultiIndex.from_frame(rated[unit_cols].astype(str)))
    x, y = rated["projection"].to_numpy(), rated["rating"].to_numpy()
    row = correlation(x, y)
    out = {"n_pairs": len(rated), "n_answers": len(units), "rho": row["rho"], "undefined": row["undefined"]}
    out.update(ci_low=np.nan, ci_high=np.nan, p_undefined=np.nan)
    if np.isfinite(out["rho"]) and len(units) >= MIN_ANSWERS:
        members = [np.flatnonzero(codes == u) for u in range(len(units))]

        def resampled(drawn: np.ndarray) -> float:
            take = np.concatenate([members[u] for u in drawn])
            xs, ys = x[take], y[take]
            return np.nan if undefined_reason(xs, ys) else stats.spearman(xs, ys)[0]  # undefined: no value

        lo, hi = stats.bootstrap_ci(resampled, np.arange(len(units)), n_boot=n_boot, seed=seed)
        out.update(ci_low=lo, ci_high=hi, p_undefined=undefined_share(x, y, codes))
    return out


def leave_one_model_out(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The pooled correlation with each model left out in turn (needs a `model` column and two models)."""
    models = list(dict.fromkeys(long["model"]))
    if len(models) < 2:
        columns = ["n_pairs", "n_answers", "rho", "undefined", "ci_low", "ci_high", "p_undefined"]
        return pd.DataFrame(columns=columns)
    rows = {m: pooled(long[long["model"] != m], n_boot=n_boot, seed=seed) for m in models}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("left_out")


def dead_axes(dead_zones: DeadZonesResult, axes: Sequence[str]) -> dict[str, bool]:
    """Which of `axes` are dead zones of the model (notebook 08); an axis it did not score is not."""
    dead = set(dead_zones.dead_axes())
    return {a: a in dead for a in axes}


def position_test(first_a: ArrayLike, first_b: ArrayLike) -> dict:
    """Per pair shown in both orders, whether the judge chose the first-shown answer with the positive one
    shown first (`first_a`) and second (`first_b`). A pair answered by content picks the same answer in both
    orders (first in exactly one); one answered by position picks the first-shown (or the second-shown) in
    both. Returns the counts of pairs picked first in both orders (`first_both`) and second in both
    (`second_both`), and the two-sided exact test that the two are equally likely (McNemar's: a binomial test
    over the order-dependent pairs), `position_p` (1 when no pair depends on the order)."""
    a, b = np.asarray(first_a, dtype=bool), np.asarray(first_b, dtype=bool)
    first, second = int(np.sum(a & b)), int(np.sum(~a & ~b))
    p = scipy.stats.binomtest(first, first + second, 0.5).pvalue if first + second else 1.0
    return {"first_both": first, "second_both": second, "position_p": float(p)}


def answers_by_position(first_a: ArrayLike, first_b: ArrayLike, alpha: float = ALPHA) -> bool:
    """The position rule: the judge answers by position when, among the pairs whose pick changes with the
    order, the first-shown answer wins in both orders more (or less) often than the second-shown, by the
    two-sided exact McNemar test (`position_test`) at level `alpha`. Its compliance check is then invalid."""
    return position_test(first_a, first_b)["position_p"] < alpha


def _wilson(k: int, n: int) -> tuple[float, float]:
    if not n:
        return np.nan, np.nan
    ci = scipy.stats.binomtest(k, n, 0.5).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def compliance(compared: pd.DataFrame) -> pd.DataFrame:
    """Per axis and over all ("all"), from the pairs shown in both orders (one row per showing: axis,
    q_index, positive_first, chose_first; NaN when the answer is missing):

    - n_pairs, n_missing: pairs with an answer in both orders, and pairs without;
    - n_consistent: pairs answered the same in both orders; `accuracy`: the share of them where the judge
      picked the answer written under the positive instruction, with its Wilson 95 % interval and the
      two-sided exact binomial test against chance (`p`; a pair picked by position counts for neither pole);
    - chose_first: the share of showings where the judge picked the first-shown answer (0.5: no position
      preference overall);
    - first_both, second_both, position_p (`position_test`) and by_position (`answers_by_position`).

    The compliance check is valid when the "all" row is not `by_position`."""
    wide = compared.pivot_table(
        index=["axis", "q_index"], columns="positive_first", values="chose_first", aggfunc="first", sort=False
    ).reindex(columns=[True, False])
    complete = wide.dropna()
    counts = compared.drop_duplicates(["axis", "q_index"]).groupby("axis", sort=False).size()
    groups = [(name, complete[complete.index.get_level_values("axis") == name]) for name in counts.index]
    rows = {}
    for name, part in [*groups, ("all", complete)]:
        a, b = part[True].to_numpy(dtype=bool), part[False].to_numpy(dtype=bool)
        correct, wrong = int(np.sum(a & ~b)), int(np.sum(~a & b))
        n_total = int(counts.sum() if name == "all" else counts[name])
        consistent = correct + wrong
        row = {"n_pairs": len(part), "n_missing": n_total - len(part), "n_consistent": consistent}
        row["accuracy"] = correct / consistent if consistent else np.nan
        row["ci_low"], row["ci_high"] = _wilson(correct, consistent)
        row["p"] = scipy.stats.binomtest(correct, consistent, 0.5).pvalue if consistent else np.nan
        row["chose_first"] = float(np.mean(np.r_[a, b])) if len(part) else np.nan
        row.update(position_test(a, b), by_position=answers_by_position(a, b))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("axis")
