"""Controls that say what an axis measures (notebook 13): is it more than the words and the length of the
answers, more than a random direction, stable, related to the text of un-instructed answers, and graded
as the instructions are?

Every held-out control is fitted on the calibration answers and scored on the evaluation answers of the
same axis (set A, answers with visible text), like the axis itself, and its held-out pairwise accuracy
(AUC) has the axis's Newcombe interval (`stats.pairwise_accuracy_ci`):

- `text_scores`: a bag-of-words classifier (TF-IDF of words and punctuation marks + logistic regression);
- `embedding_scores`: the axis's estimator on the embedding output (the input of block 0), pooled over the
  answer's tokens like the axis's reading: what the words alone give a linear read-out;
- `length_scores`: the answer's token count, oriented on the calibration answers;
- `partialled_scores`: the axis refitted on states with log token count regressed out (the regression
  fitted on calibration answers only, applied to the evaluation answers);
- `random_quantile`: the 95th percentile of held-out accuracy over random unit directions, each oriented
  on the calibration answers;
- `split_half_cosine`: cosine of the axes fitted on two halves of the calibration questions;
- `accuracy_gain`: held-out accuracy of the axis minus that of its best lexical control (text, embedding
  output, token count), with DeLong's interval paired by evaluation question
  (`stats.paired_accuracy_difference`);
  `validity.lexical_status` classes the axis from it, the one rule every table and sentence uses;
- `convergent`: Spearman's rho between the un-instructed (baseline) answers' projections and the axis's
  text metric, seed-averaged per question, with the Bonett-Wright interval;
- `dose_response`: the graded instructions' answers, projected cross-fitted like the neutral control, and
  the trend of projection on grade level (`dose_trend`).

The controls take an estimator `(pos, neg, pos_groups, neg_groups) -> unit direction` and states as arrays,
so they measure whichever estimator and reading fitted the axis, as its axes file records them
(`axis_estimator`, `axis_states`, and `axis_embedding` for the embedding output at the axis's pooling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.analyses.judge import stats as judge_stats
from styleprobe.analyses.textmetrics import axis_metrics, metrics_frame, protocol_lexicon
from styleprobe.engine.extraction import Aggregation, Readings, measure_mask
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.hooks import EMBEDDING
from styleprobe.engine.pipeline import Item, StageResult, run_stage, without_system
from styleprobe.protocol import estimators
from styleprobe.protocol.axes import AxisSet, folds
from styleprobe.protocol.calibration import Calibration, CalibrationResult, _answered, calibrate, fitted_like
from styleprobe.protocol.estimators import Estimator, EstimatorError
from styleprobe.protocol.fingerprint import BaselineResult, baseline, project_results
from styleprobe.protocol.reading import default_thinking, keeps_instruction
from styleprobe.protocol.spec import GRADE_LEVELS, GRADES
from styleprobe.protocol.validity import BEYOND, beyond_lexical, lexical_status, mark, valid_axes
from styleprobe.result import PaperTable, Result, axis_list

if TYPE_CHECKING:
    from styleprobe.engine.models import ModelHandle
    from styleprobe.workspace import Workspace

N_DIRECTIONS = 1000  # random unit directions of the random-direction control
RANDOM_QUANTILE = 0.95
DOSE_QUESTIONS = {"quick": 5}
"""Calibration questions per axis answered under each graded instruction, by profile, where not all of them
(the `quick` profile's CPU run: 5 x 4 grades x 7 axes = 140 answers instead of 420)."""
SPLITS = 20  # random halvings of the calibration questions averaged by the split-half cosine
TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"  # the bag of words: words and single punctuation marks
TEXT_NGRAMS = (1, 2)  # single tokens and pairs of adjacent tokens
TEXT_C = 1.0  # inverse L2 penalty of the text classifier's logistic regression (fixed, nothing is chosen)
LEXICAL_CONTROLS = ("text", "embedding", "length")  # what the axis must beat to go beyond its words
CONTROL_NAMES = {"text": "words", "embedding": "embedding output", "length": "token count"}
"""How tables and sentences name the lexical controls."""


study = estimators.study()
"""The study's estimator (unit difference of 10 %-trimmed means), the default where no axis set says."""


# -- seams: which estimator and states the axis was fitted with ----------------------------------------------


def axis_estimator(axes: AxisSet, index: int) -> Estimator:
    """The estimator that fitted axis `index` of `axes`, as its axes file records it (`AxisSet.estimator`;
    the study's for files that record none)."""
    name = axes.estimator(index)
    return study if name == "study" else estimators.get(name)


def axis_states(result: StageResult, axes: AxisSet, index: int) -> np.ndarray:
    """[n, hidden] states of `result` as axis `index` reads them (`AxisSet.states`: its own block and
    pooling where the axes read per axis)."""
    states = axes.states(result)
    return states[:, index] if states.ndim == 3 else states


def axis_embedding(
    handle: ModelHandle,
    result: StageResult,
    axes: AxisSet,
    index: int,
    cache: dict,
    grid: StageResult | None = None,
) -> np.ndarray:
    """[n, hidden] embedding output of `result`'s answers pooled like axis `index`'s reading (its decay):
    read from `grid` (the same answers re-read at the embedding and every block, `Calibration.grid` of
    `calibrate(reading="nested")`) where it holds that pooling, the engine's own reading; else
    `embedding_states`. `cache`: by decay, shared by the axes."""
    decay = float(axes.reading(index).decay)
    if decay not in cache:
        reading = Aggregation((EMBEDDING,), (1.0,), decay)
        readings = grid.aggregation if grid is not None else None
        if (
            isinstance(readings, Readings)
            and readings.covers(reading)
            and len(grid.records) == len(result.records)
        ):
            cache[decay] = readings.read(grid.per_layer, reading)
        else:
            cache[decay] = embedding_states(handle, result, decay)
    return cache[decay]


def embedding_states(handle: ModelHandle, result: StageResult, decay: float) -> np.ndarray:
    """[n, hidden] embedding output (the input of block 0) of each answer of `result`, pooled over its
    measured tokens with weights `decay`**(steps back from the last one), as the axis's reading pools.

    The embedding output of a token depends on its id only (the supported architectures add no position
    before block 0), so this is the weighted mean of the answer tokens' input embeddings, computed without
    a forward pass, and the same in every reading context. Gemma 2 multiplies by sqrt(hidden) after the
    embedding module: a constant factor, which changes no direction, accuracy or cosine. Where the engine
    read the embedding output as a block of its own (a nested calibration's grid), `axis_embedding` takes
    that reading instead."""
    import torch

    table = handle.model.get_input_embeddings()
    out = np.zeros((len(result.records), handle.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for row, ids in enumerate(result.records["response_ids"]):
            measured = np.asarray(measure_mask(handle, 0, ids), dtype=bool)
            if not measured.any():
                continue
            steps_back = np.cumsum(measured[::-1])[::-1] - 1
            weights = np.where(measured, float(decay) ** steps_back, 0.0)
            vectors = table(torch.as_tensor(list(ids), device=handle.device)).float().cpu().numpy()
            out[row] = (weights / weights.sum()) @ vectors
    return out


# -- one axis's answers and its held-out controls ------------------------------------------------------------


@dataclass(frozen=True)
class AxisAnswers:
    """One axis's calibration and evaluation answers (visible text only), row-aligned."""

    states: np.ndarray  # [n, hidden] as the axis reads them
    pole: np.ndarray  # +1 / -1
    question: np.ndarray  # question index
    calibration: np.ndarray  # True: calibration split (fitted on), False: evaluation split (scored)
    text: np.ndarray  # the answers
    n_tokens: np.ndarray
    embedding: np.ndarray | None = None  # [n, hidden] embedding output (None: not read)

    @classmethod
    def of(
        cls, result: StageResult, name: str, states: np.ndarray, embedding: np.ndarray | None = None
    ) -> AxisAnswers:
        """Axis `name`'s answers with visible text in `result` (`states`, `embedding`: of all its rows)."""
        rec = result.records
        keep = (rec["axis"] == name).to_numpy() & _answered(result)
        keep &= rec["split"].isin(["calibration", "evaluation"]).to_numpy()
        return cls(
            states=np.asarray(states[keep], dtype=np.float64),
            pole=rec["pole"].to_numpy(int)[keep],
            question=rec["q_index"].to_numpy(int)[keep],
            calibration=(rec["split"] == "calibration").to_numpy()[keep],
            text=rec["response"].to_numpy(object)[keep],
            n_tokens=rec["n_tokens"].to_numpy(float)[keep],
            embedding=None if embedding is None else np.asarray(embedding[keep], dtype=np.float64),
        )

    def fitted(self, pole: int) -> np.ndarray:
        return self.calibration & (self.pole == pole)

    def scored(self, pole: int) -> np.ndarray:
        """Of the evaluation answers (in their order), those of `pole`."""
        return self.pole[~self.calibration] == pole


def axis_scores(
    data: AxisAnswers, estimator: Estimator = study, states: np.ndarray | None = None
) -> np.ndarray:
    """The evaluation answers' projections on the direction `estimator` fits on the calibration answers
    (of `states`, default the axis's)."""
    x = data.states if states is None else states
    pos, neg = data.fitted(1), data.fitted(-1)
    direction = estimator(x[pos], x[neg], data.question[pos], data.question[neg])
    return x[~data.calibration] @ np.asarray(direction, dtype=np.float64)


def embedding_scores(data: AxisAnswers, estimator: Estimator = study) -> np.ndarray | None:
    """`axis_scores` on the embedding output (None when it was not read)."""
    return None if data.embedding is None else axis_scores(data, estimator, data.embedding)


def text_scores(data: AxisAnswers) -> np.ndarray:
    """Decision values on the evaluation answers of a TF-IDF (words and punctuation, TEXT_NGRAMS, sublinear
    term frequency) + L2 logistic regression (C = TEXT_C) classifier of the pole, fitted on the calibration
    answers' text. NaN when the calibration answers hold no token."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    cal = data.calibration
    vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=TEXT_NGRAMS, sublinear_tf=True)
    try:
        features = vectorizer.fit_transform(list(data.text[cal]))
    except ValueError:  # empty vocabulary
        return np.full(int((~cal).sum()), np.nan)
    model = LogisticRegression(C=TEXT_C, max_iter=1000).fit(features, data.pole[cal] == 1)
    return model.decision_function(vectorizer.transform(list(data.text[~cal])))


def length_scores(data: AxisAnswers) -> np.ndarray:
    """The evaluation answers' log token count, signed so that it is higher at the pole whose calibration
    answers are longer on average."""
    x = np.log(np.maximum(data.n_tokens, 1))
    sign = 1.0 if x[data.fitted(1)].mean() >= x[data.fitted(-1)].mean() else -1.0
    return sign * x[~data.calibration]


def partial_out_length(data: AxisAnswers) -> np.ndarray:
    """The states with log token count regressed out: least squares of every dimension on [1, log n_tokens]
    over the calibration answers, its residuals taken for every answer (evaluation answers never fit)."""
    x = np.log(np.maximum(data.n_tokens, 1))
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design[data.calibration], data.states[data.calibration], rcond=None)
    return data.states - design @ coef


def partialled_scores(data: AxisAnswers, estimator: Estimator = study) -> np.ndarray:
    """`axis_scores` of the axis refitted on the states with length partialled out (`partial_out_length`)."""
    return axis_scores(data, estimator, partial_out_length(data))


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Pairwise accuracy over the last axis of [..., n+] and [..., n-] scores (ties 0.5)."""
    return np.mean(np.sign(pos[..., :, None] - neg[..., None, :]), axis=(-2, -1)) / 2 + 0.5


def heldout(data: AxisAnswers, scores: np.ndarray | None) -> tuple[float, float, float]:
    """(pairwise accuracy, 95 % interval low, high) of evaluation `scores` (NaN when undefined)."""
    if scores is None or not np.isfinite(scores).all():
        return (np.nan,) * 3
    pos, neg = scores[data.scored(1)], scores[data.scored(-1)]
    if not len(pos) or not len(neg):
        return (np.nan,) * 3
    return (stats.pairwise_accuracy(pos, neg), *stats.pairwise_accuracy_ci(pos, neg))


def random_quantile(
    data: AxisAnswers, n_directions: int = N_DIRECTIONS, quantile: float = RANDOM_QUANTILE, seed: int = 0
) -> float:
    """The `quantile` of held-out accuracy over `n_directions` random unit directions (isotropic normal,
    drawn from `seed`), each oriented so that the positive pole's calibration answers project higher."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((data.states.shape[1], n_directions))
    directions /= np.linalg.norm(directions, axis=0)
    values = data.states @ directions  # [n, n_directions]
    sign = np.sign(values[data.fitted(1)].mean(0) - values[data.fitted(-1)].mean(0))
    values = values * np.where(sign == 0, 1.0, sign)
    scored = values[~data.calibration]
    aucs = _auc(scored[data.scored(1)].T, scored[data.scored(-1)].T)
    return float(np.quantile(aucs, quantile))


def split_half_cosine(
    data: AxisAnswers, estimator: Estimator = study, splits: int = SPLITS, seed: int = 0
) -> float:
    """Mean over `splits` random halvings of the calibration questions (both poles of a question on one
    side) of the cosine between the axes fitted on each half; NaN when no halving leaves both poles on both
    sides with as many answers as the estimator needs."""
    rng = np.random.default_rng(seed)
    questions = np.unique(data.question[data.calibration])
    cosines = []
    for _ in range(splits):
        first = np.isin(data.question, rng.permutation(questions)[: len(questions) // 2])
        halves = [data.calibration & first, data.calibration & ~first]
        parts = [(h & (data.pole == 1), h & (data.pole == -1)) for h in halves]
        if any(not p.any() or not n.any() for p, n in parts):
            continue
        try:
            a, b = (
                estimator(data.states[p], data.states[n], data.question[p], data.question[n])
                for p, n in parts
            )
        except EstimatorError:  # a half too small for the estimator (a whitened one needs 2 per pole)
            continue
        cosines.append(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))))
    return float(np.mean(cosines)) if cosines else np.nan


def _pole_means(data: AxisAnswers, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean evaluation score per question under the positive and under the negative pole, over the evaluation
    questions answered under both (in question order)."""
    ev = ~data.calibration
    _, q = np.unique(data.question[ev], return_inverse=True)
    pos = data.pole[ev] == 1
    scores = np.asarray(scores, dtype=np.float64)

    def means(rows: np.ndarray) -> np.ndarray:
        counts = np.bincount(q[rows], minlength=q.max(initial=-1) + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(q[rows], scores[rows], minlength=counts.size) / counts

    p, n = means(pos), means(~pos & (data.pole[ev] == -1))
    both = np.isfinite(p) & np.isfinite(n)
    return p[both], n[both]


def accuracy_gain(
    data: AxisAnswers, axis: np.ndarray, controls: Mapping[str, np.ndarray | None]
) -> dict[str, Any]:
    """Held-out accuracy of the axis's evaluation scores `axis` minus that of the best of `controls` (name
    -> evaluation scores; None or non-finite ones are left out), both over the evaluation questions whose
    two poles were answered, with its 95 % interval paired by question
    (`stats.paired_accuracy_difference`). The best control is the one with the highest accuracy on those
    questions: the difference to it is the smallest. Returns gain, gain_ci_low, gain_ci_high,
    best_control, n_pairs (NaN and "" when no control or no question is usable)."""
    usable = {k: v for k, v in controls.items() if v is not None and np.isfinite(v).all()}
    out: dict[str, Any] = {"gain": np.nan, "gain_ci_low": np.nan, "gain_ci_high": np.nan}
    out |= {"best_control": "", "n_pairs": 0}
    pos, neg = _pole_means(data, axis)
    if not usable or not pos.size:
        return out
    pairs = {k: _pole_means(data, v) for k, v in usable.items()}
    accuracy = {k: stats.pairwise_accuracy(*p) for k, p in pairs.items()}
    best = max(accuracy, key=accuracy.__getitem__)
    found = stats.paired_accuracy_difference(pos, neg, *pairs[best])
    return dict(zip(("gain", "gain_ci_low", "gain_ci_high"), found, strict=True)) | {
        "best_control": best,
        "n_pairs": int(pos.size),
    }


def axis_controls(
    data: AxisAnswers,
    estimator: Estimator = study,
    *,
    n_directions: int = N_DIRECTIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """Every held-out control of one axis (see the module's docstring) as one table row: accuracy and
    interval of the axis and of each control (`<name>_accuracy`, `_ci_low`, `_ci_high`), random_p95,
    split_half_cosine and the accuracy gain over the best lexical control."""
    axis = axis_scores(data, estimator)
    scores = {
        "text": text_scores(data),
        "embedding": embedding_scores(data, estimator),
        "length": length_scores(data),
        "partialled": partialled_scores(data, estimator),
    }
    row = dict(zip(("accuracy", "accuracy_ci_low", "accuracy_ci_high"), heldout(data, axis), strict=True))
    for name, values in scores.items():
        columns = [f"{name}_{c}" for c in ("accuracy", "ci_low", "ci_high")]
        row |= dict(zip(columns, heldout(data, values), strict=True))
    row["random_p95"] = random_quantile(data, n_directions, seed=seed)
    row["split_half_cosine"] = split_half_cosine(data, estimator, seed=seed)
    lexical = {k: scores[k] for k in LEXICAL_CONTROLS}
    return row | accuracy_gain(data, axis, lexical)


# -- un-instructed answers: convergent validity --------------------------------------------------------------


def convergent(projection: np.ndarray, metric: np.ndarray, question: np.ndarray) -> dict[str, Any]:
    """Spearman's rho between projections and a text metric of the same answers, both averaged per
    question first (over seeds; non-finite values left out), with its Bonett-Wright 95 % interval
    (`judge.stats.correlation`): n (questions), rho, p, ci_low, ci_high, undefined (why rho is not)."""
    frame = pd.DataFrame({"q": question, "x": projection, "y": metric}).dropna()
    means = frame.groupby("q")[["x", "y"]].mean()
    return judge_stats.correlation(means["x"].to_numpy(), means["y"].to_numpy())


# -- the dose-response control -------------------------------------------------------------------------------


def dose_items(ws: Workspace, n_questions: int) -> list[Item]:
    """The first `n_questions` calibration questions of set A of every axis under each graded instruction
    (`AxisSpec.graded`); the neutral grade is the neutral control's answers, not asked again."""
    bank = ws.protocol.questions.calibration_set("A")
    return [
        Item(
            id=f"dose/{name}/{grade}/{q:02d}",
            question=question,
            system=spec.graded_instruction(grade),
            meta={"axis": name, "grade": grade, "level": GRADE_LEVELS[grade], "q_index": q, "split": "dose"},
        )
        for name, spec in ws.protocol.axes.items()
        for grade in GRADES
        for q, question in enumerate(bank[name][:n_questions])
    ]


def dose_answers(
    ws: Workspace, axes: AxisSet, n_questions: int, *, batch_size: int | None = None, progress: bool = True
) -> StageResult:
    """The graded answers (`dose_items`), generated like the calibration answers (their budget, sampling
    and seed; a stage of their own in the run store, resumable) and read in the axes' context."""
    handle, meta = ws.model, axes.meta
    thinking = default_thinking(handle, None)
    items = dose_items(ws, n_questions)
    sampling = SamplingConfig(**meta["sampling"])
    context, profile = meta["context"], ws.profile.name
    result = run_stage(
        handle,
        ws.runs.dose("instructed", profile, n_questions, thinking),
        items,
        sampling,
        axes.reading(),
        seed=meta["seed"],
        batch_size=batch_size,
        thinking=thinking,
        desc="dose response",
        progress=progress,
    )
    if not keeps_instruction(context):
        stage = ws.runs.dose(context, profile, n_questions, thinking)
        result = without_system(handle, items, result, stage, thinking=thinking, progress=progress)
    return result


def crossfit_projections(
    data: AxisAnswers, others: np.ndarray, other_questions: np.ndarray, estimator: Estimator = study
) -> np.ndarray:
    """Raw projections of `others` (answers to calibration questions) on the axis fitted on the calibration
    answers without their question's fold (`axes.folds`, as the crossfit normalisation and the neutral
    control fold them), so that no answer is projected on an axis fitted on its own question."""
    q_pos, q_neg = data.question[data.fitted(1)], data.question[data.fitted(-1)]
    f_pos, f_neg, f_other = folds(q_pos, q_neg, other_questions)
    pos, neg = data.states[data.fitted(1)], data.states[data.fitted(-1)]
    out = np.full(len(others), np.nan)
    for k in np.unique(f_other):
        train_p, train_n = (f_pos != k), (f_neg != k)
        if not train_p.any() or not train_n.any():
            train_p, train_n = np.ones_like(train_p), np.ones_like(train_n)
        direction = estimator(pos[train_p], neg[train_n], q_pos[train_p], q_neg[train_n])
        out[f_other == k] = others[f_other == k] @ np.asarray(direction, dtype=np.float64)
    return out


def dose_slopes(value: np.ndarray, level: np.ndarray, question: np.ndarray) -> np.ndarray:
    """Per question answered at 3 or more distinct levels, the least-squares slope of projection `value` on
    grade `level` (NaN values left out), in question order."""
    value, level = np.asarray(value, dtype=np.float64), np.asarray(level, dtype=np.float64)
    keep = np.isfinite(value) & np.isfinite(level)
    _, q = np.unique(np.asarray(question)[keep], return_inverse=True)
    value, level = value[keep], level[keep]
    count = np.bincount(q)
    centred_l = level - (np.bincount(q, level) / count)[q]
    centred_v = value - (np.bincount(q, value) / count)[q]
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = np.bincount(q, centred_l * centred_v) / np.bincount(q, centred_l**2)
    distinct = np.bincount(np.unique(np.c_[q, level], axis=0)[:, 0].astype(int), minlength=count.size)
    return slopes[distinct >= 3]


def dose_slope_ci(value: np.ndarray, level: np.ndarray, question: np.ndarray) -> tuple[float, float]:
    """The trend test, question-clustered: the 95 % t interval (`stats.mean_ci`) of the mean per-question
    slope (`dose_slopes`); (NaN, NaN) with fewer than 2 such questions."""
    return _mean_ci(dose_slopes(value, level, question))


def _mean_ci(slopes: np.ndarray) -> tuple[float, float]:
    return stats.mean_ci(slopes) if len(slopes) else (np.nan, np.nan)


def dose_trend(value: np.ndarray, level: np.ndarray, question: np.ndarray) -> dict[str, Any]:
    """The trend of projection `value` on grade `level` over questions (each question answered at several
    levels): slope = the mean per-question slope (`dose_slopes`) with its interval (`dose_slope_ci`);
    rho = mean per-question Spearman rho over the same questions; per level the mean projection, and
    `ordered`: whether those means increase with every step of level."""
    frame = pd.DataFrame({"v": value, "l": level, "q": question}).dropna()
    slopes = dose_slopes(frame["v"], frame["l"], frame["q"])
    rhos = [
        stats.spearman(part["l"], part["v"])[0]
        for _, part in frame.groupby("q")
        if part["l"].nunique() >= 3 and part["v"].nunique() > 1
    ]
    means = frame.groupby("l")["v"].mean()
    low, high = _mean_ci(slopes)  # dose_slope_ci of the slopes above
    return {
        "dose_slope": float(np.mean(slopes)) if len(slopes) else np.nan,
        "dose_slope_low": low,
        "dose_slope_high": high,
        "dose_rho": float(np.mean(rhos)) if rhos else np.nan,
        "dose_ordered": bool(len(means) > 1 and (np.diff(means.to_numpy()) > 0).all()),
        "dose_questions": len(slopes),
        "level_means": means,
    }


# -- the analysis --------------------------------------------------------------------------------------------


def _dose_table(
    dose: StageResult, neutral: StageResult | None, cal: Calibration, index: int, data: AxisAnswers
) -> dict[str, Any]:
    """`dose_trend` of axis `index` over its graded answers and the neutral control's answers to the same
    questions, cross-fitted (`crossfit_projections`) and in the axis's unit."""
    axes, name = cal.axes, cal.axes.names[index]
    parts = []
    for result, level in ((dose, None), (neutral, GRADE_LEVELS["neutral"])):
        if result is None:
            continue
        rec = result.records
        keep = (rec["axis"] == name).to_numpy() & _answered(result)
        keep &= rec["q_index"].isin(dose.records["q_index"]).to_numpy()
        levels = rec["level"].to_numpy()[keep] if level is None else np.full(int(keep.sum()), level)
        states = axis_states(result, axes, index)[keep]
        parts.append((states, levels, rec["q_index"].to_numpy(int)[keep]))
    states, levels, questions = (np.concatenate(p) for p in zip(*parts, strict=True))
    raw = crossfit_projections(data, states.astype(np.float64), questions, axis_estimator(axes, index))
    return dose_trend((raw - axes.centres[index]) / axes.scales[index], levels.astype(int), questions)


def run(
    ws: Workspace,
    *,
    dose_questions: int | None = None,
    n_directions: int = N_DIRECTIONS,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
) -> ControlsResult:
    """Every control of every axis of the workspace's axes, from notebook 01's answers (read from the run
    store), notebook 02's baseline answers and the graded answers of the first `dose_questions` calibration
    questions (None: `DOSE_QUESTIONS` of the profile, else all the profile's)."""
    axes, calibration = ws.axes(), CalibrationResult.load(ws)
    cal = calibrate(
        ws,
        seed=axes.meta["seed"],
        normalisation=axes.normalisation,
        context=axes.meta["context"],
        batch_size=batch_size,
        progress=progress,
        **fitted_like(axes),  # each axis's reading and estimator as the axes file records them
    )
    n_cal = ws.profile.n_calibration
    n_dose = min(dose_questions or DOSE_QUESTIONS.get(ws.profile.name.split("+")[0], n_cal), n_cal)
    dose = dose_answers(ws, axes, n_dose, batch_size=batch_size, progress=progress)
    embedded: dict[float, np.ndarray] = {}
    baseline_seeds = BaselineResult.load(ws).seeds
    answers = baseline(ws, seeds=tuple(baseline_seeds), aggregation=axes.reading(), batch_size=batch_size)
    projections = project_results(axes, answers, ws.model.model_id, clip=False)
    texts = [t for r in answers.values() for t in r.records["response"]]
    metrics = metrics_frame(texts, protocol_lexicon(ws.protocol))
    metric_of = axis_metrics(ws.protocol)
    rows, level_means = {}, {}
    for i, name in enumerate(axes.names):
        estimator = axis_estimator(axes, i)
        embedding = axis_embedding(ws.model, cal.result, axes, i, embedded, cal.grid)
        data = AxisAnswers.of(cal.result, name, axis_states(cal.result, axes, i), embedding)
        row = {"estimator": axes.estimator(i), "reading": axes.absolute_reading(i).label()}
        row |= axis_controls(data, estimator, n_directions=n_directions, seed=seed)
        metric = metric_of.get(name)
        row["metric"] = metric or ""
        if metric:
            found = convergent(
                projections[name].to_numpy(), metrics[metric].to_numpy(), projections["q_index"]
            )
            row |= {f"metric_{k}": found[k] for k in ("n", "rho", "ci_low", "ci_high")}
        trend = _dose_table(dose, cal.neutral, cal, i, data)
        level_means[name] = trend.pop("level_means")
        rows[name] = row | trend
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["control_status"] = lexical_status(table)
    table["validation"] = calibration.evaluation["validation"].reindex(table.index)
    return ControlsResult(
        profile=ws.profile.name,
        estimator=", ".join(dict.fromkeys(axes.estimator(i) for i in range(len(axes.names)))),
        reading={n: axes.absolute_reading(i).to_dict() for i, n in enumerate(axes.names)},
        embedding="the embedding output of the answer tokens, pooled like each axis's reading",
        n_calibration=ws.profile.n_calibration,
        n_evaluation=ws.profile.n_evaluation,
        n_directions=n_directions,
        dose_questions=n_dose,
        table=table,
        dose_levels=pd.DataFrame(level_means).T.rename(columns=str),
        evaluation=calibration.evaluation[["pairwise_accuracy", "accuracy_ci_low", "validation"]],
    )


TABLE_COLUMNS = {
    "accuracy": "axis acc.",
    "text_accuracy": "words",
    "embedding_accuracy": "embedding",
    "length_accuracy": "length",
    "partialled_accuracy": "axis w/o length",
    "random_p95": "random p95",
    "gain": "gain",
    "gain_ci_low": "low",
    "gain_ci_high": "high",
    "control_status": "status",
}
"""The paper's controls table: held-out accuracies, the gain over the best lexical control and the class."""
VALIDITY_COLUMNS = {
    "split_half_cosine": "split-half cos.",
    "metric_rho": "text-metric rho",
    "metric_ci_low": "rho low",
    "metric_ci_high": "rho high",
    "dose_slope": "dose slope",
    "dose_slope_low": "slope low",
    "dose_slope_high": "slope high",
    "dose_ordered": "ordered",
}
"""The paper's second table: stability, convergent validity and dose response."""


@dataclass
class ControlsResult(Result):
    """Notebook 13: what each axis measures beyond its words and length."""

    name: ClassVar[str] = "controls"
    notebook: ClassVar[str] = "13_controls"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "baseline")

    profile: str
    estimator: str  # the estimators the axes and their controls were fitted with (per axis: the table's)
    reading: dict  # per axis: its reading (absolute aggregation)
    embedding: str  # how the embedding output was read
    n_calibration: int  # calibration questions per axis, each answered under both poles
    n_evaluation: int  # evaluation questions per axis, each answered under both poles
    n_directions: int
    dose_questions: int  # calibration questions per axis answered under each graded instruction
    table: pd.DataFrame  # per axis: `axis_controls`, convergent validity, `dose_trend`, status, validation
    dose_levels: pd.DataFrame  # per axis: mean projection at each grade level (-2 .. 2)
    evaluation: pd.DataFrame  # notebook 01's held-out accuracy and validation, for the validation predicate

    def validated(self) -> list[str]:
        """The axes that pass held-out validation (`validity.valid_axes`)."""
        return valid_axes(self.evaluation)

    def beyond(self) -> list[str]:
        """The validated axes that go beyond their lexical control (`validity.beyond_lexical`)."""
        return beyond_lexical(self.evaluation, self.table)

    def lexical(self) -> list[str]:
        """The axes classed lexical (`validity.lexical_status`), validated or not."""
        return [n for n, s in lexical_status(self.table).items() if s != BEYOND]

    def paper(self) -> dict[str, Any]:
        table, validated = self.table, self.validated()
        lexical = [n for n in self.lexical() if n in validated]  # failed axes are not interpreted
        ordered = [
            n for n in validated if table.loc[n, "dose_ordered"] and table.loc[n, "dose_slope_low"] > 0
        ]
        return {
            "profile": self.profile,
            "n_axes": len(table),
            "n_calibration": self.n_calibration,
            "n_evaluation": self.n_evaluation,
            "n_directions": self.n_directions,
            "n_splits": SPLITS,
            "text_c": TEXT_C,
            "dose_questions": self.dose_questions,
            "n_validated": len(validated),
            "validated": axis_list(validated),
            "n_beyond": len(self.beyond()),
            "beyond": axis_list(self.beyond()),
            "n_lexical": len(lexical),
            "lexical": axis_list(lexical),
            "n_dose_ordered": len(ordered),
            "dose_ordered": axis_list(ordered),
            "mean_accuracy": table["accuracy"].mean(),
            "mean_text_accuracy": table["text_accuracy"].mean(),
            "mean_embedding_accuracy": table["embedding_accuracy"].mean(),
            "mean_length_accuracy": table["length_accuracy"].mean(),
            "mean_partialled_accuracy": table["partialled_accuracy"].mean(),
            "mean_random_p95": table["random_p95"].mean(),
            "mean_split_half_cosine": table["split_half_cosine"].mean(),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        valid = set(self.validated())
        label = {n: mark(n, n in valid) for n in self.table.index}
        first = self.table[list(TABLE_COLUMNS)].rename(index=label)
        columns = [c for c in VALIDITY_COLUMNS if c in self.table]
        second = self.table[columns].rename(index=label)
        return {
            "controls_table": PaperTable(first, columns=TABLE_COLUMNS, index_name="axis"),
            "controls_validity_table": PaperTable(second, columns=VALIDITY_COLUMNS, index_name="axis"),
        }


def summary(result: ControlsResult) -> str:
    """One sentence of what the controls show, from the same predicates as the tables."""
    n, valid, beyond = len(result.table), result.validated(), result.beyond()
    text = f"{len(valid)} of {n} axes pass held-out validation"
    if not valid:
        return text + ", so none goes beyond its lexical control."
    text += f"; {len(beyond)} of them go beyond the lexical control"
    return text + (
        f" ({axis_list(beyond)})." if beyond else ": each does no better than its words and length."
    )
