"""Calibrate axes from answers under opposite style instructions and score them on held-out questions."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.extraction import EMBEDDING, POOLINGS, Aggregation, Readings
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, reread_result, run_stage, without_system
from styleprobe.engine.store import atomic_write_text
from styleprobe.protocol import estimators as est
from styleprobe.protocol import selection
from styleprobe.protocol.axes import CROSSFIT_FOLDS, AxesError, AxisSet, fit_axes, folds, out_of_fold
from styleprobe.protocol.profiles import PROFILES, Profile, check_question_counts
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, default_thinking, keeps_instruction
from styleprobe.protocol.runs import Session
from styleprobe.protocol.spec import Protocol
from styleprobe.protocol.validity import MIN_ACCURACY, SEPARABLE_ACCURACY, heldout_status, mark, valid_axes
from styleprobe.result import PaperTable, Result, axis_label, axis_list

POLES = {+1: "positive", -1: "negative"}
PAPER_COLUMNS = (
    "pairwise_accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "sign_accuracy",
    "dprime",
    "neutral",
    "obey_positive",
    "obey_negative",
)  # the held-out and neutral-control columns the paper shows
PCA_COMPONENTS = 10  # principal components of the calibration states whose variance share is saved
READINGS = ("study", "nested")
"""How `calibrate` reads the answers: `study` (the study's reading, `selection.STUDY`: last 4 blocks,
weights 0.1-0.4, decay 0.9, for every axis) or `nested` (each axis's block and pooling chosen by nested
cross-validation on the calibration questions, `styleprobe.protocol.selection`); an Aggregation is one
fixed reading."""
DEFAULT_READING = "study"
DEFAULT_ESTIMATOR = "study"
GRID_DECAYS = tuple(sorted(POOLINGS.values()))  # the poolings every block is read with (last, 0.9, mean)


@dataclass
class Calibration:
    axes: AxisSet
    result: StageResult  # calibration and evaluation answers with their states, read the axes' way
    evaluation: pd.DataFrame  # per-axis held-out statistics (and the neutral control's, when it ran)
    neutral: StageResult | None = None  # the calibration questions answered with no instruction
    # the same answers read at the embedding and every block with every pooling (`GRID_DECAYS`), when
    # the reading was chosen from them (reading "nested")
    grid: StageResult | None = None


def calibration_items(
    profile: Profile,
    protocol: Protocol,
    axes: list[str] | None = None,
    instruction_set: str = "A",
    splits: tuple[str, ...] | None = None,
) -> list[Item]:
    """Every (axis, pole, question) of the protocol. Calibration questions come from the instruction set's
    own question set (A: the standard one, B and C: their own). The held-out evaluation questions belong to
    set A's protocol: by default only set A answers them, and axes of sets B and C are scored on set A's
    evaluation answers (the same held-out data for all three)."""
    if splits is None:
        splits = ("calibration", "evaluation") if instruction_set == "A" else ("calibration",)
    check_question_counts(profile, protocol)
    specs, bank = protocol.axes, protocol.questions
    names = axes or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise AxesError(f"unknown axis {unknown[0]!r}; choose from {', '.join(specs)}")
    items = []
    for name in names:
        spec = specs[name]
        questions = {
            "calibration": bank.calibration_set(instruction_set)[name][: profile.n_calibration],
            "evaluation": bank.evaluation[name][: profile.n_evaluation],
        }
        for split in splits:
            for q_index, question in enumerate(questions[split]):
                for pole, pole_name in POLES.items():
                    items.append(
                        Item(
                            id=f"{instruction_set}/{split}/{name}/{pole_name}/{q_index:02d}",
                            question=question,
                            system=spec.instruction(pole, instruction_set),
                            meta={"axis": name, "pole": pole, "split": split, "q_index": q_index},
                        )
                    )
    return items


def neutral_items(profile: Profile, protocol: Protocol, axes: list[str] | None = None) -> list[Item]:
    """The neutral control: every calibration question of instruction set A answered with no instruction,
    read like the poles. Its answers show where the model's own default sits between the instructed poles
    on the same questions, so each pole's obedience can be measured (`neutral_control`)."""
    names = axes or list(protocol.axes)
    bank = protocol.questions.calibration_set("A")
    return [
        Item(
            id=f"neutral/{name}/{q_index:02d}",
            question=question,
            system=None,
            meta={"axis": name, "pole": 0, "split": "neutral", "q_index": q_index},
        )
        for name in names
        for q_index, question in enumerate(bank[name][: profile.n_calibration])
    ]


def _answered(result: StageResult) -> np.ndarray:
    """Answers with visible text: whitespace-only and empty answers are never fitted or scored."""
    return ~result.records["empty"].to_numpy(bool) & (result.records["n_measured"] > 0).to_numpy()


def _rows(result: StageResult, name: str, pole: int, split: str = "calibration") -> np.ndarray:
    rec = result.records
    return (
        (rec["axis"] == name).to_numpy()
        & (rec["split"] == split).to_numpy()
        & (rec["pole"] == pole).to_numpy()
        & _answered(result)
    )


def _pole_data(
    result: StageResult, name: str, pole: int, split: str = "calibration", states: np.ndarray | None = None
):
    """(states, question indices) of one axis's answers under one pole in one split; `states` [n, hidden]
    (default: the result's own, which must be one aggregation's)."""
    sel = _rows(result, name, pole, split)
    return (result.states if states is None else states)[sel], result.records["q_index"].to_numpy()[sel]


def _axis_states(result: StageResult, name: str, reading: Aggregation | None) -> np.ndarray:
    """[n, hidden] states of `result` for axis `name`: `reading` taken from its grid, or its own states
    (the named axis's slice when it holds several named readings)."""
    agg = result.aggregation
    if reading is not None:
        return result.read(reading)
    if isinstance(agg, Readings):
        if agg.names is None or name not in agg.names:
            raise AxesError(f"no reading for axis {name!r} in these states: choose one (`readings`)")
        return result.read(agg.aggregations[agg.names.index(name)])
    return result.states


def fit_from_result(
    result: StageResult,
    handle_model_id: str,
    normalisation: str = "crossfit",
    poles: Mapping[str, tuple[str, str]] | None = None,
    neutral: StageResult | None = None,
    *,
    estimator: str | Sequence[str] | Mapping[str, str] = "study",
    reading: Mapping[str, Aggregation] | Sequence[Aggregation] | None = None,
    nested: bool = True,
    repeats: int = 1,
    cache: Path | None = None,
    **meta,
) -> tuple[AxisSet, pd.DataFrame]:
    """Fit axes on the calibration split (answers with visible text only) and score them on the evaluation
    split; with `neutral` (the neutral control's answers), measure each pole's obedience beside them.
    `poles` labels each axis's poles (default: its name split at the first "_", `warm_cold` -> warm, cold;
    labels only, they change no number).

    How each axis is read: `reading` None takes the result's own reading (one aggregation, or one per axis
    when the result was read with an axis set's named Readings); a mapping axis -> Aggregation takes each
    from the result's grid (absolute layers); a sequence of candidate aggregations lets each axis choose
    among them. `estimator` is a name of `estimators.ESTIMATORS`, one per axis (a mapping), or a sequence
    to choose among (`fitted_like` gives both arguments that refit the way given axes were fitted).
    Whenever there is a choice (several candidates or estimators), it is made per axis by cross-validation
    over the calibration questions only (`selection.select`; evaluation answers never choose anything),
    and with `nested` its nested cross-validated accuracy is estimated too (`repeats` outer splits); the
    evaluation table records each axis's estimator and reading, and those estimates. `cache`: a folder
    where the choices are kept (`select_per_axis`)."""
    names = list(dict.fromkeys(result.records["axis"]))
    poles = dict(poles or {})
    readings = reading
    candidates = list(readings) if readings is not None and not isinstance(readings, Mapping) else None
    choices = isinstance(estimator, Sequence) and not isinstance(estimator, str)
    chosen_readings: dict[str, Aggregation | None] = (
        dict(readings) if isinstance(readings, Mapping) else dict.fromkeys(names)
    )
    chosen_estimators = {
        n: estimator
        if isinstance(estimator, str)
        else (estimator[n] if isinstance(estimator, Mapping) else None)
        for n in names
    }
    picked: dict[str, selection.Selection] = {}
    if candidates is not None or choices:
        pool = est.check_names(estimator if choices else [chosen_estimators[names[0]]])
        options = {
            n: candidates if candidates is not None else [chosen_readings[n] or _own(result, n)]
            for n in names
        }
        picked = select_per_axis(result, options, pool, nested=nested, repeats=repeats, cache=cache)
        for n in names:
            chosen_readings[n] = picked[n].choice.reading if candidates is not None else chosen_readings[n]
            chosen_estimators[n] = picked[n].choice.estimator
    per_axis = {n: _axis_states(result, n, chosen_readings[n]) for n in names}
    data = {
        n: (_pole_data(result, n, +1, states=per_axis[n]), _pole_data(result, n, -1, states=per_axis[n]))
        for n in names
    }
    fixed = all(r is None for r in chosen_readings.values()) and not isinstance(result.aggregation, Readings)
    layers = meta.pop("layers", None)
    provenance = (
        {"layers": list(layers), "aggregation": result.aggregation.to_dict()}
        if fixed
        else {"readings": {n: chosen_readings[n] or _own(result, n) for n in names}}
    )
    axes = fit_axes(
        {n: (p[0], q[0]) for n, (p, q) in data.items()},
        {n: poles.get(n) or _pole_labels(n) for n in names},
        questions={n: (p[1], q[1]) for n, (p, q) in data.items()},
        normalisation=normalisation,
        estimator=chosen_estimators,
        model_id=handle_model_id,
        meta=meta,
        **provenance,
    )
    evaluation = heldout_scores(axes, result)
    if picked:
        evaluation = evaluation.join(pd.DataFrame({n: picked[n].row() for n in names}).T)
    if neutral is not None:
        evaluation = evaluation.join(neutral_control(axes, result, neutral))
    axes.calibration = evaluation.to_dict(orient="index")
    return axes, evaluation


def fitted_like(axes: AxisSet) -> dict:
    """The `reading` and `estimator` arguments of `calibrate` and `fit_from_result` that fit other answers
    (another instruction set, a subset of questions) the way `axes` were fitted: each axis's reading and
    estimator fixed, nothing chosen, so that the two sets' directions live in the same spaces and their
    cosines mean something. `reading` only for axes with readings of their own (others read the study's
    way, the default and a result's own reading), `estimator` only for axes that record theirs: empty
    for axes of earlier files."""
    out: dict = {}
    if axes.readings is not None:
        out["reading"] = {n: axes.absolute_reading(n) for n in axes.names}
    if axes.estimators is not None:
        out["estimator"] = {n: axes.estimator(n) for n in axes.names}
    return out


def _own(result: StageResult, name: str) -> Aggregation:
    """The aggregation axis `name` is read with in `result` (its named reading, or its only one)."""
    agg = result.aggregation
    if isinstance(agg, Readings):
        if agg.names is None or name not in agg.names:
            raise AxesError(f"no reading for axis {name!r} in these states: choose one (`readings`)")
        return agg.aggregations[agg.names.index(name)]
    if any(isinstance(i, int) and i < 0 for i in agg.layers):
        raise AxesError("a reading counted from the last block cannot be chosen among: give absolute layers")
    return agg


def select_per_axis(
    result: StageResult,
    candidates: Mapping[str, Sequence[Aggregation]],
    estimators: Sequence[str],
    *,
    nested: bool = True,
    repeats: int = 1,
    cache: Path | None = None,
) -> dict[str, selection.Selection]:
    """Per axis of `candidates` (axis -> the readings it chooses among), the reading and estimator chosen
    on its calibration answers only (`selection.select`, with the nested estimate when `nested`). With
    `cache` (a folder), the choices are stored there under a digest of everything they depend on (the
    calibration answers' states included), and read back instead of chosen again."""
    key = None
    if cache is not None:
        calib = (result.records["split"] == "calibration").to_numpy()
        digest = hashlib.sha256(np.ascontiguousarray(result.per_layer[calib]).tobytes())
        settings = {
            "candidates": {n: [c.to_dict() for c in options] for n, options in candidates.items()},
            "estimators": list(estimators),
            "nested": nested,
            "repeats": repeats,
            "folds": [selection.INNER_FOLDS, selection.OUTER_FOLDS],
            "records": result.records.loc[
                calib, ["axis", "pole", "q_index", "empty", "n_measured"]
            ].to_json(),
        }
        digest.update(json.dumps(settings, sort_keys=True).encode())
        key = Path(cache) / f"selection-{digest.hexdigest()[:16]}.json"
        if key.exists():
            stored = json.loads(key.read_text())
            return {n: selection.Selection.from_dict(stored[n]) for n in candidates}
    picked = {
        n: _select(result, n, options, estimators, nested, repeats) for n, options in candidates.items()
    }
    if key is not None:
        with contextlib.suppress(OSError):  # a read-only run store: chosen again next time
            text = json.dumps({n: p.to_dict() for n, p in picked.items()}, indent=1, default=float)
            atomic_write_text(key, text)
    return picked


def _select(
    result: StageResult,
    name: str,
    candidates: Sequence[Aggregation],
    names: Sequence[str],
    nested: bool,
    repeats: int,
) -> selection.Selection:
    """Choose axis `name`'s reading and estimator on its calibration answers only."""
    pos, neg = _rows(result, name, +1), _rows(result, name, -1)
    keep = pos | neg
    if isinstance(result.aggregation, Readings):
        states = np.stack([result.read(c)[keep] for c in candidates])
    else:
        states = result.states[keep][None]
    data = selection.AxisData(
        states.astype(np.float64),
        np.where(pos[keep], 1, -1),
        result.records["q_index"].to_numpy()[keep],
    )
    return selection.select(data, list(candidates), names, estimate=nested, repeats=repeats)


def _pole_labels(name: str) -> tuple[str, str]:
    first, _, second = name.partition("_")
    return (first, second) if second else (f"{name}+", f"{name}-")


def heldout_scores(axes: AxisSet, result: StageResult) -> pd.DataFrame:
    """Per axis of `axes`: pairwise accuracy with its 95 % interval (`stats.pairwise_accuracy_ci`), sign
    accuracy and d' on the evaluation split of `result` (unclipped projections; the axes never saw these
    answers), the validation status (`validity.heldout_status`), the share of in-sample calibration
    projections beyond ±1 and the number of empty answers."""
    rec = result.records
    usable = _answered(result)
    values_all = axes.project(axes.states(result), clip=False)
    rows = []
    for i, name in enumerate(axes.names):
        sel = (rec["axis"] == name).to_numpy() & usable
        values = values_all[sel, i]
        split, pole = rec["split"].to_numpy()[sel], rec["pole"].to_numpy()[sel]
        ev = split == "evaluation"
        pos, neg = values[ev & (pole == 1)], values[ev & (pole == -1)]
        cal = values[split == "calibration"]
        both = len(pos) > 0 and len(neg) > 0
        low, high = stats.pairwise_accuracy_ci(pos, neg) if both else (np.nan, np.nan)
        rows.append(
            {
                "axis": name,
                "n_eval": int(ev.sum()),
                "pairwise_accuracy": stats.pairwise_accuracy(pos, neg) if both else np.nan,
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "sign_accuracy": stats.sign_accuracy(pos, neg) if both else np.nan,
                "dprime": stats.dprime(pos, neg) if len(pos) > 1 and len(neg) > 1 else np.nan,
                "calibration_clipped": float(np.mean(np.abs(cal) > 1)) if len(cal) else np.nan,
                "empty_answers": int(((rec["axis"] == name).to_numpy() & ~usable).sum()),
            }
        )
    table = pd.DataFrame(rows).set_index("axis")
    table["validation"] = heldout_status(table)
    return table


def neutral_control(axes: AxisSet, result: StageResult, neutral: StageResult) -> pd.DataFrame:
    """Per axis, how far each instruction moves answers from the model's own default, on the calibration
    questions, in the axes' normalised unit and cross-fitted: every answer (positive, negative, neutral) is
    projected on the axis fitted without its question's fold.

    neutral: mean position of the uninstructed answers (0 = midway between the held-out pole means);
    obey_positive = mean over questions of (positive - neutral), obey_negative = mean of (neutral -
    negative), each with a 95 % interval over questions: Fieller's interval of the ratio of the raw mean
    move to the half pole separation on the same questions (`stats.paired_ratio_ci`), so the error of the
    scale it is divided by is in it (unbounded, NaN, where the separation may be 0). With the crossfit
    normalisation obey_positive + obey_negative = 2 on average, and the position of the default between
    the poles is (obey_negative - obey_positive) / 2: a default that sits at +0.6 is one the positive
    instruction hardly moves. An axis whose scale is the floor has no pole unit (`AxisSet.floored`): NaN."""
    rows = {}
    states, neutral_states = axes.states(result), axes.states(neutral)
    for i, name in enumerate(axes.names):
        own, own_neutral = (s[:, i] if s.ndim == 3 else s for s in (states, neutral_states))
        (pos, qp), (neg, qn) = (
            _pole_data(result, name, +1, states=own),
            _pole_data(result, name, -1, states=own),
        )
        neu, q0 = _pole_data(neutral, name, 0, "neutral", states=own_neutral)
        fp, fn, f0 = folds(qp, qn, q0)
        raw = out_of_fold(
            pos, neg, fp, fn, others=((neu, f0),), estimator=axes.estimator(i), questions=(qp, qn)
        )
        midpoint = (raw[0].mean() + raw[1].mean()) / 2 if len(raw[0]) and len(raw[1]) else axes.centres[i]
        p, n, z = ((r - midpoint) / axes.scales[i] for r in raw)  # the held-out poles' midpoint: 0
        row = {"neutral": float(z.mean()) if len(z) else np.nan, "n_neutral": len(z)}
        both = pd.DataFrame(
            {"p": pd.Series(raw[0], qp), "n": pd.Series(raw[1], qn), "u": pd.Series(raw[2], q0)}
        )
        both = both.dropna()
        half = (both["p"] - both["n"]).to_numpy() / 2
        moves = {
            "obey_positive": (_paired(p, qp, z, q0), (both["p"] - both["u"]).to_numpy()),
            "obey_negative": (_paired(z, q0, n, qn), (both["u"] - both["n"]).to_numpy()),
        }
        for column, (toward, raw_toward) in moves.items():
            row[column] = float(toward.mean()) if len(toward) else np.nan
            low, high = stats.paired_ratio_ci(raw_toward, half)
            finite = bool(np.isfinite(low) and np.isfinite(high))  # unbounded: no interval
            row[f"{column}_low"], row[f"{column}_high"] = (low, high) if finite else (np.nan, np.nan)
        if axes.floored[i]:
            row = {k: (v if k == "n_neutral" else np.nan) for k, v in row.items()}
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _paired(a: np.ndarray, qa: np.ndarray, b: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """a - b over the questions both have (one answer per question and side)."""
    left, right = pd.Series(a, index=qa), pd.Series(b, index=qb)
    common = left.index.intersection(right.index)
    return (left[common] - right[common]).to_numpy(float)


def calibrate(
    ws: Session,
    *,
    axes: list[str] | None = None,
    instruction_set: str = "A",
    reading: str | Aggregation | Mapping[str, Aggregation] = DEFAULT_READING,
    estimator: str | Sequence[str] | Mapping[str, str] = DEFAULT_ESTIMATOR,
    normalisation: str = "crossfit",
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    context: ReadingContext = DEFAULT_CONTEXT,
    thinking: bool | None = None,
    profile: Profile | None = None,
    neutral: bool | None = None,
    repeats: int = 1,
    progress: bool = True,
) -> Calibration:
    """Answer calibration and evaluation questions under both poles' instructions, then fit the axes.

    The answers are generated with the instruction in the prompt and read in `context`: "uninstructed"
    (default) re-reads them as question + answer only, so an axis reads the style of the text, not the
    instruction, and its centre sits in the context the baseline answers are read in; "instructed" keeps
    the states read while generating (the original study's way; online capture, no second pass).

    `reading`: "study" (the study's reading for every axis), "nested" (the answers are re-read once at the
    embedding and every block with every pooling, stored in the run store, and each axis's block and
    pooling are chosen by nested cross-validation over the calibration questions,
    `selection.candidate_readings`), an Aggregation (one fixed reading) or axis -> Aggregation (absolute
    layers). `estimator`: a name of `estimators.ESTIMATORS`, several for each axis to choose among the same
    way, or axis -> name (`fitted_like`). `repeats`: outer splits of the nested estimate.

    `profile` replaces the workspace's (e.g. a larger token budget for thinking runs). `neutral` (default:
    for instruction set A) also answers the calibration questions with no instruction, the neutral control
    (`neutral_control`)."""
    handle, profile = ws.model, profile or ws.profile
    sampling = sampling or SamplingConfig(profile.calibration_tokens)
    pool = est.check_names(list(estimator.values()) if isinstance(estimator, Mapping) else estimator)
    if isinstance(reading, str) and reading not in READINGS:
        raise AxesError(
            f"unknown reading {reading!r}; choose from {', '.join(READINGS)} or give an Aggregation"
        )
    items = calibration_items(profile, ws.protocol, axes, instruction_set)
    thinking = default_thinking(handle, thinking)
    answers = run_stage(
        handle,
        ws.runs.calibration(instruction_set, "instructed", profile.name, axes, thinking),
        items,
        sampling,
        Aggregation(),
        seed=seed,
        batch_size=batch_size,
        thinking=thinking,
        desc=f"calibration {instruction_set}",
        progress=progress,
    )
    context_stage = ws.runs.calibration(instruction_set, context, profile.name, axes, thinking)
    fixed = selection.STUDY if reading == "study" else reading
    grid = None
    if fixed == selection.STUDY:
        result = answers
        if not keeps_instruction(context):  # the same answers, re-read without the instruction
            result = without_system(
                handle, items, answers, context_stage, thinking=thinking, progress=progress
            )
    elif isinstance(fixed, Aggregation):  # another fixed reading: the same answers, re-read that way
        digest = hashlib.sha256(json.dumps(fixed.absolute(handle.n_layers).to_dict()).encode()).hexdigest()
        result = reread_result(
            handle,
            items,
            answers,
            fixed,
            context_stage / f"read-{digest[:16]}",
            keep_system=keeps_instruction(context),
            thinking=thinking,
            progress=progress,
        )
    if isinstance(fixed, Aggregation):
        absolute = fixed.absolute(handle.n_layers)
        names = list(dict.fromkeys(result.records["axis"]))
        # the study's reading with one estimator writes the axes files of earlier versions; any other
        # fixed reading is recorded per axis (so the neutral control and every reader read it)
        readings = (
            None
            if fixed == selection.STUDY and isinstance(estimator, str)
            else dict.fromkeys(names, absolute)
        )
        if readings is not None:
            result = StageResult(result.records, result.per_layer, absolute)
    else:
        grid_stage = ws.runs.blocks(context_stage)
        grid = reread_result(
            handle,
            items,
            answers,
            Readings.grid([EMBEDDING, *range(handle.n_layers)], GRID_DECAYS),
            grid_stage,
            keep_system=keeps_instruction(context),
            thinking=thinking,
            compact=True,
            desc="re-reading every block",
            progress=progress,
        )
        result = grid
        readings = selection.candidate_readings(handle.n_layers) if reading == "nested" else dict(reading)
    provenance = {
        "layers": Aggregation().absolute_layers(handle.n_layers),
        "profile": profile.to_dict(),
        "instruction_set": instruction_set,
        "context": context,
        "sampling": sampling.__dict__,
        "seed": seed,
        "prompt_set_hash": ws.protocol.hash,
        "model_slug": handle.slug,
        "selection": {
            "reading": reading if isinstance(reading, str) else "fixed",
            "estimators": list(dict.fromkeys(pool)),
            "folds": selection.INNER_FOLDS,
            "outer_folds": selection.OUTER_FOLDS,
            "repeats": repeats,
        },
    }
    axis_set, evaluation = fit_from_result(
        result,
        handle.model_id,
        normalisation,
        poles=ws.protocol.poles(),
        estimator=estimator,
        reading=readings,
        repeats=repeats,
        cache=(grid_stage if grid is not None else context_stage),
        **provenance,
    )
    scored = grid.with_reading(axis_set.reading()) if grid is not None else result
    control = None
    if neutral if neutral is not None else instruction_set == "A":
        control = run_stage(
            handle,
            ws.runs.neutral(profile.name, axes, thinking),
            neutral_items(profile, ws.protocol, axes),
            sampling,
            axis_set.as_readings() if axis_set.readings is not None else Aggregation(),
            seed=seed,
            batch_size=batch_size,
            thinking=thinking,
            desc="neutral control",
            progress=progress,
        )
        evaluation = evaluation.join(neutral_control(axis_set, scored, control))
        axis_set.calibration = evaluation.to_dict(orient="index")
    return Calibration(axis_set, scored, evaluation, control, grid)


def pca_states(cal: Calibration) -> np.ndarray:
    """[n, hidden] states of every answer of `cal` in one space: the axes' own reading when every axis
    reads alike, else the study's reading taken from the grid of every block."""
    if not cal.axes.per_axis:
        states = cal.axes.states(cal.result)
        return states[:, 0] if states.ndim == 3 else states
    if cal.grid is not None:
        n_blocks = sum(1 for i in cal.grid.aggregation.layers if i != EMBEDDING)
        study = selection.STUDY.absolute(n_blocks)
        return cal.grid.read(study)
    raise AxesError("per-axis readings without the grid they were chosen from: no common space for a PCA")


def calibration_pca(cal: Calibration) -> tuple[pd.DataFrame, np.ndarray]:
    """The calibration answers (not the held-out ones) on the first two principal components of their
    states (`pca_states`: the axes' reading, or the study's when the axes read different blocks; the
    records with columns pc1, pc2 added) and every component's share of the variance."""
    records, states = cal.result.records, pca_states(cal)
    calib = (records["split"] == "calibration").to_numpy()
    x = states[calib] - states[calib].mean(0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    pcs = x @ vt[:2].T
    return records[calib].assign(pc1=pcs[:, 0], pc2=pcs[:, 1]), sv**2 / np.sum(sv**2)


def pole_projections(cal: Calibration) -> pd.DataFrame:
    """Every answer's unclipped normalised projection on its own axis: columns axis, pole, split, value."""
    records = cal.result.records
    values = cal.axes.project(cal.axes.states(cal.result), clip=False)
    return pd.concat(
        [
            records[["axis", "pole", "split"]].assign(value=values[:, i])[records["axis"] == name]
            for i, name in enumerate(cal.axes.names)
        ]
    )


def summarise(ws: Session, cal: Calibration) -> CalibrationResult:
    """Notebook 01's result of a calibration: held-out scores, the axes' cosines, answer counts, and what
    the paper states of the run (its settings, its states' PCA, its answers' lengths)."""
    records, axes = cal.result.records, cal.axes
    names, sizes = axes.names, axes.meta["profile"]
    readings = [axes.reading(i) for i in range(len(names))]
    common = lambda values: values[0] if all(v == values[0] for v in values) else "per axis"  # noqa: E731
    cosines = pd.DataFrame(axes.cosine_matrix(), index=names, columns=names)
    off_diagonal = np.abs(cosines.to_numpy()[~np.eye(len(names), dtype=bool)])
    calib = records[records["split"] == "calibration"]
    tokens = calib.groupby(["axis", "pole"])["n_tokens"].mean().unstack().round().astype(int)
    return CalibrationResult(
        model_id=axes.model_id,
        profile=sizes["name"],
        normalisation=axes.normalisation,
        evaluation=cal.evaluation,
        axis_cosines=cosines,
        mean_abs_axis_cosine=float(off_diagonal.mean()),
        n_answers=len(records),
        n_empty=int(records["empty"].sum()),
        mean_tokens_by_pole=records.groupby(["axis", "pole"])["n_tokens"].mean().unstack().to_dict(),
        settings={
            **{k: sizes[k] for k in ("n_calibration", "n_evaluation", "calibration_tokens")},
            **{k: axes.meta["sampling"][k] for k in ("temperature", "top_p")},
            "decay": common([r.decay for r in readings]),
            "layer_weights": common([list(r.layer_weights) for r in readings]),
            "layers": list(axes.layers),
            "readings": {n: r.label() for n, r in zip(names, readings, strict=True)},
            "estimators": {n: axes.estimator(n) for n in names},
            "n_blocks": ws.model.n_layers,
            "hidden_size": axes.hidden_size,
            "model_name": ws.model.name,
            "n_parameters": ws.model.n_parameters,
            "device": ws.model.device.type,
            "dtype": ws.model.dtype_name,
        },
        pca_explained=calibration_pca(cal)[1][:PCA_COMPONENTS].tolist(),
        tokens_by_pole=tokens.rename(columns=POLES).reindex(columns=list(POLES.values())),
        cut_by_pole=cut_shares(calib).rename(columns=POLES).reindex(columns=list(POLES.values())),
    )


SMALL_MODEL = 1e9  # parameters: below this the paper says the model follows instructions loosely


def _model_words(settings: dict) -> dict:
    """What the paper's text says of the model (name, size, hardware), from the run, so that a build for
    another model describes that model. Empty for results written before the run recorded them."""
    if "n_parameters" not in settings:
        return {}
    n = settings["n_parameters"]
    size = next(
        f"{n / unit:.3g}{suffix}"
        for unit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K"), (1, ""))
        if n >= unit
    )
    caveat = (
        "A model of this size follows style instructions loosely, so weak axes here may be a property of the"
        " model rather than of the method; they say nothing about how larger models behave."
        if n < SMALL_MODEL
        else "The results are those of one model; they say nothing about other models or sizes."
    )
    device = {"cuda": "GPU", "mps": "Apple GPU"}.get(settings["device"], settings["device"].upper())
    return {"model_name": settings["model_name"], "model_size": size, "device": device, "size_caveat": caveat}


def _cut_percents(cut: np.ndarray) -> dict:
    """The paper's statement of the budget's effect: mean and largest share of answers cut, in percent."""
    if not cut.size:
        return {"cut_percent": np.nan, "max_cut_percent": np.nan}
    return {"cut_percent": round(100 * np.nanmean(cut)), "max_cut_percent": round(100 * np.nanmax(cut))}


def separation_sentence(evaluation: pd.DataFrame, validated: list[str]) -> str:
    """The paper's sentence on which axes separate best: among the validated axes only; with none, the
    highest point accuracy, marked, with the lower end of its interval, and no axis called separated."""
    acc = evaluation["pairwise_accuracy"]
    if not validated:
        top = acc.idxmax()
        return (
            f"No axis passes validation, so none is called separated: the highest point accuracy, "
            f"{mark(axis_label(top), False)} ({acc[top]:.2f}), has a 95 % interval reaching down to "
            f"{evaluation.loc[top, 'accuracy_ci_low']:.2f}."
        )
    best, worst = acc[validated].idxmax(), acc[validated].idxmin()
    text = f"Among the {len(validated)} validated axes the best-separated is {axis_label(best)}"
    text += f" ({acc[best]:.2f})"
    return text + (f", the least {axis_label(worst)} ({acc[worst]:.2f})." if worst != best else ".")


def cut_shares(records: pd.DataFrame) -> pd.DataFrame:
    """Per axis and pole: the share of answers that ran into the token budget instead of ending."""
    return 1 - records.groupby(["axis", "pole"])["finished"].mean().unstack()


@dataclass
class CalibrationResult(Result):
    """Notebook 01: the axes' held-out validation and geometry."""

    name: ClassVar[str] = "calibration"
    notebook: ClassVar[str] = "01_calibration"

    model_id: str
    profile: str
    normalisation: str
    evaluation: pd.DataFrame  # per axis: pairwise_accuracy, sign_accuracy, dprime, ...
    axis_cosines: pd.DataFrame
    mean_abs_axis_cosine: float
    n_answers: int
    n_empty: int
    mean_tokens_by_pole: dict  # by pole (1, -1) and axis, over both splits
    settings: dict  # the run's sizes, sampling and reading (`summarise`); layers 0-based, of n_blocks
    pca_explained: list[float]  # share of the variance of the calibration states' first components
    tokens_by_pole: pd.DataFrame  # per axis: mean length of the calibration answers, positive and negative
    # per axis and pole: the share of calibration answers cut at the token budget (`cut_shares`)
    cut_by_pole: pd.DataFrame = field(default_factory=pd.DataFrame)

    def validated(self) -> list[str]:
        """The axes that pass held-out validation (`validity.valid_axes`)."""
        return valid_axes(self.evaluation)

    def paper(self) -> dict:
        settings, ev, cosines = self.settings, self.evaluation, self.axis_cosines
        acc = ev["pairwise_accuracy"]
        upper = cosines.where(np.triu(np.ones(cosines.shape, dtype=bool), k=1)).abs().stack()
        explained, tokens = self.pca_explained, self.tokens_by_pole
        return {
            "model_id": self.model_id,
            "profile": self.profile,
            "normalisation": self.normalisation,
            "n_axes": len(ev),
            **{k: settings[k] for k in ("n_calibration", "n_evaluation", "calibration_tokens", "decay")},
            "layer_weights": (
                ", ".join(f"{w:g}" for w in settings["layer_weights"])
                if isinstance(settings["layer_weights"], list)
                else settings["layer_weights"]
            ),
            **{k: settings[k] for k in ("temperature", "top_p", "n_blocks", "hidden_size")},
            "first_layer": min(settings["layers"]) + 1,
            "last_layer": max(settings["layers"]) + 1,
            **_model_words(settings),
            "n_answers": self.n_answers,
            "n_empty": self.n_empty,
            "mean_accuracy": acc.mean(),
            "mean_dprime": ev["dprime"].mean(),
            "separation": separation_sentence(ev, self.validated()),
            "hard_threshold": SEPARABLE_ACCURACY,
            "min_accuracy": MIN_ACCURACY,
            "n_separable": int((acc >= SEPARABLE_ACCURACY).sum()),
            "n_validated": len(self.validated()),
            "validated": axis_list(self.validated()),
            "not_validated": axis_list(n for n in ev.index if n not in self.validated()),
            "crossfit_folds": CROSSFIT_FOLDS,
            "mean_abs_cosine": self.mean_abs_axis_cosine,
            "max_abs_cosine": upper.max(),
            "max_cosine_pair": " and ".join(axis_label(n) for n in upper.idxmax()),
            "pc1_percent": round(100 * explained[0]),
            "pc2_percent": round(100 * explained[1]),
            "axes": ev[[c for c in PAPER_COLUMNS if c in ev]].to_dict(orient="index"),
            "tokens": tokens.to_dict(orient="index"),
            **_cut_percents(self.cut_by_pole.to_numpy(float)),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        tokens = self.tokens_by_pole.rename(columns={"positive": "tokens +", "negative": "tokens -"})
        ev, valid = self.evaluation, set(self.validated())
        evaluation = ev[[c for c in PAPER_COLUMNS if c in ev]].join(tokens)
        evaluation = evaluation.rename(index={n: mark(n, n in valid) for n in evaluation.index})
        profiles = pd.DataFrame([p.to_dict() for p in PROFILES.values()]).set_index("name")
        profiles["seeds"] = profiles["seeds"].map(len)
        return {
            "calibration_evaluation": PaperTable(
                evaluation,
                index_name="axis",
                columns={
                    "pairwise_accuracy": "pairwise acc.",
                    "accuracy_ci_low": "low",
                    "accuracy_ci_high": "high",
                    "sign_accuracy": "sign acc.",
                    "dprime": "d'",
                    "neutral": "neutral",
                    "obey_positive": "obey +",
                    "obey_negative": "obey -",
                },
            ),
            "profiles": PaperTable(
                profiles,
                index_name="profile",
                columns={
                    "n_calibration": "calibration q.",
                    "n_evaluation": "evaluation q.",
                    "n_baseline": "baseline q.",
                    "calibration_tokens": "cal. tokens",
                    "baseline_tokens": "baseline tokens",
                    "n_benchmark": "benchmark q.",
                },
            ),
        }
