"""How notebook 12 measures a statistic: the coverage of an interval, the false-positive rate of a rule, or a
rule's power, as a share of simulated data sets with its Monte-Carlo error, and the bound each must meet.

- Coverage: the share of data sets whose reported 95 % interval contains the true value; it must reach
  COVERAGE_BOUND. Data sets on which the library reports no interval (it says why: a floored scale, a scale
  that may be 0) are counted apart (`n_undefined`) and left out of the share, unless the check counts them
  as misses.
- False-positive rate: the share of data sets drawn under a rule's null on which it fires; it must stay within
  its nominal level plus MC_ERRORS simulation standard errors (of a rate at the nominal level).
- Power: the share of data sets with a given effect on which the rule fires; reported, no bound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NOMINAL_COVERAGE = 0.95  # every interval the project reports is a 95 % interval
COVERAGE_BOUND = 0.93  # the least coverage accepted of a nominal 95 % interval
MC_ERRORS = 2.0  # a rule's false-positive rate may exceed its nominal level by this many simulation errors
COVERAGE, FALSE_POSITIVE, POWER = "coverage", "false positive", "power"

Sample = Callable[[np.random.Generator], tuple]  # one simulated data set, as the arguments of a check


@dataclass(frozen=True)
class Estimate:
    """A simulated share with its Monte-Carlo standard error sqrt(p (1 - p) / n), n the data sets counted."""

    share: float
    mc_se: float
    n_sims: int
    n_undefined: (
        int  # data sets on which no interval was reported (left out of the share or counted as misses)
    )
    notes: dict = field(
        default_factory=dict
    )  # other shares of the same data sets, e.g. how often a scale is floored


def share(hits: np.ndarray, undefined: int = 0, **notes: float) -> Estimate:
    """The Estimate of boolean `hits`, one per data set counted."""
    hits = np.asarray(hits, dtype=bool).ravel()
    if not hits.size:
        return Estimate(float("nan"), float("nan"), 0, undefined, notes)
    p = float(hits.mean())
    return Estimate(p, float(np.sqrt(p * (1 - p) / hits.size)), int(hits.size), undefined, notes)


def coverage_of(
    low: np.ndarray,
    high: np.ndarray,
    truth: np.ndarray | float,
    reported: np.ndarray | None = None,
    **notes: float,
) -> Estimate:
    """Coverage of vectorised intervals (one per data set) of `truth` (a value, or one per data set). With
    `reported`, only those data sets count and the others are `n_undefined`; otherwise an undefined (NaN) end
    counts as a miss. Infinite ends (an unbounded interval) cover."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    truth = np.broadcast_to(np.asarray(truth, dtype=float), low.shape)
    hits = (low <= truth) & (truth <= high)
    if reported is None:
        return share(hits, int((np.isnan(low) | np.isnan(high)).sum()), **notes)
    reported = np.asarray(reported, dtype=bool)
    return share(hits[reported], int((~reported).sum()), **notes)


def coverage(
    interval: Callable[..., tuple[float, float]], sample: Sample, truth: float, *, n_sims: int, seed: int
) -> Estimate:
    """Share of `n_sims` data sets `sample(rng)` whose `interval(*data)` = (low, high) contains `truth`, one
    data set at a time (for functions not vectorised); an undefined interval counts as not covering."""
    rng = np.random.default_rng(seed)
    bounds = np.array([interval(*sample(rng)) for _ in range(n_sims)], dtype=float)
    return coverage_of(bounds[:, 0], bounds[:, 1], truth)


def rejection_rate(rule: Callable[..., bool], sample: Sample, *, n_sims: int, seed: int) -> Estimate:
    """Share of `n_sims` data sets `sample(rng)` on which `rule(*data)` fires, one data set at a time; under
    the rule's null, its false-positive rate."""
    rng = np.random.default_rng(seed)
    return share(np.array([bool(rule(*sample(rng))) for _ in range(n_sims)]))


def covering(
    interval: Callable[..., tuple[float, float]], sample: Sample, truth: float
) -> Callable[[int, int], Estimate]:
    """A check's measure: `coverage` of `interval` over data sets `sample(rng)`, one at a time."""
    return lambda n_sims, seed: coverage(interval, sample, truth, n_sims=n_sims, seed=seed)


def firing(rule: Callable[..., bool], sample: Sample) -> Callable[[int, int], Estimate]:
    """A check's measure: `rejection_rate` of `rule` over data sets `sample(rng)`, one at a time."""
    return lambda n_sims, seed: rejection_rate(rule, sample, n_sims=n_sims, seed=seed)


def fpr_bound(nominal: float, n_sims: int) -> float:
    """The largest false-positive rate accepted of a rule at level `nominal`: nominal + MC_ERRORS times the
    simulation error of a rate equal to it."""
    return nominal + MC_ERRORS * float(np.sqrt(nominal * (1 - nominal) / n_sims))


@dataclass(frozen=True)
class Check:
    """One interval's coverage, one rule's false-positive rate or power, at one size under one condition."""

    name: str  # what is checked, e.g. "fingerprint position CI"
    kind: str  # COVERAGE, FALSE_POSITIVE or POWER
    n: str  # the sample size, in words
    nominal: float  # the interval's level, or the rule's nominal false-positive rate
    condition: str  # the family of data drawn, e.g. "t3, seed sd 0.3"
    setting: str  # the rest of what is drawn: the truth, or the null
    measure: Callable[[int, int], Estimate]  # (n_sims, seed) -> the measured share

    def row(self, profile: str, n_sims: int, seed: int) -> dict[str, Any]:
        """The table row: the measured share, its simulation error, the bound and whether it holds."""
        est = self.measure(n_sims, seed)
        if self.kind == COVERAGE:
            bound, holds = COVERAGE_BOUND, est.share >= COVERAGE_BOUND
        elif self.kind == FALSE_POSITIVE:
            bound = fpr_bound(self.nominal, est.n_sims)
            holds = est.share <= bound
        else:
            bound, holds = float("nan"), True
        return {
            "check": self.name,
            "kind": self.kind,
            "profile": profile,
            "n": self.n,
            "condition": self.condition,
            "nominal": self.nominal,
            "measured": est.share,
            "mc_se": est.mc_se,
            "bound": bound,
            "holds": bool(holds),
            "n_sims": est.n_sims,
            "n_undefined": est.n_undefined,
            "setting": self.setting,
            **{f"share_{k}": v for k, v in est.notes.items()},
        }
