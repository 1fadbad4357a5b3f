"""Notebook 12: are the project's statistics calibrated? Measured by simulation, on synthetic data only, at
the sample sizes of the `quick` and `paper` profiles (`styleprobe.protocol.profiles`).

- Coverage of an interval: the share of simulated data sets whose reported 95 % interval contains the
  true value; it must reach COVERAGE_BOUND.
- False-positive rate of a pass/flag rule: the share of data sets drawn under the rule's null on which
  it fires; it must stay within its nominal level plus MC_ERRORS simulation standard errors (of a rate at
  the nominal level), so a calibrated rule fails by chance in about 2.5 % of runs.

Every interval and rule is the library's own function, called on data laid out as the analyses lay it
out; each check states the data it draws (`Check.setting`). An undefined interval (NaN) counts as not
covering. The simulation seed fixes every draw, so the table is the same on every run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe import stats
from styleprobe.analyses import (
    base_vs_instruct,
    compare,
    controls,
    deadzones,
    drift,
    instruction_benchmark,
    thinking,
)
from styleprobe.analyses.instruction_benchmark import SCENARIOS
from styleprobe.analyses.judge import stats as judge_stats
from styleprobe.analyses.judge.core import load_prompts
from styleprobe.protocol import fingerprint, validity
from styleprobe.protocol.axes import AxisSet, centre_and_scale
from styleprobe.protocol.profiles import DRIFT_PROFILES, PROFILES, DriftProfile, Profile
from styleprobe.protocol.spec import Protocol
from styleprobe.result import PaperTable, Result

NOMINAL_COVERAGE = 0.95  # every interval the project reports is a 95 % interval
COVERAGE_BOUND = 0.93  # the least coverage accepted of a nominal 95 % interval
MC_ERRORS = 2.0  # a rule's false-positive rate may exceed its nominal level by this many simulation errors
COVERAGE, FALSE_POSITIVE = "coverage", "false positive"

Sample = Callable[[np.random.Generator], tuple]  # one simulated data set, as the arguments of a check


@dataclass(frozen=True)
class Estimate:
    """A simulated share with its Monte-Carlo standard error sqrt(p (1 - p) / n_sims)."""

    share: float
    mc_se: float
    n_sims: int
    n_undefined: int  # data sets on which the interval or rule was undefined (NaN)


def _estimate(hits: np.ndarray, undefined: int) -> Estimate:
    share = float(np.mean(hits))
    return Estimate(share, float(np.sqrt(share * (1 - share) / len(hits))), len(hits), undefined)


def coverage(
    interval: Callable[..., tuple[float, float]], sample: Sample, truth: float, *, n_sims: int, seed: int
) -> Estimate:
    """Share of `n_sims` data sets `sample(rng)` whose `interval(*data)` = (low, high) contains `truth`;
    an undefined interval (a NaN end) counts as not covering."""
    rng = np.random.default_rng(seed)
    bounds = np.array([interval(*sample(rng)) for _ in range(n_sims)], dtype=float)
    undefined = int(np.isnan(bounds).any(axis=1).sum())
    return _estimate((bounds[:, 0] <= truth) & (truth <= bounds[:, 1]), undefined)


def rejection_rate(rule: Callable[..., bool], sample: Sample, *, n_sims: int, seed: int) -> Estimate:
    """Share of `n_sims` data sets `sample(rng)` on which `rule(*data)` fires; under the rule's null, its
    false-positive rate."""
    rng = np.random.default_rng(seed)
    return _estimate(np.array([bool(rule(*sample(rng))) for _ in range(n_sims)]), 0)


def fpr_bound(nominal: float, n_sims: int) -> float:
    """The largest false-positive rate accepted of a rule at level `nominal`: nominal + MC_ERRORS times the
    simulation error of a rate equal to it."""
    return nominal + MC_ERRORS * float(np.sqrt(nominal * (1 - nominal) / n_sims))


@dataclass(frozen=True)
class Check:
    """One interval's coverage or one rule's false-positive rate at one profile's sample size."""

    name: str  # what is checked, e.g. "fingerprint mean CI"
    kind: str  # COVERAGE or FALSE_POSITIVE
    n: str  # the sample size, in words
    nominal: float  # the interval's level, or the rule's nominal false-positive rate
    setting: str  # the data drawn: the truth, or the null
    measure: Callable[[int, int], Estimate]  # (n_sims, seed) -> the measured share

    def row(self, profile: str, n_sims: int, seed: int) -> dict[str, Any]:
        """The table row: the measured share, its simulation error, the bound and whether it holds."""
        est = self.measure(n_sims, seed)
        if self.kind == COVERAGE:
            bound, holds = COVERAGE_BOUND, est.share >= COVERAGE_BOUND
        else:
            bound = fpr_bound(self.nominal, n_sims)
            holds = est.share <= bound
        return {
            "check": self.name,
            "kind": self.kind,
            "profile": profile,
            "n": self.n,
            "nominal": self.nominal,
            "measured": est.share,
            "mc_se": est.mc_se,
            "bound": bound,
            "holds": bool(holds),
            "n_sims": est.n_sims,
            "n_undefined": est.n_undefined,
            "setting": self.setting,
        }


# -- the data drawn --------------------------------------------------------------------------------------

SKEWED = scipy.stats.beta(2, 5, loc=-1, scale=2)
"""Per-question values on [-1, 1] with the skew of clipped projections (beta(2, 5) stretched to [-1, 1])."""
SHARED_SD = 0.3  # sd of the per-question effect two paired readings of one question share
NOISE_SD = 0.3  # sd of the independent noise of a reading
SEPARATED_AUC = 0.8  # the held-out accuracy of the separable axis whose interval is checked
ICC_SD = {"question": 1.0, "seed": 0.3, "noise": 0.95}  # two-way random effects: ICC(2,1) = 0.5
RATIO_SD = (0.3, 0.6)  # std of the numerator's and the denominator's questions: ratio 0.5 ...
RATIO_CORRELATION = 0.5  # ... and their correlation across questions
SLOPE_SD = 0.02  # sd across conversations of the true per-turn slope
MEAN_SLOPE = 0.02  # the true mean slope whose interval is checked
SAME_WAY_SHIFT = 10 * NOISE_SD
"""The benchmark's least favourable null: both instructions of a pair move answers this far towards the same
pole, so far that only the contrast between them decides (the test of the own shift always passes)."""
HEALTHY_SHIFT = 0.5  # each pole instruction moves a healthy axis' answers this far towards its pole
MISCLASSIFIED = 0.05
"""The share of data sets in which sampling noise alone may class a clearly healthy axis dead: the classes
compare point estimates with thresholds and have no nominal level of their own."""
DEFAULT_POSITION = 0.4
"""Where the uninstructed answers sit between the held-out pole means (-1, +1): the positive instruction moves
them 1 - DEFAULT_POSITION, the negative one 1 + DEFAULT_POSITION."""
JUDGE_CORRELATION = 0.5  # correlation of the projection with the judge's latent rating
JUDGE_RIGHT = 0.7  # the share of showings in which a judge without position preference picks the positive


def _paired(rng: np.random.Generator, n: int, n_axes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two readings of n questions [x n_axes] sharing a per-question effect: the first with SKEWED noise
    (mean SKEWED.mean()), the second with centred normal noise."""
    shape = (n, n_axes) if n_axes > 1 else (n,)
    shared = rng.normal(0, SHARED_SD, shape)
    return shared + SKEWED.rvs(shape, random_state=rng), shared + rng.normal(0, NOISE_SD, shape)


def _paired_null(rng: np.random.Generator, n: int, n_axes: int) -> tuple[np.ndarray, np.ndarray]:
    """Two readings of n questions x n_axes sharing a per-question effect, both with SKEWED noise: no
    difference."""
    shared = rng.normal(0, SHARED_SD, (n, n_axes))
    return tuple(shared + SKEWED.rvs((n, n_axes), random_state=rng) for _ in range(2))


def _noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Skewed noise of single answers: SKEWED, centred, with sd NOISE_SD."""
    return NOISE_SD * (SKEWED.rvs(shape, random_state=rng) - SKEWED.mean()) / SKEWED.std()


def _instructed(rng: np.random.Generator, n: int, to_pos: float, to_neg: float, pairs: int = 1) -> tuple:
    """`pairs` x n questions answered with no instruction (the control) and under the instruction for each
    pole, which moves answers `to_pos` towards the positive pole and `to_neg` towards the negative one:
    (control, positive, negative) projections."""
    shape = (pairs, n)
    return _noise(rng, shape), to_pos + _noise(rng, shape), -to_neg + _noise(rng, shape)


def _pole_shifts(control: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> tuple:
    """Per question, as `instruction_benchmark` signs them: the shift of each scenario of a pole pair
    towards the pole it names (toward) and towards the same pole under the opposite instruction (away),
    the positive pole's scenarios first: (toward, away)."""
    toward = np.concatenate([positive - control, control - negative])
    away = np.concatenate([negative - control, control - positive])
    return toward, away


def _two_way(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """n questions x k seeds under the two-way random-effects model of ICC(2,1)."""
    sd = ICC_SD
    return (
        rng.normal(0, sd["question"], (n, 1))
        + rng.normal(0, sd["seed"], (1, k))
        + rng.normal(0, sd["noise"], (n, k))
    )


def icc_truth() -> float:
    """ICC(2,1) of `_two_way`: question variance over the total."""
    var = {k: v**2 for k, v in ICC_SD.items()}
    return var["question"] / sum(var.values())


def _poles(rng: np.random.Generator, n: int, auc: float) -> tuple[np.ndarray, np.ndarray]:
    """Held-out projections of n answers per pole, normal with unit sd, apart so that the AUC is `auc`."""
    gap = np.sqrt(2) * scipy.stats.norm.ppf(auc)
    return rng.normal(gap, 1, n), rng.normal(0, 1, n)


def _calibration(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw held-out projections of n calibration questions answered under each pole and with no instruction
    (positive, negative, neutral): a per-question effect shared by the three answers, skewed noise, poles
    apart as on a separable axis (AUC SEPARATED_AUC), the default at DEFAULT_POSITION between them."""
    spread = np.hypot(SHARED_SD, NOISE_SD)  # of one pole's answers across questions
    half = np.sqrt(2) * scipy.stats.norm.ppf(SEPARATED_AUC) * spread / 2
    shared = rng.normal(0, SHARED_SD, n)
    pos, neg, neutral = (shared + mu * half + _noise(rng, (n,)) for mu in (1, -1, DEFAULT_POSITION))
    return pos, neg, neutral


def _conversations(
    rng: np.random.Generator, n: int, turns: int, mean_slope: float, n_axes: int = 1
) -> np.ndarray:
    """n conversations x `turns` x `n_axes` projections: on each axis, each conversation on its own line
    (slope ~ N(mean_slope, SLOPE_SD)) plus skewed noise (`_noise`) at every turn."""
    t = np.arange(1, turns + 1)[:, None]
    line = rng.normal(0, SHARED_SD, (n, 1, n_axes)) + rng.normal(mean_slope, SLOPE_SD, (n, 1, n_axes)) * t
    return line + _noise(rng, (n, turns, n_axes))


def _judged(
    rng: np.random.Generator,
    n: int,
    scale: tuple[int, ...],
    correlation: float = JUDGE_CORRELATION,
    n_axes: int = 1,
) -> tuple:
    """n answers x `n_axes`: a projection and the judge's rating, a standard normal latent rating correlated
    `correlation` with the projection and rounded onto the judge's integer `scale` (squeezed when one
    axis)."""
    x = rng.normal(0, 1, (n, n_axes))
    z = correlation * x + np.sqrt(1 - correlation**2) * rng.normal(0, 1, (n, n_axes))
    y = np.clip(np.round(z), min(scale), max(scale))
    return (x[:, 0], y[:, 0]) if n_axes == 1 else (x, y)


def _showings(rng: np.random.Generator, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs shown in both orders to a judge without position preference: in each showing it picks the
    positive answer with probability JUDGE_RIGHT. Whether it chose the first-shown answer with the positive
    one first, and with it second."""
    return rng.random(n_pairs) < JUDGE_RIGHT, rng.random(n_pairs) >= JUDGE_RIGHT


@cache
def judge_truth(scale: tuple[int, ...], n_draws: int = 2_000_000, seed: int = 0) -> float:
    """The population Spearman rho of `_judged` (ties in the ratings: mid-ranks), from one large draw."""
    x, y = _judged(np.random.default_rng(seed), n_draws, scale)
    return float(scipy.stats.spearmanr(x, y).statistic)


def ratio_truth() -> float:
    return RATIO_SD[0] / RATIO_SD[1]


def _ratio_pair(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = RATIO_SD
    cov = RATIO_CORRELATION * a * b
    num, den = rng.multivariate_normal([0, 0], [[a * a, cov], [cov, b * b]], n).T
    return num, den


# -- the intervals and rules, as the analyses call them ----------------------------------------------------


ONE_AXIS = AxisSet(
    ["x"], [("high", "low")], np.ones((1, 1)), np.zeros(1), np.ones(1), "simulated", 1, [0], {}
)
"""The axis the simulated projections are read on: projections are the values drawn."""


def _fingerprint_ci(values: np.ndarray) -> tuple[float, float]:
    projections = pd.DataFrame({"seed": 0, "q_index": np.arange(len(values)), "x": values})
    row = fingerprint.fingerprint_table(projections, ONE_AXIS).loc["x"]
    return row["ci_low"], row["ci_high"]


def _icc_ci(matrix: np.ndarray) -> tuple[float, float]:
    return stats.icc_with_ci(matrix)[1:]


def _slopes(values: np.ndarray) -> np.ndarray:
    """Each conversation's least-squares slope over its turns (as `drift.ols_slope`) from conversations x
    turns [x axes] projections: conversations [x axes]."""
    n, turns = values.shape[:2]
    flat = np.moveaxis(values, 1, 0).reshape(turns, -1)
    return np.polyfit(np.arange(1, turns + 1), flat, 1)[0].reshape((n, *values.shape[2:]))


def _drift_ci(conflict: np.ndarray, control: np.ndarray) -> tuple[float, float]:
    row = drift.drift_tests(_slopes(conflict), _slopes(control)).iloc[0]
    return row["ci_low"], row["ci_high"]


def _drift_significant(conflict: np.ndarray, control: np.ndarray) -> bool:
    """Whether `drift.drift_tests` calls any axis' drift significant."""
    return bool(drift.drift_tests(_slopes(conflict), _slopes(control))["significant"].any())


def _judge_ci(projection: np.ndarray, rating: np.ndarray) -> tuple[float, float]:
    out = judge_stats.correlation(projection, rating)
    return out["ci_low"], out["ci_high"]


def _judge_agrees(projections: np.ndarray, ratings: np.ndarray) -> bool:
    """Whether `judge_stats.agreeing` claims agreement on any axis (answers x axes ratings)."""
    found = [judge_stats.correlation(x, y) for x, y in zip(projections.T, ratings.T, strict=True)]
    return bool(judge_stats.agreeing([f["rho"] for f in found], [f["n"] for f in found]).any())


def _ratio_ci(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    return base_vs_instruct.std_ratio(num, den)[1:]


def _frame(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"x": values}).rename_axis("q_index")


def _thinking_ci(on: np.ndarray, off: np.ndarray) -> tuple[float, float]:
    row = thinking.paired_shift(_frame(on), _frame(off)).loc["x"]
    return row["ci_low"], row["ci_high"]


def _compare_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """`compare.flags`' simultaneous intervals of questions x axes readings, as one interval that holds a
    value exactly when every axis' interval does: (largest low end, smallest high end)."""
    found = compare.flags(a, b)
    return found["ci_low"].to_numpy().max(), found["ci_high"].to_numpy().min()


def _compare_flag(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `compare.flags` flags any axis."""
    return bool(compare.flags(a, b)["flagged"].any())


def _contrast_ci(control: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    """The t interval (`stats.mean_ci`, as the benchmark's) of the positive-pole scenario's contrast: its
    shift towards the positive pole minus the opposite instruction's."""
    toward, away = _pole_shifts(control, positive, negative)
    return stats.mean_ci(toward[0] - away[0])


def _benchmark_passes(control: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> bool:
    """Whether any scenario of the family passes (`instruction_benchmark.scenario_passes`, at family-wise
    ALPHA over every scenario x axis; Holm passes something exactly when this does)."""
    toward, away = _pole_shifts(control, positive, negative)
    return bool(np.any(instruction_benchmark.scenario_passes(toward, away, n_tests=len(toward))))


def _obedience_ci(pos: np.ndarray, neg: np.ndarray, neutral: np.ndarray) -> tuple[float, float]:
    """The interval of obey_positive as `calibration.neutral_control` computes it: the axis's crossfit centre
    and scale from the same held-out pole answers, a t interval of (positive - neutral) / scale over the
    questions; the scale's own uncertainty is not in the interval, which this check measures."""
    _, scale = centre_and_scale(pos, neg)
    return stats.mean_ci((pos - neutral) / scale)


def _dead_zone_class(
    pos: np.ndarray, neg: np.ndarray, control: np.ndarray, positive: np.ndarray, negative: np.ndarray
) -> str:
    """`deadzones.classify` of one axis from its held-out poles and its benchmark answers: accuracy, the
    validation (`validity.heldout_status`, and not dead by the severity of accuracy and d′) and the mean
    shift towards each pole; the A/B/C stability cosine, a property of hidden states, is not simulated."""
    accuracy = stats.pairwise_accuracy(pos, neg)
    inputs = deadzones.DeadZoneInputs(accuracy, stats.dprime(pos, neg), np.nan, np.nan)
    valid = _heldout_status(pos, neg) == "valid" and deadzones.severity(inputs) < deadzones.DEAD_SEVERITY
    to_pos, to_neg = (float(np.mean(v)) for v in _pole_shifts(control, positive, negative)[0])
    return deadzones.classify(accuracy, np.nan, to_pos, to_neg, validated=valid)


def _heldout_status(pos: np.ndarray, neg: np.ndarray) -> str:
    """`validity.heldout_status` of one axis's held-out answers, as the calibration computes it."""
    low, _ = stats.pairwise_accuracy_ci(pos, neg)
    evaluation = pd.DataFrame(
        {"pairwise_accuracy": [stats.pairwise_accuracy(pos, neg)], "accuracy_ci_low": [low]}, index=["x"]
    )
    return validity.heldout_status(evaluation)["x"]


def _validated(pos: np.ndarray, neg: np.ndarray) -> bool:
    return _heldout_status(pos, neg) == "valid"


# -- the checks ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """The sizes the profiles do not set: the notebooks' parameters and the protocol's number of axes."""

    n_axes: int  # the axes a model is measured on: the family of the rules that control multiplicity
    retest_seeds: int  # notebook 02's baseline seeds, the raters of its retest ICC
    benchmark_seeds: int  # notebook 07's benchmark seeds, the raters of the benchmark ICC
    judge_answers: int  # notebook 05's rated answers per axis
    judge_scale: tuple[int, ...]  # the judge's rating scale

    @classmethod
    def of(cls, protocol: Protocol, *, retest_seeds: int, benchmark_seeds: int, judge_answers: int) -> Design:
        """The design of `protocol`: its number of axes and its judge's rating scale (judge.yaml)."""
        scale = load_prompts(protocol.file("judge.yaml"), ()).scale
        return cls(len(protocol.names), retest_seeds, benchmark_seeds, judge_answers, scale)


def checks(profile: Profile, drift_sizes: DriftProfile, design: Design) -> list[Check]:
    """Every interval's coverage and every rule's false-positive rate at the sizes of `profile`, of its
    drift sizes `drift_sizes` and of `design`."""
    n_axes, retest_seeds = design.n_axes, design.retest_seeds
    benchmark_seeds, judge_answers, scale = design.benchmark_seeds, design.judge_answers, design.judge_scale
    n_q, n_eval, n_conv = profile.n_baseline, profile.n_evaluation, drift_sizes.n_scenarios
    turns, n_control = drift_sizes.n_conflict, drift_sizes.n_controls
    n_bench = profile.n_benchmark
    n_subjects = len(SCENARIOS) * n_bench
    pairs = len(SCENARIOS) // 2  # the scenarios come in pairs asking for either pole
    skew = SKEWED.mean()
    validation_level = (1 - NOMINAL_COVERAGE) / 2  # the accuracy interval's low end above chance: one-sided

    def cover(interval, sample: Sample, truth: float) -> Callable[[int, int], Estimate]:
        return lambda n_sims, seed: coverage(interval, sample, truth, n_sims=n_sims, seed=seed)

    def fire(rule, sample: Sample) -> Callable[[int, int], Estimate]:
        return lambda n_sims, seed: rejection_rate(rule, sample, n_sims=n_sims, seed=seed)

    paired = f"{n_q} paired questions"
    return [
        Check(
            "fingerprint mean CI",
            COVERAGE,
            f"{n_q} questions",
            NOMINAL_COVERAGE,
            "per-question values beta(2, 5) on [-1, 1]",
            cover(_fingerprint_ci, lambda rng: (SKEWED.rvs(n_q, random_state=rng),), skew),
        ),
        Check(
            "baseline retest ICC CI",
            COVERAGE,
            f"{n_q} questions x {retest_seeds} seeds",
            NOMINAL_COVERAGE,
            f"two-way random effects, ICC(2,1) {icc_truth():.2f}",
            cover(_icc_ci, lambda rng: (_two_way(rng, n_q, retest_seeds),), icc_truth()),
        ),
        Check(
            "held-out accuracy CI",
            COVERAGE,
            f"{n_eval} answers per pole",
            NOMINAL_COVERAGE,
            f"normal poles, AUC {SEPARATED_AUC}",
            cover(stats.pairwise_accuracy_ci, lambda rng: _poles(rng, n_eval, SEPARATED_AUC), SEPARATED_AUC),
        ),
        Check(
            "neutral obedience CI",
            COVERAGE,
            f"{profile.n_calibration} calibration questions",
            NOMINAL_COVERAGE,
            f"separable axis (AUC {SEPARATED_AUC}), default at {DEFAULT_POSITION:g} between the poles, scale "
            "estimated from the same answers",
            cover(_obedience_ci, lambda rng: _calibration(rng, profile.n_calibration), 1 - DEFAULT_POSITION),
        ),
        Check(
            "benchmark retest ICC CI",
            COVERAGE,
            f"{n_subjects} answers x {benchmark_seeds} seeds",
            NOMINAL_COVERAGE,
            f"two-way random effects, ICC(2,1) {icc_truth():.2f}",
            cover(_icc_ci, lambda rng: (_two_way(rng, n_subjects, benchmark_seeds),), icc_truth()),
        ),
        Check(
            "benchmark contrast CI",
            COVERAGE,
            f"{n_bench} questions",
            NOMINAL_COVERAGE,
            f"the instructions move answers {HEALTHY_SHIFT} towards one pole and 0 towards the other",
            cover(_contrast_ci, lambda rng: _instructed(rng, n_bench, HEALTHY_SHIFT, 0.0), HEALTHY_SHIFT),
        ),
        Check(
            "drift mean slope CI",
            COVERAGE,
            f"{n_conv} conversations x {turns} turns",
            NOMINAL_COVERAGE,
            f"linear trajectories, mean slope {MEAN_SLOPE}",
            cover(
                _drift_ci,
                lambda rng: (
                    _conversations(rng, n_conv, turns, MEAN_SLOPE),
                    _conversations(rng, n_control, turns, 0.0),
                ),
                MEAN_SLOPE,
            ),
        ),
        Check(
            "judge rho CI",
            COVERAGE,
            f"{judge_answers} rated answers",
            NOMINAL_COVERAGE,
            f"latent correlation {JUDGE_CORRELATION}, ratings rounded onto the judge's scale {scale}",
            cover(_judge_ci, lambda rng: _judged(rng, judge_answers, scale), judge_truth(scale)),
        ),
        Check(
            "base/instruct std ratio CI",
            COVERAGE,
            paired,
            NOMINAL_COVERAGE,
            f"bivariate normal, ratio {ratio_truth():.2f}, correlation {RATIO_CORRELATION}",
            cover(_ratio_ci, lambda rng: _ratio_pair(rng, n_q), ratio_truth()),
        ),
        Check(
            "thinking shift CI",
            COVERAGE,
            paired,
            NOMINAL_COVERAGE,
            "paired readings, beta(2, 5) noise against normal noise",
            cover(_thinking_ci, lambda rng: _paired(rng, n_q), skew),
        ),
        Check(
            "compare difference CIs (all axes)",
            COVERAGE,
            f"{paired} x {n_axes} axes",
            NOMINAL_COVERAGE,
            "paired readings, beta(2, 5) noise against normal noise; simultaneous over the axes",
            cover(_compare_ci, lambda rng: _paired(rng, n_q, n_axes), -skew),
        ),
        Check(
            "compare flag",
            FALSE_POSITIVE,
            f"{paired} x {n_axes} axes",
            compare.ALPHA,
            "no difference on any axis (family-wise): both readings with beta(2, 5) noise",
            fire(_compare_flag, lambda rng: _paired_null(rng, n_q, n_axes)),
        ),
        Check(
            "drift significance",
            FALSE_POSITIVE,
            f"{n_conv} + {n_control} conversations x {turns} turns x {n_axes} axes",
            drift.ALPHA,
            "no drift on any axis (family-wise): mean slope 0 in conflict and control conversations",
            fire(
                _drift_significant,
                lambda rng: (
                    _conversations(rng, n_conv, turns, 0.0, n_axes),
                    _conversations(rng, n_control, turns, 0.0, n_axes),
                ),
            ),
        ),
        Check(
            "benchmark pass",
            FALSE_POSITIVE,
            f"{profile.n_benchmark} questions x {len(SCENARIOS)} scenarios x {n_axes} axes",
            instruction_benchmark.ALPHA,
            f"each pole's instruction moves answers {SAME_WAY_SHIFT:g} (10 noise sd) towards the same pole "
            "(family-wise)",
            fire(
                _benchmark_passes,
                lambda rng: _instructed(rng, n_bench, SAME_WAY_SHIFT, -SAME_WAY_SHIFT, pairs * n_axes),
            ),
        ),
        Check(
            "dead-zone class: healthy axis classed dead",
            FALSE_POSITIVE,
            f"{n_eval} answers per pole, {n_bench} benchmark questions",
            MISCLASSIFIED,
            f"AUC {deadzones.ACCURACY_GOOD}, each pole instruction moves answers {HEALTHY_SHIFT} its way; "
            "classed hard or soft",
            fire(
                lambda *data: _dead_zone_class(*data) in ("hard", "soft"),
                lambda rng: (
                    *_poles(rng, n_eval, deadzones.ACCURACY_GOOD),
                    *_instructed(rng, n_bench, HEALTHY_SHIFT, HEALTHY_SHIFT),
                ),
            ),
        ),
        Check(
            "dead-zone class: dead axis classed healthy",
            FALSE_POSITIVE,
            f"{n_eval} answers per pole, {n_bench} benchmark questions",
            validation_level,
            "AUC 0.5, instructions move nothing; classed healthy or asymmetric (a validated axis only)",
            fire(
                lambda *data: _dead_zone_class(*data) in ("healthy", "asymmetric"),
                lambda rng: (*_poles(rng, n_eval, validity.CHANCE), *_instructed(rng, n_bench, 0.0, 0.0)),
            ),
        ),
        Check(
            "dead-zone class: symmetric axis classed asymmetric",
            FALSE_POSITIVE,
            f"{n_eval} answers per pole, {n_bench} benchmark questions",
            MISCLASSIFIED,
            f"AUC {deadzones.ACCURACY_GOOD}, each pole instruction moves answers {HEALTHY_SHIFT} its way; "
            "classed asymmetric",
            fire(
                lambda *data: _dead_zone_class(*data) == "asymmetric",
                lambda rng: (
                    *_poles(rng, n_eval, deadzones.ACCURACY_GOOD),
                    *_instructed(rng, n_bench, HEALTHY_SHIFT, HEALTHY_SHIFT),
                ),
            ),
        ),
        Check(
            "judge agreement",
            FALSE_POSITIVE,
            f"{judge_answers} rated answers x {n_axes} axes",
            judge_stats.ALPHA / 2,
            "ratings independent of the projections on every axis (family-wise; one-sided)",
            fire(_judge_agrees, lambda rng: _judged(rng, judge_answers, scale, 0.0, n_axes)),
        ),
        Check(
            "judge answers by position",
            FALSE_POSITIVE,
            f"{n_eval * n_axes} pairs in both orders",
            judge_stats.ALPHA,
            f"no position preference: the positive answer picked in {JUDGE_RIGHT:.0%} of showings",
            fire(judge_stats.answers_by_position, lambda rng: _showings(rng, n_eval * n_axes)),
        ),
        Check(
            "axis validation",
            FALSE_POSITIVE,
            f"{n_eval} answers per pole",
            validation_level,
            "poles not separated: AUC 0.5",
            fire(_validated, lambda rng: _poles(rng, n_eval, validity.CHANCE)),
        ),
        *control_checks(profile),
    ]


# -- notebook 13's controls ----------------------------------------------------------------------------------

GAIN_AUCS = (0.8, 0.7)  # held-out accuracy of the axis and of its lexical control whose difference is checked
NULL_AUC = 0.75  # both the axis's and its control's accuracy under the beyond-words rule's null
SCORE_CORRELATION = 0.5  # correlation of the axis's and the control's scores of one answer
HEAVY_DF = 3  # degrees of freedom of the heavy-tailed (Student t) noise
DOSE_SLOPE = 0.3  # the mean per-grade slope whose interval is checked (projection units per grade)
CONVERGENT_CORRELATION = 0.5  # latent correlation of the projection with the text metric
NOISES = {"normal": None, f"t({HEAVY_DF})": HEAVY_DF}


def _draw(rng: np.random.Generator, shape, df: int | None) -> np.ndarray:
    """Standard normal noise, or Student t with `df` degrees of freedom scaled to unit sd."""
    if df is None:
        return rng.standard_normal(shape)
    return rng.standard_t(df, shape) / np.sqrt(df / (df - 2))


def _scored(rng: np.random.Generator, n: int, aucs: tuple[float, float], df: int | None) -> tuple:
    """n evaluation questions, each answered under both poles and scored by an axis and by a lexical
    control: noise (`_draw`) correlated SCORE_CORRELATION between an answer's two scores, a per-question
    effect (SHARED_SD) shared by the question's answers and scores, and the poles apart by the normal gap of
    `aucs` (axis, control): (axis pos, axis neg, control pos, control neg)."""
    gaps = [np.sqrt(2) * scipy.stats.norm.ppf(a) for a in aucs]
    first = _draw(rng, (2, n), df)
    second = SCORE_CORRELATION * first + np.sqrt(1 - SCORE_CORRELATION**2) * _draw(rng, (2, n), df)
    shared = rng.normal(0, SHARED_SD, n)
    return gaps[0] + first[0] + shared, first[1] + shared, gaps[1] + second[0] + shared, second[1] + shared


@cache
def gain_truth(aucs: tuple[float, float], df: int | None, n_draws: int = 400_000, seed: int = 0) -> float:
    """The population accuracy difference (axis minus control) of `_scored`: answers of different
    questions compared, from one large draw."""
    ap, an, cp, cn = _scored(np.random.default_rng(seed), n_draws, aucs, df)
    half = n_draws // 2
    return float(np.mean(ap[:half] > an[half:]) - np.mean(cp[:half] > cn[half:]))


def _evaluation_answers(n: int) -> controls.AxisAnswers:
    """n evaluation questions answered under both poles (positive answers first), nothing to fit."""
    pole = np.repeat([1, -1], n)
    return controls.AxisAnswers(
        states=np.zeros((2 * n, 1)),
        pole=pole,
        question=np.tile(np.arange(n), 2),
        calibration=np.zeros(2 * n, dtype=bool),
        text=np.full(2 * n, "", dtype=object),
        n_tokens=np.ones(2 * n),
    )


def _gain(ap: np.ndarray, an: np.ndarray, cp: np.ndarray, cn: np.ndarray) -> dict:
    """`controls.accuracy_gain` of the axis's scores over the control's, laid out as the analysis does."""
    data = _evaluation_answers(len(ap))
    return controls.accuracy_gain(data, np.r_[ap, an], {"text": np.r_[cp, cn]})


def _gain_ci(*scores: np.ndarray) -> tuple[float, float]:
    found = _gain(*scores)
    return found["gain_ci_low"], found["gain_ci_high"]


def _beyond_words(*scores: np.ndarray) -> bool:
    """Whether `validity.lexical_status` classes the axis beyond its words."""
    return validity.lexical_status(pd.DataFrame([_gain(*scores)]))[0] == validity.BEYOND


def _graded(rng: np.random.Generator, n: int, slope: float, df: int | None) -> tuple:
    """n calibration questions answered at the five grade levels -2..2: a per-question intercept
    (sd 1) and slope (mean `slope`, sd SLOPE_SD * 10), and noise (`_draw`, sd NOISE_SD * 2):
    (projections, levels, questions)."""
    levels = np.tile(np.arange(-2, 3), n)
    questions = np.repeat(np.arange(n), 5)
    lines = rng.normal(0, 1, n)[questions] + rng.normal(slope, 10 * SLOPE_SD, n)[questions] * levels
    return lines + 2 * NOISE_SD * _draw(rng, len(levels), df), levels, questions


def _dose_ci(*data: np.ndarray) -> tuple[float, float]:
    found = controls.dose_trend(*data)
    return found["dose_slope_low"], found["dose_slope_high"]


def _dose_trend(*data: np.ndarray) -> bool:
    """The trend test's claim: the slope's interval lies above 0."""
    return controls.dose_trend(*data)["dose_slope_low"] > 0


def _convergent_pair(rng: np.random.Generator, n: int, df: int | None) -> tuple:
    """n baseline questions: a projection and a text metric with latent correlation CONVERGENT_CORRELATION,
    bivariate normal, or bivariate t (`df`) with the metric exponentiated (skewed and heavy-tailed):
    (projection, metric, question)."""
    r = CONVERGENT_CORRELATION
    z = rng.multivariate_normal([0, 0], [[1, r], [r, 1]], n)
    if df is not None:
        z = z / np.sqrt(rng.chisquare(df, (n, 1)) / df)
        z[:, 1] = np.exp(z[:, 1])
    return z[:, 0], z[:, 1], np.arange(n)


@cache
def convergent_truth(df: int | None, n_draws: int = 400_000, seed: int = 0) -> float:
    """The population Spearman rho of `_convergent_pair`, from one large draw."""
    x, y, _ = _convergent_pair(np.random.default_rng(seed), n_draws, df)
    return float(scipy.stats.spearmanr(x, y).statistic)


def _convergent_ci(*data: np.ndarray) -> tuple[float, float]:
    found = controls.convergent(*data)
    return found["ci_low"], found["ci_high"]


def control_checks(profile: Profile) -> list[Check]:
    """Notebook 13's intervals (coverage) and its two claims (false-positive rates), each under normal and
    heavy-tailed (t(3)) noise, at the sizes of `profile`."""
    n_eval, n_cal, n_q = profile.n_evaluation, profile.n_calibration, profile.n_baseline
    one_sided = (1 - NOMINAL_COVERAGE) / 2

    def cover(interval, sample: Sample, truth: float) -> Callable[[int, int], Estimate]:
        return lambda n_sims, seed: coverage(interval, sample, truth, n_sims=n_sims, seed=seed)

    def fire(rule, sample: Sample) -> Callable[[int, int], Estimate]:
        return lambda n_sims, seed: rejection_rate(rule, sample, n_sims=n_sims, seed=seed)

    out = []
    for noise, df in NOISES.items():
        pairs = f"{n_eval} questions, both poles"
        out += [
            Check(
                f"accuracy gain over words CI ({noise})",
                COVERAGE,
                pairs,
                NOMINAL_COVERAGE,
                f"axis AUC {GAIN_AUCS[0]} vs control {GAIN_AUCS[1]}, {noise} noise correlated "
                f"{SCORE_CORRELATION}, per-question effect",
                cover(
                    _gain_ci,
                    lambda rng, df=df: _scored(rng, n_eval, GAIN_AUCS, df),
                    gain_truth(GAIN_AUCS, df),
                ),
            ),
            Check(
                f"beyond-words class ({noise})",
                FALSE_POSITIVE,
                pairs,
                one_sided,
                f"axis and control both AUC {NULL_AUC}, {noise} noise correlated {SCORE_CORRELATION}",
                fire(_beyond_words, lambda rng, df=df: _scored(rng, n_eval, (NULL_AUC, NULL_AUC), df)),
            ),
            Check(
                f"dose-response slope CI ({noise})",
                COVERAGE,
                f"{n_cal} questions x 5 grades",
                NOMINAL_COVERAGE,
                f"per-question lines, mean slope {DOSE_SLOPE}, {noise} noise",
                cover(_dose_ci, lambda rng, df=df: _graded(rng, n_cal, DOSE_SLOPE, df), DOSE_SLOPE),
            ),
            Check(
                f"dose-response trend ({noise})",
                FALSE_POSITIVE,
                f"{n_cal} questions x 5 grades",
                one_sided,
                f"per-question lines, mean slope 0, {noise} noise",
                fire(_dose_trend, lambda rng, df=df: _graded(rng, n_cal, 0.0, df)),
            ),
            Check(
                f"text-metric rho CI ({noise})",
                COVERAGE,
                f"{n_q} questions",
                NOMINAL_COVERAGE,
                f"latent correlation {CONVERGENT_CORRELATION}"
                + ("" if df is None else f", bivariate {noise}, the metric exponentiated"),
                cover(
                    _convergent_ci, lambda rng, df=df: _convergent_pair(rng, n_q, df), convergent_truth(df)
                ),
            ),
        ]
    return out


def _measure(task: tuple[str, int, Design, int, int]) -> dict[str, Any]:
    """The row of check number `index` of a profile (a module-level function, so a worker process can
    run it)."""
    name, index, design, n_sims, seed = task
    return checks(PROFILES[name], DRIFT_PROFILES[name], design)[index].row(name, n_sims, seed)


def check_table(
    profiles: Sequence[str], design: Design, *, n_sims: int, seed: int = 0, jobs: int = 1
) -> pd.DataFrame:
    """Every check at the sizes of each named profile (`PROFILES`, `DRIFT_PROFILES`) and of `design`, one
    row per check and profile (`Check.row`), run in `jobs` processes; the rows do not depend on `jobs`."""
    tasks = [
        (name, i, design, n_sims, seed)
        for name in profiles
        for i in range(len(checks(PROFILES[name], DRIFT_PROFILES[name], design)))
    ]
    if jobs == 1:
        return pd.DataFrame(map(_measure, tasks))
    with ProcessPoolExecutor(jobs) as pool:
        return pd.DataFrame(pool.map(_measure, tasks))


@dataclass
class StatisticsCheckResult(Result):
    """Notebook 12: the simulated coverage of every interval and false-positive rate of every rule."""

    name: ClassVar[str] = "statistics_check"
    notebook: ClassVar[str] = "12_statistics_check"
    needs: ClassVar[tuple[str, ...]] = ()
    cross_model: ClassVar[bool] = True  # synthetic data: run once, for no model
    paper_digits: ClassVar[int] = 3

    design: dict  # the `Design`'s sizes
    n_sims: int
    seed: int
    table: pd.DataFrame  # `check_table`

    @property
    def failing(self) -> pd.DataFrame:
        return self.table[~self.table["holds"].astype(bool)]

    def paper(self) -> dict:
        table = self.table
        cov, fpr = table[table["kind"] == COVERAGE], table[table["kind"] == FALSE_POSITIVE]
        return {
            "n_sims": self.n_sims,
            "n_checks": len(table),
            "n_failing": len(self.failing),
            "coverage_bound": COVERAGE_BOUND,
            "min_coverage": cov["measured"].min(),
            "max_false_positive_excess": (fpr["measured"] - fpr["nominal"]).max(),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        wide = self.table.pivot_table(
            index=["check", "nominal", "bound"], columns="profile", values="measured", sort=False
        )
        wide = wide.reset_index(["nominal", "bound"])[["nominal", "bound", *self.table["profile"].unique()]]
        return {"statistics_check_table": PaperTable(wide.rename_axis(columns=None), digits=3)}


def run(
    design: Design, profiles: Sequence[str] = ("quick", "paper"), *, n_sims: int, seed: int = 0, jobs: int = 1
) -> StatisticsCheckResult:
    """`check_table` as a result."""
    table = check_table(profiles, design, n_sims=n_sims, seed=seed, jobs=jobs)
    return StatisticsCheckResult(design=asdict(design), n_sims=n_sims, seed=seed, table=table)
