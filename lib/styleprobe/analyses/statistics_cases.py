"""Notebook 12's checks: every interval and rule the project reports, applied by the library's own function
to simulated data laid out as the analyses lay it out, at the sizes each command really uses, under the
hard cases: normal, gamma(4), t3 and chi²(1) question effects; correlated axes; seed offsets; skewed
contrasts; axes fitted from simulated states at d′ 0.5, 1 and 2 with the floor; true accuracies from 0.5 to
0.8. Each check names its condition (`Check.condition`) and what else it draws (`Check.setting`)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe import stats
from styleprobe.analyses import base_vs_instruct, compare, deadzones, drift, instruction_benchmark
from styleprobe.analyses import simulation as sim
from styleprobe.analyses.coverage import (
    COVERAGE,
    FALSE_POSITIVE,
    NOMINAL_COVERAGE,
    POWER,
    Check,
    Estimate,
    coverage_of,
    covering,
    firing,
    share,
)
from styleprobe.analyses.instruction_benchmark import SCENARIOS
from styleprobe.analyses.judge import stats as judge_stats
from styleprobe.analyses.judge.core import load_prompts
from styleprobe.analyses.statistics_controls import control_checks
from styleprobe.protocol import fingerprint, validity
from styleprobe.protocol.profiles import DriftProfile, Profile
from styleprobe.protocol.spec import Protocol

ONE_SIDED = (1 - NOMINAL_COVERAGE) / 2  # a lower interval end above a value: a one-sided 2.5 % test
DPRIMES = (0.5, 1.0, 2.0)  # the fitted axes' true separation (the embedded model's axes: 0.5-1)
ACCURACIES = (0.5, 0.6, 0.65, 0.8)  # true held-out accuracies of the validation check
SEPARATED_AUC = 0.8  # the held-out accuracy whose interval is checked
SCALE_RATIO, RATIO_CORRELATION = 0.5, 0.5  # instruct / base scale, and the models' correlation over questions
NOISE_SD = 0.3  # sd of a benchmark answer's noise and of a thinking shift over questions
SAME_WAY_SHIFT = 10 * NOISE_SD
"""The benchmark's least favourable null: both instructions of a pair move answers this far towards the same
pole, so far that only the contrast between them decides (the test of the own shift always passes)."""
HEALTHY_SHIFT = 0.5  # each pole instruction moves a healthy axis' answers this far towards its pole
MISCLASSIFIED = 0.05
"""The share of data sets in which sampling noise alone may class a clearly healthy axis dead: the classes
compare point estimates with thresholds and have no nominal level of their own."""
SLOPE_SD, MEAN_SLOPE, TURN_SD = (
    0.02,
    0.02,
    0.3,
)  # drift: slopes' sd over conversations, their mean, turn noise
COMPARE_SHIFT = 0.5
"""The power of `compare` is measured for a shift of this many answer sds on one axis."""
JUDGE_CORRELATION = 0.5  # correlation of the projection with the judge's latent rating
JUDGE_RIGHT = 0.7  # the share of showings in which a judge without position preference picks the positive


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

    def baseline_runs(self, profile: Profile) -> dict[int, str]:
        """The seeds of a fingerprint per command that makes one: the CLI's (the profile's) and notebook
        02's."""
        runs = {len(profile.seeds): "CLI fingerprint", self.retest_seeds: "notebook 02"}
        if len(profile.seeds) == self.retest_seeds:
            runs[self.retest_seeds] = "CLI fingerprint and notebook 02"
        return runs


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator of its own for each check and condition, fixed by the simulation seed."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


# -- held-out accuracy and validation ----------------------------------------------------------------------


@cache
def _newcombe(n: int, auc: float, family: str, n_sims: int, seed: int) -> pd.DataFrame:
    """Per data set, the held-out accuracy's interval (`stats.pairwise_accuracy_ci`) and the validation
    status (`validity.heldout_status`) of `simulation.held_out_poles`."""
    pos, neg = sim.held_out_poles(_rng(seed, "poles", n, auc, family), n_sims, n, auc, family)
    bounds = np.array([stats.pairwise_accuracy_ci(p, q) for p, q in zip(pos, neg, strict=True)])
    table = pd.DataFrame({"accuracy_ci_low": bounds[:, 0], "accuracy_ci_high": bounds[:, 1]})
    table["validation"] = validity.heldout_status(table)
    return table


def _valid(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Whether each data set's held-out answers [reps, n] validate (`validity.heldout_status`)."""
    low = [stats.pairwise_accuracy_ci(p, q)[0] for p, q in zip(pos, neg, strict=True)]
    return (validity.heldout_status(pd.DataFrame({"accuracy_ci_low": low})) == "valid").to_numpy()


def accuracy_checks(profile: Profile) -> list[Check]:
    """The held-out accuracy's interval, and the validation rule at true accuracies from chance to 0.8."""
    n = profile.n_evaluation
    size = f"{n} answers per pole"
    shared = "a question's effect (half the variance) shared by its two answers"
    out = []
    for family in sim.FAMILIES:
        out.append(
            Check(
                "held-out accuracy CI",
                COVERAGE,
                size,
                NOMINAL_COVERAGE,
                family,
                f"true accuracy {SEPARATED_AUC}; {shared}",
                lambda n_sims, seed, f=family: _accuracy_coverage(n, f, n_sims, seed),
            )
        )
    for auc in ACCURACIES:
        for family in sim.FAMILIES:
            null = auc <= validity.MIN_ACCURACY
            out.append(
                Check(
                    "axis validation",
                    FALSE_POSITIVE if null else POWER,
                    size,
                    ONE_SIDED if null else np.nan,
                    f"true accuracy {auc:g}, {family}",
                    f"validates: interval's lower end above {validity.MIN_ACCURACY}; {shared}",
                    lambda n_sims, seed, a=auc, f=family: share(
                        _newcombe(n, a, f, n_sims, seed)["validation"] == "valid"
                    ),
                )
            )
    return out


def _accuracy_coverage(n: int, family: str, n_sims: int, seed: int) -> Estimate:
    table = _newcombe(n, SEPARATED_AUC, family, n_sims, seed)
    return coverage_of(table["accuracy_ci_low"], table["accuracy_ci_high"], SEPARATED_AUC)


# -- fitted axes: the fingerprint position and the obediences ---------------------------------------------


@cache
def _fitted(
    states: sim.States, n_cal: int, n_eval: int, n_sims: int, seed: int
) -> tuple[sim.FittedAxes, np.ndarray]:
    """`States.fit` of `n_sims` axes with their validation, cached so the checks on them share one fit."""
    fit = states.fit(_rng(seed, "states", states, n_cal, n_eval), n_sims, n_cal, n_eval)
    return fit, _valid(*(fit.normalised(e) for e in fit.evaluation))


def _position(
    states: sim.States, sizes: tuple[int, ...], seeds: int, seed_sd: float, n_sims: int, seed: int
) -> Estimate:
    """Coverage of the fingerprint's position interval in the unit it is reported in (`fingerprint`: pole
    units on a validated axis whose scale is not the floor, else within-pole spreads)."""
    n_cal, n_eval, n_base = sizes
    fit, valid = _fitted(states, n_cal, n_eval, n_sims, seed)
    raw = fit.baseline(_rng(seed, "baseline", states, sizes, seeds, seed_sd), n_base, seeds, seed_sd)
    values = fit.normalised(raw)  # [reps, questions, seeds], as `project_results` gives them
    var, df = fingerprint.mean_variance(values)
    in_poles = valid & ~fit.floored
    _, low, high = fingerprint.position_ci(
        values.mean(-1).mean(-1), var, df, fit.scale, fit.spread, fit.errors, in_poles
    )
    truth = np.where(in_poles, *fit.truth)
    reported = np.isfinite(low) & np.isfinite(high)  # the table shows no interval where it is unbounded
    return coverage_of(low, high, truth, reported, floored=fit.floored.mean(), pole_unit=in_poles.mean())


def _obedience(states: sim.States, n_cal: int, n_eval: int, n_sims: int, seed: int) -> Estimate:
    """Coverage of obey+'s interval (`calibration.neutral_control`: Fieller's, `stats.paired_ratio_ci`),
    reported on axes whose scale is not the floor."""
    fit, _ = _fitted(states, n_cal, n_eval, n_sims, seed)
    pos, neg, neutral = fit.held
    low, high = stats.paired_ratio_ci(pos - neutral, (pos - neg) / 2)
    reported = ~fit.floored & np.isfinite(low) & np.isfinite(high)
    return coverage_of(low, high, fit.truth_obey[0], reported, floored=fit.floored.mean())


def fitted_axis_checks(profile: Profile, design: Design) -> list[Check]:
    """The fingerprint position at each command's seeds and the obediences, on axes fitted from states."""
    n_cal, n_eval, n_base = profile.n_calibration, profile.n_evaluation, profile.n_baseline
    conditions = [(d, f, 0.0) for d in DPRIMES for f in sim.FAMILIES]
    conditions += [(1.0, "normal", s) for s in sim.SEED_SDS if s > 0]
    setting = (
        f"{sim.States(1.0).dims} dimensions, axes fitted and cross-fitted as calibrated, scale floored; the "
        f"default at {sim.States(1.0).default} along the style and {sim.States(1.0).off_axis} sd beside it"
    )
    out = []
    for dprime, family, seed_sd in conditions:  # the checks of one fitted axis side by side: they share it
        states = sim.States(dprime, family)
        condition = f"d′ {dprime:g}, {family}" + (f", seed sd {seed_sd:g}" if seed_sd else "")
        if not seed_sd:  # the obediences do not depend on the baseline's seeds
            out.append(
                Check(
                    "neutral obedience CI",
                    COVERAGE,
                    f"{n_cal} calibration questions",
                    NOMINAL_COVERAGE,
                    condition,
                    f"{setting}; neutral control at {states.neutral} along the style",
                    lambda n_sims, seed, s=states: _obedience(s, n_cal, n_eval, n_sims, seed),
                )
            )
        for seeds, command in design.baseline_runs(profile).items():
            size = f"{n_cal} calibration, {n_eval} held-out, {n_base} baseline questions x {seeds} seed(s)"
            out.append(
                Check(
                    "fingerprint position CI",
                    COVERAGE,
                    f"{size} ({command})",
                    NOMINAL_COVERAGE,
                    condition,
                    setting,
                    lambda n_sims, seed, s=states, k=seeds, sd=seed_sd: _position(
                        s, (n_cal, n_eval, n_base), k, sd, n_sims, seed
                    ),
                )
            )
    return out


# -- reliability, variability --------------------------------------------------------------------------------


def icc_checks(profile: Profile, design: Design) -> list[Check]:
    """The retest ICC intervals of the baseline and the benchmark under each family and seed offset."""
    sizes = {
        "baseline retest ICC CI": (profile.n_baseline, design.retest_seeds, "questions"),
        "benchmark retest ICC CI": (len(SCENARIOS) * profile.n_benchmark, design.benchmark_seeds, "answers"),
    }
    out = []
    for name, (n, k, what) in sizes.items():
        for family in sim.FAMILIES:
            for seed_sd in sim.SEED_SDS:
                model = sim.TwoWay(family, seed_sd)
                out.append(
                    Check(
                        name,
                        COVERAGE,
                        f"{n} {what} x {k} seeds",
                        NOMINAL_COVERAGE,
                        f"{family}, seed sd {seed_sd:g}",
                        f"two-way random effects, ICC(2,1) {model.icc:.2f}",
                        lambda n_sims, seed, m=model, n=n, k=k, c=name: _icc(m, n, k, c, n_sims, seed),
                    )
                )
    return out


def _icc(model: sim.TwoWay, n: int, k: int, name: str, n_sims: int, seed: int) -> Estimate:
    _, low, high = stats.icc_with_ci(model.draw(_rng(seed, name, model, n, k), n_sims, n, k))
    return coverage_of(low, high, model.icc)


def ratio_checks(profile: Profile) -> list[Check]:
    """The base/instruct scale ratio's interval for each family of margins."""
    n = profile.n_baseline
    return [
        Check(
            "base/instruct scale ratio CI",
            COVERAGE,
            f"{n} paired questions",
            NOMINAL_COVERAGE,
            family,
            f"ratio {SCALE_RATIO}, models correlated {RATIO_CORRELATION} over questions",
            lambda n_sims, seed, f=family: _ratio(f, n, n_sims, seed),
        )
        for family in sim.FAMILIES
    ]


def _ratio(family: str, n: int, n_sims: int, seed: int) -> Estimate:
    rng = _rng(seed, "ratio", family, n)
    shared = np.sqrt(RATIO_CORRELATION) * sim.effects(rng, family, (n_sims, n))
    base, instruct = (
        shared + np.sqrt(1 - RATIO_CORRELATION) * sim.effects(rng, family, (n_sims, n)) for _ in "bi"
    )
    _, low, high = base_vs_instruct.scale_ratio(SCALE_RATIO * instruct, base)
    return coverage_of(low, high, SCALE_RATIO)


# -- compare ----------------------------------------------------------------------------------------------


def _runs(
    rng: np.random.Generator, model: sim.TwoWay, n_sims: int, n: int, k: int, m: int, correlated: bool
) -> np.ndarray:
    """Two fingerprints of the same questions, [2, n_sims, k seeds, n questions, m axes]: question effects
    shared by both sides, a seed offset and answer noise per side (all correlated across axes if asked)."""
    questions = model.question_sd * sim.effects(rng, model.family, (1, n_sims, n, 1, m))
    offsets = rng.normal(0, model.seed_sd, (2, n_sims, 1, k, m))
    noise = rng.normal(0, model.noise_sd, (2, n_sims, n, k, m))
    if correlated:
        questions, offsets, noise = (
            sim.correlated(x / s, rng, sim.AXIS_CORRELATION) * s if s else x
            for x, s in ((questions, model.question_sd), (offsets, model.seed_sd), (noise, model.noise_sd))
        )
    return np.moveaxis(questions + offsets + noise, 3, 2)


def _flags(a: np.ndarray, b: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """`compare`'s rule for [reps, k, n, m] runs: seeds as a random effect where it takes them so
    (`compare.seeds_random`), else questions paired."""
    k = a.shape[1]
    if compare.seeds_random(k, k):
        return compare.seed_flags(a.mean(2), b.mean(2), threshold)
    return compare.paired_flags(a.mean(1), b.mean(1), threshold)


def _compare(
    model: sim.TwoWay,
    n: int,
    k: int,
    m: int,
    what: str,
    shift: float,
    correlated: bool,
    n_sims: int,
    seed: int,
) -> Estimate:
    a, b = _runs(_rng(seed, "compare", model, n, k, m, correlated), model, n_sims, n, k, m, correlated)
    b[..., 0] += shift * np.hypot(model.question_sd, model.noise_sd)
    found = _flags(a, b, compare.DEFAULT_THRESHOLD)
    if what == COVERAGE:
        return coverage_of(found["ci_low"].max(-1), found["ci_high"].min(-1), 0.0)
    return share(found["flagged"][..., 0] if shift else found["flagged"].any(-1))


def compare_checks(profile: Profile, design: Design) -> list[Check]:
    """`compare`'s flag (family-wise false positives and power) and its simultaneous intervals, at each
    command's seeds, under seed offsets, families and correlated axes."""
    n, m = profile.n_baseline, design.n_axes
    conditions = [("normal", s, False) for s in sim.SEED_SDS]
    conditions += [(f, 0.1, False) for f in sim.FAMILIES[1:]] + [("normal", 0.1, True)]
    out = []
    for k, command in design.baseline_runs(profile).items():
        size = f"{n} paired questions x {k} seed(s) a side x {m} axes ({command})"
        for family, seed_sd, correlated in conditions:
            model = sim.TwoWay(family, seed_sd)
            condition = f"{family}, seed sd {seed_sd:g}" + (
                f", axes r {sim.AXIS_CORRELATION}" if correlated else ""
            )
            for name, kind in (
                ("compare flag", FALSE_POSITIVE),
                ("compare difference CIs (all axes)", COVERAGE),
            ):
                out.append(
                    Check(
                        name,
                        kind,
                        size,
                        compare.ALPHA if kind == FALSE_POSITIVE else NOMINAL_COVERAGE,
                        condition,
                        "no difference on any axis (family-wise): the same questions, new seeds",
                        lambda n_sims, seed, mo=model, k=k, w=kind, c=correlated: _compare(
                            mo, n, k, m, w, 0.0, c, n_sims, seed
                        ),
                    )
                )
        model = sim.TwoWay("normal", 0.1)
        out.append(
            Check(
                "compare power",
                POWER,
                size,
                np.nan,
                "normal, seed sd 0.1",
                f"B moved {COMPARE_SHIFT} answer sd on one axis; threshold {compare.DEFAULT_THRESHOLD}",
                lambda n_sims, seed, mo=model, k=k: _compare(
                    mo, n, k, m, POWER, COMPARE_SHIFT, False, n_sims, seed
                ),
            )
        )
    return out


# -- benchmark, drift, thinking ----------------------------------------------------------------------------


def _contrasts(rng: np.random.Generator, skew: float, shape: tuple[int, ...], correlated: bool) -> np.ndarray:
    """Per-question contrasts [reps, tests, n] with mean 0, sd NOISE_SD and skewness `skew`; with
    `correlated`, normal and correlated across the tests (the axes)."""
    draw = sim.skewed(rng, skew, shape)
    if correlated:
        draw = np.moveaxis(sim.correlated(np.moveaxis(draw, 1, -1), rng, sim.AXIS_CORRELATION), -1, 1)
    return NOISE_SD * draw


def _benchmark(skew: float, tests: int, n: int, correlated: bool, n_sims: int, seed: int) -> Estimate:
    """Family-wise false positives of the pass rule (`instruction_benchmark.scenario_passes` at ALPHA over
    every scenario; Holm passes something exactly when it does) when only the contrast could pass: the two
    scenarios of a pair share their contrast, and both instructions move answers far the same way."""
    rng = _rng(seed, "benchmark", skew, tests, n, correlated)
    contrast = np.repeat(_contrasts(rng, skew, (n_sims, tests // 2, n), correlated), 2, axis=1)
    away = SAME_WAY_SHIFT + NOISE_SD * rng.standard_normal((n_sims, tests, n))
    passed = instruction_benchmark.scenario_passes(away + contrast, away, n_tests=tests)
    return share(np.asarray(passed).any(-1))


def _mean_ci_coverage(values: np.ndarray, truth: float, skewed: bool = True) -> Estimate:
    """Coverage of the interval of a mean: skewness-corrected (`stats.skewed_mean_ci`, the benchmark's and
    the thinking shift's) or t (`stats.mean_ci`, as drift's `t_summary`)."""
    low, high = (stats.skewed_mean_ci if skewed else stats.mean_ci)(values)
    return coverage_of(low, high, truth)


def benchmark_checks(profile: Profile, design: Design) -> list[Check]:
    n, m = profile.n_benchmark, design.n_axes
    tests = len(SCENARIOS) * m
    out = []
    for skew in sim.CONTRAST_SKEWS:
        out.append(
            Check(
                "benchmark contrast CI",
                COVERAGE,
                f"{n} questions",
                NOMINAL_COVERAGE,
                f"contrasts skew {skew:+g}",
                f"the instructions move answers {HEALTHY_SHIFT} towards one pole and 0 towards the other",
                lambda n_sims, seed, s=skew: _mean_ci_coverage(
                    HEALTHY_SHIFT + _contrasts(_rng(seed, "contrast", s, n), s, (n_sims, n), False),
                    HEALTHY_SHIFT,
                ),
            )
        )
    for skew, correlated in [(s, False) for s in sim.CONTRAST_SKEWS] + [(0.0, True)]:
        out.append(
            Check(
                "benchmark pass",
                FALSE_POSITIVE,
                f"{n} questions x {len(SCENARIOS)} scenarios x {m} axes",
                instruction_benchmark.ALPHA,
                f"contrasts skew {skew:+g}" + (f", axes r {sim.AXIS_CORRELATION}" if correlated else ""),
                f"both instructions move answers {SAME_WAY_SHIFT:g} (10 noise sd) the same way (family-wise)",
                lambda n_sims, seed, s=skew, c=correlated: _benchmark(s, tests, n, c, n_sims, seed),
            )
        )
    return out


def slopes(values: np.ndarray) -> np.ndarray:
    """Each conversation's least-squares slope over its turns (as `drift.ols_slope`), vectorised: values
    [..., conversations, turns, axes] -> [..., conversations, axes]."""
    turns = np.arange(1, values.shape[-2] + 1, dtype=float)
    centred = turns - turns.mean()
    return np.einsum("t,...ta->...a", centred, values - values.mean(-2, keepdims=True)) / (centred**2).sum()


def _conversations(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    turns: int,
    mean_slope: float,
    family: str,
    correlated: bool,
) -> np.ndarray:
    """[reps, n, turns, axes] projections: per conversation and axis a line whose slope is mean_slope plus
    SLOPE_SD times a `family` effect, plus normal turn noise (correlated across axes if asked)."""
    reps, n, m = shape
    slope = mean_slope + SLOPE_SD * sim.effects(rng, family, (reps, n, 1, m))
    noise = rng.standard_normal((reps, n, turns, m))
    if correlated:
        noise = sim.correlated(noise, rng, sim.AXIS_CORRELATION)
    return slope * np.arange(1, turns + 1)[:, None] + TURN_SD * noise


def drift_checks(drift_sizes: DriftProfile, design: Design) -> list[Check]:
    n, n_control, turns, m = (
        drift_sizes.n_scenarios,
        drift_sizes.n_controls,
        drift_sizes.n_conflict,
        design.n_axes,
    )
    out = []
    for family in sim.FAMILIES:
        out.append(
            Check(
                "drift mean slope CI",
                COVERAGE,
                f"{n} conversations x {turns} turns",
                NOMINAL_COVERAGE,
                f"slopes {family}",
                f"linear trajectories, mean slope {MEAN_SLOPE}",
                lambda n_sims, seed, f=family: _mean_ci_coverage(
                    slopes(
                        _conversations(_rng(seed, "slope", f), (n_sims, n, 1), turns, MEAN_SLOPE, f, False)
                    )[..., 0],
                    MEAN_SLOPE,
                    skewed=False,
                ),
            )
        )
    for family, correlated in [(f, False) for f in sim.FAMILIES] + [("normal", True)]:
        out.append(
            Check(
                "drift significance",
                FALSE_POSITIVE,
                f"{n} + {n_control} conversations x {turns} turns x {m} axes",
                drift.ALPHA,
                f"slopes {family}" + (f", axes r {sim.AXIS_CORRELATION}" if correlated else ""),
                "no drift on any axis (family-wise): mean slope 0 in conflict and control conversations",
                lambda n_sims, seed, f=family, c=correlated: _drift(
                    f, c, (n, n_control, turns, m), n_sims, seed
                ),
            )
        )
    return out


def _drift(family: str, correlated: bool, sizes: tuple[int, ...], n_sims: int, seed: int) -> Estimate:
    n, n_control, turns, m = sizes
    rng = _rng(seed, "drift", family, correlated, sizes)
    conflict, control = (
        slopes(_conversations(rng, (n_sims, k, m), turns, 0.0, family, correlated)) for k in (n, n_control)
    )
    return share(drift.drift_decision(conflict, control)["significant"].any(-1))


def thinking_checks(profile: Profile) -> list[Check]:
    n = profile.n_baseline
    return [
        Check(
            "thinking shift CI",
            COVERAGE,
            f"{n} paired questions",
            NOMINAL_COVERAGE,
            f"shifts {family}",
            f"mean shift {HEALTHY_SHIFT}, sd {NOISE_SD} over questions",
            lambda n_sims, seed, f=family: _mean_ci_coverage(
                HEALTHY_SHIFT + NOISE_SD * sim.effects(_rng(seed, "thinking", f), f, (n_sims, n)),
                HEALTHY_SHIFT,
            ),
        )
        for family in sim.FAMILIES
    ]


# -- judge and dead zones: rank-based or point rules, one data set at a time ---------------------------------


def _judged(
    rng: np.random.Generator,
    n: int,
    scale: tuple[int, ...],
    correlation: float = JUDGE_CORRELATION,
    n_axes: int = 1,
) -> tuple:
    """n answers x `n_axes`: a projection and the judge's rating, a standard normal latent rating correlated
    `correlation` with the projection and rounded onto the judge's integer `scale` (squeezed when one
    axis). Spearman's rho is rank-based: the family of the projections does not change it."""
    x = rng.normal(0, 1, (n, n_axes))
    z = correlation * x + np.sqrt(1 - correlation**2) * rng.normal(0, 1, (n, n_axes))
    y = np.clip(np.round(z), min(scale), max(scale))
    return (x[:, 0], y[:, 0]) if n_axes == 1 else (x, y)


@cache
def judge_truth(scale: tuple[int, ...], n_draws: int = 2_000_000, seed: int = 0) -> float:
    """The population Spearman rho of `_judged` (ties in the ratings: mid-ranks), from one large draw."""
    x, y = _judged(np.random.default_rng(seed), n_draws, scale)
    return float(scipy.stats.spearmanr(x, y).statistic)


def _judge_ci(projection: np.ndarray, rating: np.ndarray) -> tuple[float, float]:
    out = judge_stats.correlation(projection, rating)
    return out["ci_low"], out["ci_high"]


def _judge_agrees(projections: np.ndarray, ratings: np.ndarray) -> bool:
    """Whether `judge_stats.agreeing` claims agreement on any axis (answers x axes ratings)."""
    found = [judge_stats.correlation(x, y) for x, y in zip(projections.T, ratings.T, strict=True)]
    return bool(judge_stats.agreeing([f["rho"] for f in found], [f["n"] for f in found]).any())


def _showings(rng: np.random.Generator, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs shown in both orders to a judge without position preference: in each showing it picks the
    positive answer with probability JUDGE_RIGHT."""
    return rng.random(n_pairs) < JUDGE_RIGHT, rng.random(n_pairs) >= JUDGE_RIGHT


def _instructed(rng: np.random.Generator, n: int, to_pos: float, to_neg: float) -> tuple:
    """n questions answered with no instruction (the control) and under each pole's instruction."""
    noise = lambda: NOISE_SD * rng.standard_normal(n)  # noqa: E731
    return noise(), to_pos + noise(), -to_neg + noise()


def _poles(rng: np.random.Generator, n: int, auc: float) -> tuple[np.ndarray, np.ndarray]:
    """Held-out projections of n answers per pole, normal with unit sd, apart so that the AUC is `auc`."""
    gap = np.sqrt(2) * scipy.stats.norm.ppf(auc)
    return rng.normal(gap, 1, n), rng.normal(0, 1, n)


def _dead_zone_class(
    pos: np.ndarray, neg: np.ndarray, control: np.ndarray, positive: np.ndarray, negative: np.ndarray
) -> str:
    """`deadzones.classify` of one axis from its held-out poles and its benchmark answers: accuracy, the
    validation (`validity.heldout_status`, and not dead by the severity of accuracy and d′) and the mean
    shift towards each pole; the A/B/C stability cosine, a property of hidden states, is not simulated."""
    accuracy = stats.pairwise_accuracy(pos, neg)
    inputs = deadzones.DeadZoneInputs(accuracy, stats.dprime(pos, neg), np.nan, np.nan)
    valid = _valid(pos[None], neg[None])[0] and deadzones.severity(inputs) < deadzones.DEAD_SEVERITY
    to_pos, to_neg = float(np.mean(positive - control)), float(np.mean(control - negative))
    return deadzones.classify(accuracy, np.nan, to_pos, to_neg, validated=valid)


def judge_and_class_checks(profile: Profile, design: Design) -> list[Check]:
    """The judge's interval and rules and the dead-zone classes, as before: one data set at a time."""
    n_eval, n_bench, n_axes = profile.n_evaluation, profile.n_benchmark, design.n_axes
    answers, scale = design.judge_answers, design.judge_scale

    classes = f"{n_eval} answers per pole, {n_bench} benchmark questions"
    healthy = lambda rng: (  # noqa: E731
        *_poles(rng, n_eval, deadzones.ACCURACY_GOOD),
        *_instructed(rng, n_bench, HEALTHY_SHIFT, HEALTHY_SHIFT),
    )
    return [
        Check(
            "judge rho CI",
            COVERAGE,
            f"{answers} rated answers",
            NOMINAL_COVERAGE,
            "normal (rank-based)",
            f"latent correlation {JUDGE_CORRELATION}, ratings rounded onto the judge's scale {scale}",
            covering(_judge_ci, lambda rng: _judged(rng, answers, scale), judge_truth(scale)),
        ),
        Check(
            "judge agreement",
            FALSE_POSITIVE,
            f"{answers} rated answers x {n_axes} axes",
            judge_stats.ALPHA / 2,
            "normal (rank-based)",
            "ratings independent of the projections on every axis (family-wise; one-sided)",
            firing(_judge_agrees, lambda rng: _judged(rng, answers, scale, 0.0, n_axes)),
        ),
        Check(
            "judge answers by position",
            FALSE_POSITIVE,
            f"{n_eval * n_axes} pairs in both orders",
            judge_stats.ALPHA,
            "binary picks",
            f"no position preference: the positive answer picked in {JUDGE_RIGHT:.0%} of showings",
            firing(judge_stats.answers_by_position, lambda rng: _showings(rng, n_eval * n_axes)),
        ),
        Check(
            "dead-zone class: healthy axis classed dead",
            FALSE_POSITIVE,
            classes,
            MISCLASSIFIED,
            "normal",
            f"AUC {deadzones.ACCURACY_GOOD}, each pole instruction moves answers {HEALTHY_SHIFT} its way; "
            "classed hard or soft",
            firing(lambda *data: _dead_zone_class(*data) in ("hard", "soft"), healthy),
        ),
        Check(
            "dead-zone class: dead axis classed healthy",
            FALSE_POSITIVE,
            classes,
            ONE_SIDED,
            "normal",
            "AUC 0.5, instructions move nothing; classed healthy or asymmetric (a validated axis only)",
            firing(
                lambda *data: _dead_zone_class(*data) in ("healthy", "asymmetric"),
                lambda rng: (*_poles(rng, n_eval, validity.CHANCE), *_instructed(rng, n_bench, 0.0, 0.0)),
            ),
        ),
        Check(
            "dead-zone class: symmetric axis classed asymmetric",
            FALSE_POSITIVE,
            classes,
            MISCLASSIFIED,
            "normal",
            f"AUC {deadzones.ACCURACY_GOOD}, each pole instruction moves answers {HEALTHY_SHIFT} its way; "
            "classed asymmetric",
            firing(lambda *data: _dead_zone_class(*data) == "asymmetric", healthy),
        ),
    ]


def checks(profile: Profile, drift_sizes: DriftProfile, design: Design) -> list[Check]:
    """Every check at the sizes of `profile`, of its drift sizes `drift_sizes` and of `design`."""
    return [
        *accuracy_checks(profile),
        *fitted_axis_checks(profile, design),
        *icc_checks(profile, design),
        *ratio_checks(profile),
        *compare_checks(profile, design),
        *benchmark_checks(profile, design),
        *drift_checks(drift_sizes, design),
        *thinking_checks(profile),
        *judge_and_class_checks(profile, design),
        *control_checks(profile),
    ]
