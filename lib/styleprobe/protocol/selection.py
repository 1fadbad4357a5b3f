"""Choosing each axis's reading (block and token pooling) and estimator by nested cross-validation over the
calibration questions only.

The calibration answers are read once at every block with every pooling (a grid, `Readings.grid`), so a
choice never regenerates or re-reads anything. Folds are made of questions (both poles of a question in one
fold). For one axis:

- `cv_scores`: for every candidate (reading, estimator), the mean over folds of the held-out pairwise
  accuracy of the axis fitted without the fold (ties broken by the held-out standardised separation);
- `choose`: the best candidate by `cv_scores` on the answers it is given;
- `nested`: an honest estimate of the whole procedure: outer folds of questions; within each outer
  training set, inner folds choose the candidate (`choose`), which is fitted on the outer training set and
  scored on the outer fold's questions, which chose nothing;
- `select`: both: the final choice on all calibration answers, and the nested estimate of its accuracy.

Evaluation questions never enter: the caller hands over calibration answers only (`tests/test_selection.py`
changes an evaluation answer and checks that no choice moves)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from styleprobe.engine.extraction import POOLINGS, Aggregation, Readings
from styleprobe.protocol import estimators as est
from styleprobe.protocol.axes import CROSSFIT_FOLDS

STUDY = Aggregation()
"""The study's reading: the last 4 blocks weighted 0.1-0.4, token decay 0.9."""
INNER_FOLDS = 5  # folds of the outer training questions that choose the candidate
OUTER_FOLDS = CROSSFIT_FOLDS  # outer folds of the nested estimate (the crossfit's folds at repeat 0)


def candidate_readings(n_layers: int, pooling: Sequence[str] = tuple(POOLINGS)) -> list[Aggregation]:
    """What nested selection chooses from: the study's reading (absolute layers), then every single decoder
    block (0 .. n_layers - 1) with each token pooling of `pooling` (keys of POOLINGS). The embedding output
    is no candidate: it is the lexical control, not a reading of the model's processing."""
    singles = [Aggregation((b,), (1.0,), POOLINGS[p]) for p in pooling for b in range(n_layers)]
    return [STUDY.absolute(n_layers), *singles]


def grid_for(candidates: Sequence[Aggregation]) -> Readings:
    """The grid (blocks x decays) that covers every candidate."""
    layers = Readings(tuple(candidates)).layers
    decays = sorted({float(a.decay) for a in candidates})
    return Readings.grid(layers, decays)


def fold_of(questions: np.ndarray, k: int, seed: int | None = None) -> np.ndarray:
    """The fold of each answer from its question: the question's rank among the distinct questions (in a
    random order drawn from `seed`, or in increasing order with None) modulo k (k at most the number of
    questions). Both poles of a question share its fold."""
    unique = np.unique(questions)
    order = unique if seed is None else np.random.default_rng(seed).permutation(unique)
    rank = {q: r for r, q in enumerate(order)}
    return np.array([rank[q] for q in questions]) % max(1, min(k, len(unique)))


@dataclass(frozen=True)
class Candidate:
    reading: Aggregation
    estimator: str

    def label(self) -> str:
        return f"{self.estimator} @ {self.reading.label()}"


@dataclass
class AxisData:
    """One axis's calibration answers: candidate states [n_candidates, n, hidden], pole (+1/-1) and
    question of each answer."""

    states: np.ndarray
    pole: np.ndarray
    question: np.ndarray

    def part(self, keep: np.ndarray) -> AxisData:
        return AxisData(self.states[:, keep], self.pole[keep], self.question[keep])


def axis_data(
    grid: np.ndarray, readings: Readings, candidates: Sequence[Aggregation], pole, question
) -> AxisData:
    """AxisData of answers whose grid [n, n_decays, n_layers, hidden] was read with `readings`."""
    states = np.stack([readings.read(grid, c) for c in candidates]).astype(np.float64)
    return AxisData(states, np.asarray(pole), np.asarray(question))


def _separation(pos: np.ndarray, neg: np.ndarray) -> float:
    dof = len(pos) + len(neg) - 2
    if dof < 1:
        return 0.0
    spread = np.sqrt((((pos - pos.mean()) ** 2).sum() + ((neg - neg.mean()) ** 2).sum()) / dof)
    return float((pos.mean() - neg.mean()) / spread) if spread > 0 else 0.0


def _accuracy(pos: np.ndarray, neg: np.ndarray) -> float:
    return float(np.mean(np.sign(pos[:, None] - neg[None, :])) / 2 + 0.5)


def cv_scores(data: AxisData, names: Sequence[str], folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n_candidates, n_estimators] mean held-out pairwise accuracy and mean held-out standardised
    separation over `folds` (a fold per answer) of every candidate reading with every estimator of
    `names`. A fold without both poles on either side is skipped."""
    fits = [est.get(n) for n in names]
    acc = np.zeros((len(data.states), len(fits)))
    sep = np.zeros_like(acc)
    used = 0
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        tp, tn = train & (data.pole > 0), train & (data.pole < 0)
        hp, hn = test & (data.pole > 0), test & (data.pole < 0)
        if not (tp.any() and tn.any() and hp.any() and hn.any()):
            continue
        used += 1
        for c, x in enumerate(data.states):
            for e, fit in enumerate(fits):
                try:
                    w = fit(x[tp], x[tn], data.question[tp], data.question[tn])
                except est.EstimatorError:
                    continue  # no direction: counts as chance (0.5 accuracy, 0 separation) for this fold
                p, n = x[hp] @ w, x[hn] @ w
                acc[c, e] += _accuracy(p, n)
                sep[c, e] += _separation(p, n)
    if used == 0:
        return np.full(acc.shape, 0.5), np.zeros(acc.shape)
    return acc / used, sep / used


def _best(acc: np.ndarray, sep: np.ndarray) -> tuple[int, int]:
    """The (candidate, estimator) with the highest accuracy, ties (within 1e-9) broken by the separation,
    then by the order of candidates and estimators."""
    top = acc >= acc.max() - 1e-9
    score = np.where(top, sep, -np.inf)
    flat = int(np.argmax(score))  # first maximum in row-major order
    return divmod(flat, acc.shape[1])


def choose(
    data: AxisData,
    candidates: Sequence[Aggregation],
    names: Sequence[str],
    folds: int = INNER_FOLDS,
    seed: int | None = None,
) -> tuple[Candidate, float]:
    """The candidate with the best `cv_scores` on `data` (folds of its questions, `fold_of`), and its mean
    held-out accuracy."""
    acc, sep = cv_scores(data, names, fold_of(data.question, folds, seed))
    c, e = _best(acc, sep)
    return Candidate(candidates[c], names[e]), float(acc[c, e])


@dataclass
class Nested:
    """The nested cross-validated estimate of one axis's whole procedure (choice included)."""

    accuracy: float  # mean over outer folds (and repeats) of the held-out pairwise accuracy
    pooled_accuracy: float  # pairwise accuracy of every outer-held-out projection pooled (repeat 0)
    ci_low: float  # its 95 % interval (`stats.pairwise_accuracy_ci`)
    ci_high: float
    choices: list[str] = field(default_factory=list)  # the candidate each outer fold chose (`label`)


def nested(
    data: AxisData,
    candidates: Sequence[Aggregation],
    names: Sequence[str],
    *,
    outer: int = OUTER_FOLDS,
    inner: int = INNER_FOLDS,
    repeats: int = 1,
) -> Nested:
    """Nested cross-validation: for each outer fold of questions, `choose` on the other questions (inner
    folds), fit the chosen candidate on them and score it on the fold. Repeat 0 uses the crossfit's folds
    (question rank modulo `outer`), later repeats random ones (seeded by the repeat)."""
    from styleprobe.stats import pairwise_accuracy_ci

    scores, choices, pooled = [], [], None
    for r in range(repeats):
        folds = fold_of(data.question, outer, None if r == 0 else r)
        values = np.full(len(data.pole), np.nan)
        for k in np.unique(folds):
            train, test = folds != k, folds == k
            part = data.part(train)
            if not ((part.pole > 0).any() and (part.pole < 0).any()):
                continue
            pick, _ = choose(part, candidates, names, inner, None if r == 0 else r)
            x = data.states[candidates.index(pick.reading)]
            tp, tn = train & (data.pole > 0), train & (data.pole < 0)
            try:
                w = est.get(pick.estimator)(x[tp], x[tn], data.question[tp], data.question[tn])
            except est.EstimatorError:
                continue
            values[test] = x[test] @ w
            hp, hn = test & (data.pole > 0), test & (data.pole < 0)
            if hp.any() and hn.any():
                scores.append(_accuracy(values[hp], values[hn]))
            if r == 0:
                choices.append(pick.label())
        if r == 0:
            pooled = values
    ok = ~np.isnan(pooled)
    p, n = pooled[ok & (data.pole > 0)], pooled[ok & (data.pole < 0)]
    both = len(p) > 0 and len(n) > 0
    low, high = pairwise_accuracy_ci(p, n) if both else (np.nan, np.nan)
    return Nested(
        accuracy=float(np.mean(scores)) if scores else np.nan,
        pooled_accuracy=_accuracy(p, n) if both else np.nan,
        ci_low=low,
        ci_high=high,
        choices=choices,
    )


@dataclass
class Selection:
    """One axis: the candidate chosen on all its calibration answers, its inner cross-validated accuracy,
    and the nested estimate of the procedure that chose it."""

    choice: Candidate
    inner_accuracy: float
    nested: Nested | None

    def to_dict(self) -> dict:
        return {
            "reading": self.choice.reading.to_dict(),
            "estimator": self.choice.estimator,
            "inner_accuracy": self.inner_accuracy,
            "nested": None if self.nested is None else asdict(self.nested),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Selection:
        found = data["nested"]
        return cls(
            Candidate(Aggregation(**data["reading"]), data["estimator"]),
            float(data["inner_accuracy"]),
            None if found is None else Nested(**found),
        )

    def row(self) -> dict:
        """The columns the calibration's evaluation table records per axis."""
        out = {
            "estimator": self.choice.estimator,
            "reading": self.choice.reading.label(),
            "cv_accuracy": self.inner_accuracy,
        }
        if self.nested is not None:
            out |= {
                "nested_accuracy": self.nested.accuracy,
                "nested_pooled_accuracy": self.nested.pooled_accuracy,
                "nested_ci_low": self.nested.ci_low,
                "nested_ci_high": self.nested.ci_high,
            }
        return out


def select(
    data: AxisData,
    candidates: Sequence[Aggregation],
    names: Sequence[str],
    *,
    folds: int = INNER_FOLDS,
    outer: int = OUTER_FOLDS,
    repeats: int = 1,
    estimate: bool = True,
) -> Selection:
    """The final choice on all of `data` (`choose`) and, with `estimate`, its nested estimate (`nested`).
    With one candidate and one estimator nothing is chosen and the nested estimate is plain
    cross-validation."""
    pick, score = choose(data, candidates, names, folds)
    found = nested(data, candidates, names, outer=outer, inner=folds, repeats=repeats) if estimate else None
    return Selection(pick, score, found)
