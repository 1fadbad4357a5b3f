"""The data notebook 12 draws: families of question effects, skewed contrasts, seed offsets, correlated axes,
and hidden states from which axes are fitted as the calibration fits them. Every draw is vectorised over
replicates (the leading axis), so a check measures a thousand data sets in one call of the library's own
functions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from styleprobe.protocol import axes as axis_fit

FAMILIES = ("normal", "gamma(4)", "t3", "chi²(1)")
"""Distributions of question effects and margins, each standardised to mean 0 and sd 1: symmetric, skewed
(skew 1: the committed formal/casual baseline has skew -1.07), heavy-tailed, and very skewed (skew 2.8)."""
SEED_SDS = (0.0, 0.1, 0.3)
"""Standard deviations of a seed's offset, which moves every answer of a run (answers' sd about 1)."""
CONTRAST_SKEWS = (-2.0, -0.9, 0.0, 2.0)
"""Skewness of the per-question contrasts of the benchmark (0: normal)."""
AXIS_CORRELATION = 0.5
"""The correlation across axes of the correlated-axes condition."""


def effects(rng: np.random.Generator, family: str, shape: tuple[int, ...]) -> np.ndarray:
    """Draws of one of FAMILIES, standardised to mean 0 and sd 1."""
    if family == "normal":
        return rng.standard_normal(shape)
    if family == "gamma(4)":
        return (rng.gamma(4.0, 1.0, shape) - 4.0) / 2.0
    if family == "t3":
        return rng.standard_t(3, shape) / np.sqrt(3.0)
    if family == "chi²(1)":
        return (rng.chisquare(1, shape) - 1.0) / np.sqrt(2.0)
    raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")


def skewed(rng: np.random.Generator, skew: float, shape: tuple[int, ...]) -> np.ndarray:
    """Mean 0, sd 1 and skewness `skew`: a standardised gamma of shape 4 / skew², reflected for a negative
    skew; normal at 0."""
    if skew == 0:
        return rng.standard_normal(shape)
    k = 4.0 / skew**2
    return np.sign(skew) * (rng.gamma(k, 1.0, shape) - k) / np.sqrt(k)


def correlated(draw: np.ndarray, rng: np.random.Generator, r: float) -> np.ndarray:
    """Normal draws [..., m] made correlated `r` across the last axis (a shared normal component)."""
    return np.sqrt(r) * rng.standard_normal((*draw.shape[:-1], 1)) + np.sqrt(1 - r) * draw


@dataclass(frozen=True)
class TwoWay:
    """Questions x seeds under two-way random effects: a question effect of `family`, a seed offset and
    normal answer noise; ICC(2,1) = question variance over the total."""

    family: str = "normal"
    seed_sd: float = 0.3
    question_sd: float = 1.0
    noise_sd: float = 0.95

    @property
    def icc(self) -> float:
        variances = np.array([self.question_sd, self.seed_sd, self.noise_sd]) ** 2
        return float(variances[0] / variances.sum())

    def draw(self, rng: np.random.Generator, reps: int, n: int, k: int, m: int = 1) -> np.ndarray:
        """[reps, n, k] (m = 1) or [reps, n, k, m] for m axes with independent effects."""
        shape = (reps, n, k, m)
        values = (
            self.question_sd * effects(rng, self.family, (reps, n, 1, m))
            + rng.normal(0, self.seed_sd, (reps, 1, k, m))
            + rng.normal(0, self.noise_sd, shape)
        )
        return values[..., 0] if m == 1 else values


@cache
def accuracy_gap(auc: float, family: str, shared: float, n_draws: int = 400_000, seed: int = 0) -> float:
    """The shift between two poles whose answers are sqrt(shared) u + sqrt(1 - shared) e (u the question's
    effect, e the answer's, both of `family`) that gives answers to different questions a pairwise accuracy
    of `auc`, from one large draw."""
    rng = np.random.default_rng(seed)
    one = [np.sqrt(shared) * effects(rng, family, (n_draws,)) for _ in range(2)]
    own = [np.sqrt(1 - shared) * effects(rng, family, (n_draws,)) for _ in range(2)]
    difference = one[0] + own[0] - one[1] - own[1]  # negative answer minus positive one, before the shift
    return float(np.quantile(difference, auc))


def held_out_poles(
    rng: np.random.Generator, reps: int, n: int, auc: float, family: str, shared: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out projections of n evaluation questions answered under each pole, [reps, n] each: a question's
    effect (variance `shared`) is common to its two answers, poles apart so that answers to different
    questions are ordered correctly with probability `auc`."""
    u = np.sqrt(shared) * effects(rng, family, (reps, n))
    own = [np.sqrt(1 - shared) * effects(rng, family, (reps, n)) for _ in range(2)]
    return accuracy_gap(auc, family, shared) + u + own[0], u + own[1]


@dataclass(frozen=True)
class States:
    """Hidden states of `dims` dimensions whose poles lie `dprime` within-pole sds apart along a style
    direction. A question's effect is of `family` along that direction (some questions invite warmer answers
    than others) and shared by every answer to it; answer noise is isotropic and normal; every state shares a
    common offset (hidden states have a large mean). The default answers lie at `default` (pole units) along
    the direction and `off_axis` sds beside it; the neutral control at `neutral`."""

    dprime: float
    family: str = "normal"
    dims: int = 64
    default: float = 0.5
    neutral: float = 0.4
    off_axis: float = 1.0
    common: float = 2.0  # the common offset's sd per dimension

    def fit(self, rng: np.random.Generator, reps: int, n_cal: int, n_eval: int) -> FittedAxes:
        """Calibrate `reps` axes as `protocol.axes.fit_axes` does (direction on all answers, centre, scale,
        spread and their errors from out-of-fold projections) and read held-out answers on them. Answers to
        new questions are independent of the fit, so they are drawn as projections directly."""
        question = HALF * effects(rng, self.family, (reps, n_cal, 1)) * np.eye(self.dims)[0]
        common = self.common * rng.standard_normal((reps, 1, self.dims))

        def answers(at: float) -> np.ndarray:  # [reps, n_cal, dims], `at` pole units along the style
            noise = HALF * rng.standard_normal((reps, n_cal, self.dims))
            return common + question + at * self.dprime / 2 * np.eye(self.dims)[0] + noise

        pos, neg, neu = answers(1.0), answers(-1.0), answers(self.neutral)
        questions = np.arange(n_cal)
        direction = axis_fit.axis_direction(pos, neg).astype(np.float64)  # [reps, dims]
        fp, fn, f0 = axis_fit.folds(questions, questions, questions)
        held = axis_fit.out_of_fold(pos, neg, fp, fn, others=((neu, f0),))
        fitted = [np.einsum("rnd,rd->rn", x, direction) for x in (pos, neg)]
        centre, scale = axis_fit.centre_and_scale(*fitted, held_out=(held[0], held[1]))
        spread = axis_fit.within_spread(*fitted)
        cos = direction[:, 0]  # between the fitted direction and the style direction
        axes = FittedAxes(
            states=self,
            held=tuple(held),
            centre=centre,
            scale=scale,
            spread=spread,
            errors=axis_fit.centre_scale_errors(*fitted, questions, questions, (held[0], held[1])),
            floored=axis_fit.at_floor(scale, spread),
            common=np.einsum("rkd,rd->r", common, direction),
            cos=cos,
            beside=self.off_axis * direction[:, 1],
        )
        q_eval = axes.effect(rng, (reps, n_eval))
        return replace(axes, evaluation=(axes.read(rng, 1.0, q_eval), axes.read(rng, -1.0, q_eval)))


HALF = np.sqrt(0.5)  # the sd of a question's effect and of an answer's noise: within-pole variance 1


@dataclass(frozen=True)
class FittedAxes:
    """`States.fit`'s replicates: raw out-of-fold calibration projections (positive, negative, neutral) by
    question, each axis's centre, scale, spread and their errors (`axes.centre_scale_errors`), whether its
    scale is the floor, the common offset, the cosine to the style direction and the default's offset beside
    it along each fitted direction, and held-out evaluation projections (raw, [reps, n])."""

    states: States
    held: tuple[np.ndarray, np.ndarray, np.ndarray]
    centre: np.ndarray
    scale: np.ndarray
    spread: np.ndarray
    errors: np.ndarray
    floored: np.ndarray
    common: np.ndarray
    cos: np.ndarray
    beside: np.ndarray
    evaluation: tuple[np.ndarray, np.ndarray] = ()

    def effect(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Question effects [reps, ...] along the fitted directions."""
        return (
            HALF * effects(rng, self.states.family, shape) * self.cos.reshape(-1, *([1] * (len(shape) - 1)))
        )

    def read(self, rng: np.random.Generator, at: float, effect: np.ndarray) -> np.ndarray:
        """Projections of new answers at `at` pole units along the style with question effects `effect`
        [reps, ...] and normal noise."""
        shape = (-1, *([1] * (effect.ndim - 1)))
        position = self.common + at * self.states.dprime / 2 * self.cos
        return position.reshape(shape) + effect + HALF * rng.standard_normal(effect.shape)

    def baseline(self, rng: np.random.Generator, n: int, seeds: int, seed_sd: float) -> np.ndarray:
        """Raw projections [reps, n, seeds] of the default answers to n questions under `seeds` seeds, each
        seed moving its whole run by an isotropic normal offset of sd `seed_sd` per dimension."""
        reps = len(self.cos)
        effect = self.effect(rng, (reps, n, 1)) + rng.normal(0, seed_sd, (reps, 1, seeds))
        return self.read(rng, self.states.default, effect + self.beside[:, None, None])

    @property
    def truth(self) -> tuple[np.ndarray, np.ndarray]:
        """Where the default answers lie on average along each fitted direction, relative to the poles'
        midpoint: in pole units (half the separation of the poles' means) and in within-pole spreads."""
        offset = self.states.default * self.states.dprime / 2 * self.cos + self.beside
        return offset / (self.states.dprime / 2 * self.cos), offset / np.sqrt(0.5 * self.cos**2 + 0.5)

    @property
    def truth_obey(self) -> tuple[float, float]:
        """obey+ and obey-: how far each instruction moves answers from the neutral control, in pole units."""
        return 1 - self.states.neutral, 1 + self.states.neutral

    def normalised(self, raw: np.ndarray) -> np.ndarray:
        """Raw projections [reps, ...] in each replicate's pole unit, as `AxisSet.normalise`."""
        shape = (-1, *([1] * (raw.ndim - 1)))
        return (raw - self.centre.reshape(shape)) / self.scale.reshape(shape)
