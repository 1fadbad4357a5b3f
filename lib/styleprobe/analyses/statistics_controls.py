"""Notebook 13's intervals (coverage) and its two claims (false-positive rates) for notebook 12, each under
normal and heavy-tailed (t(3)) noise at a profile's sizes: the gain of an axis over its best lexical
control, the beyond-words class, the dose-response slope and trend, and the text-metric correlation."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe.analyses import controls
from styleprobe.analyses.coverage import (
    COVERAGE,
    FALSE_POSITIVE,
    NOMINAL_COVERAGE,
    Check,
    covering,
    firing,
)
from styleprobe.protocol import validity
from styleprobe.protocol.profiles import Profile

QUESTION_SD = 0.3  # sd of the per-question effect an evaluation question's answers and scores share
GRADE_SLOPE_SD = 0.2  # sd over questions of the per-grade slope of the dose response
GRADE_NOISE_SD = 0.6  # sd of a graded answer's own noise

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
    effect (QUESTION_SD) shared by the question's answers and scores, and the poles apart by the normal gap of
    `aucs` (axis, control): (axis pos, axis neg, control pos, control neg)."""
    gaps = [np.sqrt(2) * scipy.stats.norm.ppf(a) for a in aucs]
    first = _draw(rng, (2, n), df)
    second = SCORE_CORRELATION * first + np.sqrt(1 - SCORE_CORRELATION**2) * _draw(rng, (2, n), df)
    shared = rng.normal(0, QUESTION_SD, n)
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
    (sd 1) and slope (mean `slope`, sd GRADE_SLOPE_SD), and noise (`_draw`, sd GRADE_NOISE_SD):
    (projections, levels, questions)."""
    levels = np.tile(np.arange(-2, 3), n)
    questions = np.repeat(np.arange(n), 5)
    lines = rng.normal(0, 1, n)[questions] + rng.normal(slope, GRADE_SLOPE_SD, n)[questions] * levels
    return lines + GRADE_NOISE_SD * _draw(rng, len(levels), df), levels, questions


def _dose_trend(*data: np.ndarray) -> bool:
    """The trend test's claim: the slope's interval (`controls.dose_slope_ci`) lies above 0."""
    return controls.dose_slope_ci(*data)[0] > 0


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

    out = []
    for noise, df in NOISES.items():
        pairs = f"{n_eval} questions, both poles"
        out += [
            Check(
                "accuracy gain over words CI",
                COVERAGE,
                pairs,
                NOMINAL_COVERAGE,
                noise,
                f"axis AUC {GAIN_AUCS[0]} vs control {GAIN_AUCS[1]}, {noise} noise correlated "
                f"{SCORE_CORRELATION}, per-question effect",
                covering(
                    _gain_ci,
                    lambda rng, df=df: _scored(rng, n_eval, GAIN_AUCS, df),
                    gain_truth(GAIN_AUCS, df),
                ),
            ),
            Check(
                "beyond-words class",
                FALSE_POSITIVE,
                pairs,
                one_sided,
                noise,
                f"axis and control both AUC {NULL_AUC}, {noise} noise correlated {SCORE_CORRELATION}",
                firing(_beyond_words, lambda rng, df=df: _scored(rng, n_eval, (NULL_AUC, NULL_AUC), df)),
            ),
            Check(
                "dose-response slope CI",
                COVERAGE,
                f"{n_cal} questions x 5 grades",
                NOMINAL_COVERAGE,
                noise,
                f"per-question lines, mean slope {DOSE_SLOPE}, {noise} noise",
                covering(
                    controls.dose_slope_ci, lambda rng, df=df: _graded(rng, n_cal, DOSE_SLOPE, df), DOSE_SLOPE
                ),
            ),
            Check(
                "dose-response trend",
                FALSE_POSITIVE,
                f"{n_cal} questions x 5 grades",
                one_sided,
                noise,
                f"per-question lines, mean slope 0, {noise} noise",
                firing(_dose_trend, lambda rng, df=df: _graded(rng, n_cal, 0.0, df)),
            ),
            Check(
                "text-metric rho CI",
                COVERAGE,
                f"{n_q} questions",
                NOMINAL_COVERAGE,
                noise,
                f"latent correlation {CONVERGENT_CORRELATION}"
                + ("" if df is None else f", bivariate {noise}, the metric exponentiated"),
                covering(
                    _convergent_ci, lambda rng, df=df: _convergent_pair(rng, n_q, df), convergent_truth(df)
                ),
            ),
        ]
    return out
