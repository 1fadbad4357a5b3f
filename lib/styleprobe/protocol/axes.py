"""Axis vectors, their normalisation, and the AxisSet file format (`<name>.safetensors` + `<name>.json`).

The pair is one unit: `save` writes both under the lock `<name>.lock` and records the safetensors file's
SHA-256 in the json; `load` checks the hash, reading the pair again under that lock when it does not match,
so concurrent writers never leave a mixed pair that loads, and reading makes no lock file. Identical axes
give identical bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from styleprobe import __version__
from styleprobe.engine.extraction import Aggregation, Readings
from styleprobe.engine.store import (
    atomic_write_bytes,
    atomic_write_text,
    canonical_safetensors,
    lock_path,
    locked,
    sha256_bytes,
)
from styleprobe.errors import StyleprobeError, first_line
from styleprobe.protocol import estimators
from styleprobe.protocol.estimators import Estimator, EstimatorError

NORMALISATIONS = ("crossfit", "median_iqr", "uncentred_iqr")
"""crossfit (default): 0 and ±1 from held-out pole means; median_iqr: the pooled calibration median and IQR
(earlier versions' default); uncentred_iqr: the original study's (0 and the IQR, floored)."""
CLIPPED = (
    "median_iqr",
    "uncentred_iqr",
)  # normalisations whose projections are clipped to [-1, 1] by default
CROSSFIT_FOLDS = (
    5  # calibration questions are split into this many folds (fewer if there are fewer questions)
)
ORIGINAL_SCALE_FLOOR = 0.1  # the original study's floor on the IQR, in raw projection units
SCALE_FLOOR_SPREADS = (
    0.1  # crossfit's floor on the scale, in within-pole spreads (`AxisSet.floored` says where it binds)
)
STEERING_PREFIX = "steering/"  # safetensors names of the steering vectors beside the axes ("/" is in no name)


def _blocks(readings: list[dict]) -> list[int]:
    """Every decoder block the per-axis `readings` read, in order."""
    return sorted({int(i) for r in readings for i in r["layers"]})


class AxesError(StyleprobeError, ValueError):
    """An axes file is missing, malformed, or made for another model; the message is one line."""


def axis_direction(pos: np.ndarray, neg: np.ndarray, trim: float = 0.1) -> np.ndarray:
    """unit(trimmed_mean(pos) - trimmed_mean(neg)); `trim` is cut from each end, per dimension. States are
    [..., n, hidden]; leading dimensions are independent data sets (simulations fit many at once). The
    `study` estimator of `styleprobe.protocol.estimators`, vectorised."""
    from styleprobe.stats import trimmed_mean  # stats imports pandas: not at module level (GPU check)

    diff = trimmed_mean(pos, trim, axis=-2) - trimmed_mean(neg, trim, axis=-2)
    norm = np.linalg.norm(diff, axis=-1, keepdims=True)
    if not (np.isfinite(norm).all() and (norm > 0).all()):
        raise AxesError("the two poles have identical trimmed means; the axis is undefined")
    return (diff / norm).astype(np.float32)


def _estimator(estimator: str | Estimator, trim: float = estimators.TRIM) -> Estimator:
    """An estimator given by name (`study` takes `trim`) or as a function."""
    if callable(estimator):
        return estimator
    try:
        return estimators.study(trim) if estimator == "study" else estimators.get(estimator)
    except EstimatorError as err:
        raise AxesError(str(err)) from None


def fit_direction(
    pos: np.ndarray,
    neg: np.ndarray,
    estimator: str | Estimator = "study",
    groups: tuple[np.ndarray, np.ndarray] | None = None,
    trim: float = estimators.TRIM,
) -> np.ndarray:
    """The unit direction [hidden] (float32) `estimator` fits to the poles; `groups`: each answer's question
    (for estimators with an inner cross-validation)."""
    pg, ng = groups if groups is not None else (None, None)
    try:
        return _estimator(estimator, trim)(pos, neg, pg, ng).astype(np.float32)
    except EstimatorError as err:
        raise AxesError(str(err)) from None


def folds(*questions: np.ndarray) -> list[np.ndarray]:
    """The fold of each answer, from its question index, for each array of question indices: both poles
    (and the neutral answer) of a question share a fold, so no question is on both sides of a split.
    There are CROSSFIT_FOLDS folds, or one per question when there are fewer questions."""
    arrays = [np.asarray(q, dtype=int) for q in questions]
    k = max(1, min(CROSSFIT_FOLDS, len(np.unique(np.concatenate(arrays)))))
    return [q % k for q in arrays]


def out_of_fold(
    pos: np.ndarray,
    neg: np.ndarray,
    pos_folds: np.ndarray,
    neg_folds: np.ndarray,
    others: tuple[tuple[np.ndarray, np.ndarray], ...] = (),
    trim: float = 0.1,
    estimator: str | Estimator = "study",
    questions: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Raw projections of every answer on the axis fitted without its fold: [pos, neg, *others], each
    others entry given as (states, folds). The axis of each fold is refitted with `estimator` (a name of
    `estimators.ESTIMATORS` or a function; `questions`, each answer's question, feed its inner
    cross-validation if it has one). With one fold, every answer is projected in-sample. With the study's
    estimator, states may be [..., n, hidden] (leading dimensions: independent data sets sharing the
    folds)."""
    groups = [(pos, pos_folds), (neg, neg_folds), *others]
    out = [np.empty(s.shape[:-1]) for s, _ in groups]
    fit = None if estimator == "study" else _estimator(estimator, trim)
    qp, qn = questions if questions is not None else (pos_folds, neg_folds)
    for k in np.unique(np.concatenate([pos_folds, neg_folds])):
        keep_p, keep_n = pos_folds != k, neg_folds != k
        if not keep_p.any() or not keep_n.any():  # one fold: nothing is held out
            keep_p, keep_n = np.ones(pos.shape[-2], bool), np.ones(neg.shape[-2], bool)
        if fit is None:  # the study's estimator, vectorised over leading dimensions
            unit = axis_direction(pos[..., keep_p, :], neg[..., keep_n, :], trim)
        else:
            try:
                unit = fit(pos[keep_p], neg[keep_n], qp[keep_p], qn[keep_n])
            except EstimatorError as err:
                raise AxesError(str(err)) from None
        direction = unit.astype(np.float32).astype(np.float64)  # as the axis file stores it
        for (states, f), values in zip(groups, out, strict=True):
            values[..., f == k] = np.einsum("...nh,...h->...n", states[..., f == k, :], direction)
    return out


def within_spread(pos_raw: np.ndarray, neg_raw: np.ndarray) -> float | np.ndarray:
    """The pooled within-pole standard deviation (ddof=1 in each pole) of raw projections [..., n]."""
    dof = pos_raw.shape[-1] + neg_raw.shape[-1] - 2
    if dof < 1:
        return np.full(pos_raw.shape[:-1], np.nan)[()]
    ss = sum(((v - v.mean(-1, keepdims=True)) ** 2).sum(-1) for v in (pos_raw, neg_raw))
    return np.sqrt(ss / dof)[()]


def centre_and_scale(
    pos_raw: np.ndarray,
    neg_raw: np.ndarray,
    normalisation: str = "crossfit",
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Centre and scale of one axis from its poles' raw projections on the fitted direction.

    crossfit (default; `held_out` = the poles' out-of-fold projections, see `out_of_fold`): centre = the
    midpoint of the two pole means on the fitted direction, the one every later answer is read on (the sum
    of the pole means is independent of their difference, which fitted the direction, so this midpoint is
    not inflated); scale = half the distance of the held-out pole means (in sample the direction separates
    its own answers far more than new ones), floored at SCALE_FLOOR_SPREADS within-pole spreads. So -1 and
    +1 are where answers under the negative and positive instruction land on average and 0 is halfway.
    median_iqr (in-sample): centre = median, scale = IQR of the pooled projections. uncentred_iqr (the
    original study, in-sample): centre = 0, scale = max(IQR, 0.1). Crossfit is vectorised over leading
    dimensions of [..., n] projections."""
    if normalisation == "crossfit":
        if held_out is None:
            raise ValueError("the crossfit scale needs the poles' held-out projections")
        half = (held_out[0].mean(-1) - held_out[1].mean(-1)) / 2
        floor = SCALE_FLOOR_SPREADS * within_spread(pos_raw, neg_raw)
        centre = (pos_raw.mean(-1) + neg_raw.mean(-1)) / 2
        scale = np.fmax(np.fmax(half, floor), 1e-12)  # fmax: a NaN floor (one answer) is no floor
        return (float(centre), float(scale)) if np.ndim(centre) == 0 else (centre, scale)
    from styleprobe.stats import iqr

    spread = iqr(np.concatenate([pos_raw, neg_raw]))
    if normalisation == "median_iqr":
        return float(np.median(np.concatenate([pos_raw, neg_raw]))), max(spread, 1e-12)
    if normalisation == "uncentred_iqr":
        return 0.0, max(spread, ORIGINAL_SCALE_FLOOR)
    raise ValueError(f"unknown normalisation {normalisation!r}; choose from {', '.join(NORMALISATIONS)}")


def at_floor(scale: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Whether a crossfit scale is its floor, SCALE_FLOOR_SPREADS within-pole spreads (vectorised)."""
    return np.asarray(scale) <= SCALE_FLOOR_SPREADS * np.asarray(spread) * (1 + 1e-9)


def centre_scale_errors(
    pos_raw: np.ndarray,
    neg_raw: np.ndarray,
    pos_questions: np.ndarray,
    neg_questions: np.ndarray,
    held_out: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """The sampling (co)variance of the crossfit centre and scale (`centre_and_scale`) over calibration
    questions: [var(centre), var(half separation), cov(centre, half separation), n], from each question's
    midpoint (p + n) / 2 on the fitted direction and its held-out half difference (p - n) / 2 over the n
    questions answered under both poles (one answer per question and pole; `held_out` in the same order as
    `pos_raw`, `neg_raw`). Vectorised over leading dimensions of the [..., n] projections; fewer than 2 paired
    questions give NaN (co)variances."""
    shared, at_pos, at_neg = np.intersect1d(pos_questions, neg_questions, return_indices=True)
    n = len(shared)
    mid = (pos_raw[..., at_pos] + neg_raw[..., at_neg]) / 2
    half = (held_out[0][..., at_pos] - held_out[1][..., at_neg]) / 2
    if n < 2:
        nan = np.full(mid.shape[:-1], np.nan)
        return np.stack([nan, nan, nan, np.full_like(nan, n)], axis=-1)
    mid_c, half_c = mid - mid.mean(-1, keepdims=True), half - half.mean(-1, keepdims=True)
    moments = [
        (a * b).sum(-1) / ((n - 1) * n) for a, b in ((mid_c, mid_c), (half_c, half_c), (mid_c, half_c))
    ]
    return np.stack([*moments, np.full_like(moments[0], n)], axis=-1)


ERROR_COLUMNS = ("var_centre", "var_scale", "cov_centre_scale", "n_questions")
"""The columns of `AxisSet.errors` (`centre_scale_errors` per axis)."""


@dataclass
class AxisSet:
    """Unit axis vectors [n_axes, hidden] with the normalisation and provenance needed to reuse them.

    Every axis is read with `aggregation` and fitted by the `study` estimator unless `readings` (one
    aggregation dict per axis, absolute layers) and `estimators` (one estimator name per axis) say
    otherwise; files written before they existed load as such. `steering` [n_axes, hidden] holds the
    vector each axis steers with at alpha 1, added at the blocks `steering_layers` (one list per axis);
    None: the unit axis times its scale at `layers` (`steering_vector`, `steering_blocks`)."""

    names: list[str]
    poles: list[tuple[str, str]]
    vectors: np.ndarray
    centres: np.ndarray
    scales: np.ndarray
    model_id: str
    hidden_size: int
    layers: list[int]  # every block read (absolute), over all axes
    aggregation: dict
    normalisation: str = "crossfit"
    spreads: np.ndarray | None = (
        None  # per axis: within-pole spread on the axis, raw units (None: not measured)
    )
    errors: np.ndarray | None = None  # per axis: `centre_scale_errors` (ERROR_COLUMNS); None: not measured
    calibration: dict = field(default_factory=dict)  # per-axis statistics from calibration
    meta: dict = field(default_factory=dict)  # profile, prompt-set hash, instruction set, context, ...
    version: str = __version__
    readings: list[dict] | None = None  # per axis: its aggregation (absolute layers); None: `aggregation`
    estimators: list[str] | None = None  # per axis: the estimator that fitted it; None: all "study"
    steering: np.ndarray | None = None  # per axis: the steering vector at alpha 1 (raw units)
    steering_layers: list[list[int]] | None = None  # per axis: the blocks it steers (None: `layers`)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self.centres = np.asarray(self.centres, dtype=np.float64)
        self.scales = np.asarray(self.scales, dtype=np.float64)
        if self.spreads is not None:
            self.spreads = np.asarray(self.spreads, dtype=np.float64)
        if self.errors is not None:
            self.errors = np.asarray(self.errors, dtype=np.float64).reshape(-1, len(ERROR_COLUMNS))
        n = len(self.names)
        if (
            self.vectors.shape != (n, self.hidden_size)
            or self.centres.shape != (n,)
            or self.scales.shape != (n,)
        ):
            raise AxesError(f"inconsistent axis set: {n} names, vectors {self.vectors.shape}")
        if not (np.isfinite(self.vectors).all() and np.isfinite(self.centres).all()):
            raise AxesError("axis vectors or centres hold NaN or inf")
        if not (np.isfinite(self.scales).all() and (self.scales > 0).all()):
            raise AxesError(f"scales must be finite and > 0, got {self.scales.tolist()}")
        if self.spreads is not None and self.spreads.shape != (n,):
            raise AxesError(f"spreads must hold one value per axis, got shape {self.spreads.shape}")
        if self.errors is not None and len(self.errors) != n:
            raise AxesError(f"errors must hold one row per axis, got shape {self.errors.shape}")
        if self.normalisation not in NORMALISATIONS:
            raise AxesError(
                f"unknown normalisation {self.normalisation!r}; expected {', '.join(NORMALISATIONS)}"
            )
        for field_name in ("readings", "estimators", "steering_layers"):
            value = getattr(self, field_name)
            if value is not None and len(value) != n:
                raise AxesError(f"{field_name} must hold one entry per axis, got {len(value)} for {n} axes")
        if self.estimators is not None:
            self.estimators = list(self.estimators)
            unknown = [e for e in self.estimators if e not in estimators.ESTIMATORS]
            if unknown:
                known = ", ".join(estimators.ESTIMATORS)
                raise AxesError(f"unknown estimator {unknown[0]!r}; expected {known}")
        if self.steering is not None:
            self.steering = np.asarray(self.steering, dtype=np.float32)
            if self.steering.shape != (n, self.hidden_size) or not np.isfinite(self.steering).all():
                raise AxesError(f"steering vectors must be finite, [{n}, {self.hidden_size}]")
        try:
            self.reading()
            for i in range(n):
                self.reading(i)
        except (TypeError, ValueError) as err:
            raise AxesError(f"invalid aggregation {self.aggregation}: {err}") from None

    def reading(self, axis: int | str | None = None) -> Aggregation | Readings:
        """How answers are read onto these axes, as calibrated: with `axis` (a name or index), that axis's
        aggregation; without, the one aggregation of axes read the study's way (files without `readings`),
        else `Readings` (one per axis, in axis order, named: `as_readings`), which readers hand to
        `run_stage` and `reread_result` so that the answers come from the default stage and are re-read
        at the needed blocks."""
        if axis is not None:
            i = self.index(axis) if isinstance(axis, str) else int(axis)
            return Aggregation(**(self.readings[i] if self.readings is not None else self.aggregation))
        if self.readings is None:
            return Aggregation(**self.aggregation)
        return self.as_readings()

    def as_readings(self) -> Readings:
        """Readings (absolute layers, named by axis) that read every axis's states in one pass: what
        `run_stage`, `reread_result` and `read_responses` take so that `states` can give each axis its own."""
        n = len(self.names)
        return Readings(tuple(self.absolute_reading(i) for i in range(n)), tuple(self.names))

    @property
    def per_axis(self) -> bool:
        """Whether the axes read different blocks or poolings (their states are [n, n_axes, hidden])."""
        return self.readings is not None and any(r != self.readings[0] for r in self.readings)

    def absolute_reading(self, axis: int | str) -> Aggregation:
        """The aggregation of `axis` with its layers counted from block 0 (what a grid is read with)."""
        agg = self.reading(axis)
        if self.readings is not None:
            return agg
        return Aggregation(tuple(self.layers), agg.layer_weights, agg.decay)

    def estimator(self, axis: int | str) -> str:
        """The name of the estimator that fitted `axis`."""
        i = self.index(axis) if isinstance(axis, str) else int(axis)
        return "study" if self.estimators is None else self.estimators[i]

    def states(self, result) -> np.ndarray:
        """The states of `result` (a `StageResult`) these axes project: [n, hidden], or [n, n_axes, hidden]
        for `per_axis` sets. A result read with `Readings` (a grid, or another axis set's readings) gives
        each axis its own aggregation, which it must cover; a result of one aggregation is taken as read
        the axes' way."""
        if isinstance(result.aggregation, Readings):
            try:
                grid, read = result.per_layer, result.aggregation.read
                each = [read(grid, self.absolute_reading(i)) for i in range(len(self.names))]
            except ValueError as err:
                raise AxesError(f"these answers were not read the way the axes need: {err}") from None
            return np.stack(each, axis=1) if self.per_axis else each[0]
        if self.per_axis:
            raise AxesError(
                "these axes read each axis at its own block or pooling: read the answers with "
                "`axes.reading()` (Readings), not one aggregation"
            )
        return result.states

    @property
    def n_blocks(self) -> int | None:
        """The decoder blocks of the model the axes were read from, as their layers imply: each block read
        is recorded both from the end (the aggregation's negative layers) and from 0 (`layers`). None when
        no layer is counted from the end (axes from a control vector, or with readings of their own, whose
        layers are all counted from 0) or the two do not agree."""
        if self.readings is not None:
            return None
        read = Aggregation(**self.aggregation).layers
        if len(read) != len(self.layers):
            return None
        depths = {a - r for a, r in zip(self.layers, read, strict=True) if r < 0}
        return depths.pop() if len(depths) == 1 else None

    def index(self, name: str) -> int:
        if name not in self.names:
            raise AxesError(f"no axis {name!r} in this axis set; it holds {', '.join(self.names)}")
        return self.names.index(name)

    def check_states(self, states: np.ndarray, model_id: str | None = None) -> None:
        if model_id is not None and model_id != self.model_id:
            raise AxesError(f"these axes were calibrated on {self.model_id!r}, not on {model_id!r}")
        if states.shape[-1] != self.hidden_size:
            raise AxesError(
                f"states have hidden size {states.shape[-1]} but the axes of {self.model_id!r} expect "
                f"{self.hidden_size}: they come from another model"
            )
        if not np.isfinite(states).all():
            raise AxesError("states contain NaN or inf")

    def project_raw(self, states: np.ndarray, model_id: str | None = None) -> np.ndarray:
        """[n, hidden] (every axis read alike) or [n, n_axes, hidden] (each axis its own states, see
        `states`) -> [n, n_axes] dot products with the unit axes."""
        self.check_states(states, model_id)
        vectors = self.vectors.astype(np.float64)
        if states.ndim == 3:
            if states.shape[1] != len(self.names):
                raise AxesError(f"per-axis states hold {states.shape[1]} axes, these axes {len(self.names)}")
            return np.einsum("nkh,kh->nk", states.astype(np.float64), vectors)
        if self.per_axis:
            raise AxesError(
                "these axes read each axis at its own block or pooling: project per-axis states "
                "[n, n_axes, hidden] (`AxisSet.states`)"
            )
        return states.astype(np.float64) @ vectors.T

    @property
    def clips(self) -> bool:
        """Whether projections are clipped to [-1, 1] by default: the IQR normalisations' convention. The
        crossfit unit puts the held-out pole means at ±1, so about half of each pole's answers lie beyond
        them and clipping would bias every mean; it is not clipped."""
        return self.normalisation in CLIPPED

    @property
    def floored(self) -> np.ndarray:
        """Per axis: whether its crossfit scale is the floor (SCALE_FLOOR_SPREADS within-pole spreads), i.e.
        the held-out pole means lie closer than that: such a scale is not half the pole separation, and a
        position in its unit means nothing. False where no spread was measured or under the IQR units."""
        if self.normalisation != "crossfit" or self.spreads is None:
            return np.zeros(len(self.names), dtype=bool)
        return at_floor(self.scales, self.spreads)

    def normalise(self, raw: np.ndarray, clip: bool | None = None) -> np.ndarray:
        z = (raw - self.centres) / self.scales
        return np.clip(z, -1.0, 1.0) if (self.clips if clip is None else clip) else z

    def in_spreads(self, raw: np.ndarray) -> np.ndarray:
        """Raw projections in units of each axis's within-pole spread (a unit that does not depend
        on how far the instructions move answers), centred like `normalise`."""
        if self.spreads is None:
            raise AxesError("these axes hold no within-pole spreads (calibrated before they were measured)")
        return (raw - self.centres) / self.spreads

    def project(
        self, states: np.ndarray, model_id: str | None = None, clip: bool | None = None
    ) -> np.ndarray:
        """Normalised projections; `clip` (default: the normalisation's convention, see `clips`) clips them
        to [-1, 1]."""
        return self.normalise(self.project_raw(states, model_id), clip)

    def cosine_matrix(self) -> np.ndarray:
        """Cosines between the axis vectors (between axes read at different blocks they compare
        directions of different spaces: see `same_space`)."""
        return self.vectors.astype(np.float64) @ self.vectors.T.astype(np.float64)

    def same_space(self) -> np.ndarray:
        """[n_axes, n_axes] bool: whether two axes read the same blocks with the same pooling, so that their
        cosine compares directions of one space."""
        readings = [self.absolute_reading(i) for i in range(len(self.names))]
        return np.array([[a == b for b in readings] for a in readings])

    def steering_vector(self, axis: int | str) -> np.ndarray:
        """The vector `axis` steers with at alpha 1 (raw units, added to each block of `steering_blocks`):
        the stored plain difference of means for whitened axes (`steering`), else the unit axis times its
        normalisation scale."""
        i = self.index(axis) if isinstance(axis, str) else int(axis)
        if self.steering is not None:
            return self.steering[i]
        return self.vectors[i] * np.float32(self.scales[i])

    def steering_blocks(self, axis: int | str) -> list[int]:
        """The decoder blocks `axis` steers (and exports for llama.cpp): the blocks its reading reads."""
        i = self.index(axis) if isinstance(axis, str) else int(axis)
        return list(self.steering_layers[i] if self.steering_layers is not None else self.layers)

    def subset(self, names: list[str]) -> AxisSet:
        idx = [self.index(n) for n in names]
        pick = lambda values: None if values is None else [values[i] for i in idx]  # noqa: E731
        return AxisSet(
            **{
                **self._fields(),
                "names": names,
                "poles": [self.poles[i] for i in idx],
                "vectors": self.vectors[idx],
                "centres": self.centres[idx],
                "scales": self.scales[idx],
                "spreads": None if self.spreads is None else self.spreads[idx],
                "errors": None if self.errors is None else self.errors[idx],
                "readings": pick(self.readings),
                "estimators": pick(self.estimators),
                "steering": None if self.steering is None else self.steering[idx],
                "steering_layers": pick(self.steering_layers),
                "layers": self.layers if self.readings is None else _blocks(pick(self.readings)),
            }
        )

    def _fields(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    # -- files ---------------------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write `<name>.safetensors` (vectors) and `<name>.json` (everything else, with the SHA-256 of the
        safetensors file) as one unit under the lock `<name>.lock`; returns the json path. `path` may end in
        `.json` or `.safetensors` or neither; nothing else is cut (`qwen2.5-7b` stays whole)."""
        js, st, base = axes_pair(path)
        tensors = {name: self.vectors[i] for i, name in enumerate(self.names)}
        if self.steering is not None:  # beside the axes, under names no axis can take
            tensors.update({f"{STEERING_PREFIX}{n}": self.steering[i] for i, n in enumerate(self.names)})
        blob = canonical_safetensors(
            save(tensors, metadata={"model_id": self.model_id, "format": "styleprobe-axes"})
        )
        optional = ("readings", "estimators", "steering_layers")
        meta = {
            k: v
            for k, v in self._fields().items()
            if k not in ("vectors", "steering") and not (k in optional and v is None)
        }
        meta.update(
            centres=self.centres.tolist(),
            scales=self.scales.tolist(),
            spreads=None if self.spreads is None else self.spreads.tolist(),
            errors=None if self.errors is None else self.errors.tolist(),
            poles=[list(p) for p in self.poles],
            tensors_sha256=sha256_bytes(blob),
        )
        if self.errors is None:  # absent from earlier files, which are written back unchanged
            del meta["errors"]
        text = json.dumps(meta, indent=2, default=_json_default)
        with locked(base):
            atomic_write_bytes(st, blob)
            atomic_write_text(js, text)
        return js

    @classmethod
    def load(cls, path: Path) -> AxisSet:
        """Read the pair written by `save` (never half of two writers' pairs; see `_read_pair`)."""
        js, st, base = axes_pair(path)
        for f in (js, st):
            if not f.exists():
                raise AxesError(f"axes file not found: {f}")
        try:
            text, blob = _read_pair(js, st, base)
            meta = json.loads(text)
            if not isinstance(meta, dict):
                raise AxesError(f"corrupt axes file {js}: not a JSON object")
            expected = meta.pop("tensors_sha256", None)  # absent in files written before it was recorded
            if expected is not None and expected != sha256_bytes(blob):
                raise AxesError(
                    f"axes files {js} and {st.name} do not belong together (SHA-256 mismatch): "
                    "one was replaced without the other; calibrate again"
                )
            tensors = load(blob)
            vectors = np.stack([tensors[n] for n in meta["names"]])
            meta["poles"] = [tuple(p) for p in meta["poles"]]
            if f"{STEERING_PREFIX}{meta['names'][0]}" in tensors:
                meta["steering"] = np.stack([tensors[f"{STEERING_PREFIX}{n}"] for n in meta["names"]])
            return cls(vectors=vectors, **meta)
        except (json.JSONDecodeError, SafetensorError, KeyError, TypeError, ValueError, OSError) as err:
            if isinstance(err, AxesError):
                raise err if str(js) in str(err) else AxesError(f"{js}: {err}") from None
            raise AxesError(f"corrupt or truncated axes file {base}: {first_line(err)}") from None


def _read_pair(js: Path, st: Path, base: Path) -> tuple[str, bytes]:
    """The text of `js` and the bytes of `st`, read without the lock, so that reading an axes file leaves no
    lock file beside it (an input, a read-only folder). Each file is replaced whole, and the json records
    the safetensors file's SHA-256: where it does not (a pair read between a writer's two renames, a mixed or
    an older pair), both are read again under the lock, if a writer has made one (writers make it first)."""
    text, blob = js.read_text(), st.read_bytes()
    if sha256_bytes(blob) not in text and lock_path(base).exists():
        with locked(base, optional=True):
            text, blob = js.read_text(), st.read_bytes()
    return text, blob


def readings_for(*axis_sets: AxisSet) -> Aggregation | Readings:
    """One reading that serves every one of `axis_sets`, so their answers are read in one pass: the study's
    aggregation when every set reads that way (files without `readings`), else Readings of every
    aggregation any axis needs, from which each set's `states` takes its own."""
    if all(a.readings is None for a in axis_sets):
        first = axis_sets[0]
        if all(a.aggregation == first.aggregation and a.layers == first.layers for a in axis_sets):
            return first.reading()
    needed = [a.absolute_reading(i) for a in axis_sets for i in range(len(a.names))]
    return Readings(tuple(dict.fromkeys(needed)))


def axes_pair(path: Path) -> tuple[Path, Path, Path]:
    """(`<name>.json`, `<name>.safetensors`, `<name>`) of an axes pair given by either file or its name.

    Only a trailing `.json` or `.safetensors` is taken off: `axes/qwen2.5-7b-instruct` and
    `axes/qwen2.5-7b-instruct.json` both name `axes/qwen2.5-7b-instruct.json`."""
    path = Path(path)
    if path.suffix in (".json", ".safetensors"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".json"), path.with_name(path.name + ".safetensors"), path


def axes_id(axes: AxisSet) -> str:
    """A short digest of everything that determines a projection on `axes`: the model they were fitted on,
    the axis names, the layers and aggregation read, the normalisation, and the vectors, centres and scales
    themselves (a copy of an axes file has the same id; a re-calibration has another)."""
    head = {
        "model_id": axes.model_id,
        "names": list(axes.names),
        "layers": [int(x) for x in axes.layers],
        "aggregation": axes.aggregation,
        "normalisation": axes.normalisation,
    }
    if axes.readings is not None:  # absent from earlier files, whose ids stay what they were
        head["readings"] = axes.readings
    if axes.estimators is not None:
        head["estimators"] = axes.estimators
    digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
    for array, dtype in ((axes.vectors, "<f4"), (axes.centres, "<f8"), (axes.scales, "<f8")):
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.hexdigest()[:16]


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(type(obj).__name__)


def fit_axes(
    states: dict[str, tuple[np.ndarray, np.ndarray]],
    poles: dict[str, tuple[str, str]],
    *,
    questions: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    normalisation: str = "crossfit",
    trim: float = 0.1,
    estimator: str | Mapping[str, str] = "study",
    readings: Mapping[str, Aggregation] | None = None,
    **provenance,
) -> AxisSet:
    """One axis per entry of `states`: axis -> (positive states, negative states), each [n, hidden].

    The direction comes from all of them, fitted by `estimator` (a name of `estimators.ESTIMATORS`, or one
    per axis). `questions` gives each answer's question index (axis -> (pos, neg); default: the i-th
    positive and the i-th negative answer answer question i); the answers are split into folds by
    question (`folds`) and each is projected on the axis refitted without its fold (`out_of_fold`), which
    the crossfit scale uses; the centre and the within-pole spread are measured on the fitted direction
    itself, the one later answers are read on (`centre_and_scale`).

    `readings` (axis -> its aggregation, absolute layers) records how each axis's states were read: the
    axis set's `readings`, its `layers` (their union) and `steering_layers`. Axes of a whitened estimator
    (`estimators.WHITENED`) steer with the plain difference of means of the same states, scaled like an
    axis (`mean_diff`, same normalisation): a whitened direction points where the poles differ relative
    to the states' spread, not where adding it moves the residual stream towards a pole."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose from {', '.join(NORMALISATIONS)}")
    if questions is None:
        questions = {n: (np.arange(len(p)), np.arange(len(q))) for n, (p, q) in states.items()}
    names = list(states)
    chosen = {n: estimator if isinstance(estimator, str) else estimator[n] for n in names}

    def unit_and_scale(name: str, how: str) -> tuple[np.ndarray, float, float, float, np.ndarray]:
        pos, neg = states[name]
        vector = fit_direction(pos, neg, how, questions[name], trim)
        v = vector.astype(np.float64)
        in_sample = [pos @ v, neg @ v]
        held_out = out_of_fold(
            pos, neg, *folds(*questions[name]), trim=trim, estimator=how, questions=questions[name]
        )
        c, s = centre_and_scale(*in_sample, normalisation, held_out)
        errors = centre_scale_errors(*in_sample, *questions[name], held_out)
        return vector, c, s, within_spread(*in_sample), errors

    fitted = {n: unit_and_scale(n, chosen[n]) for n in names}
    vectors = np.stack([fitted[n][0] for n in names])
    centres, scales, spreads, errors = (np.array([fitted[n][k] for n in names]) for k in (1, 2, 3, 4))
    steering = None
    if any(chosen[n] in estimators.WHITENED for n in names):
        steering = np.stack(
            [
                (lambda v, _c, s, _w, _e: v * np.float32(s))(*unit_and_scale(n, "mean_diff"))
                if chosen[n] in estimators.WHITENED
                else vectors[i] * np.float32(scales[i])
                for i, n in enumerate(names)
            ]
        )
    extra: dict = {}
    if readings is not None:
        per_axis = [readings[n].to_dict() for n in names]
        extra = {
            "readings": per_axis,
            "layers": _blocks(per_axis),
            "aggregation": per_axis[0],
            "steering_layers": [sorted(int(i) for i in r["layers"]) for r in per_axis],
        }
    if not isinstance(estimator, str) or estimator != "study":
        extra["estimators"] = [chosen[n] for n in names]
    return AxisSet(
        names=names,
        poles=[poles[n] for n in names],
        vectors=vectors,
        centres=centres,
        scales=scales,
        spreads=spreads if np.isfinite(spreads).all() and (spreads > 0).all() else None,
        errors=errors if normalisation == "crossfit" else None,
        hidden_size=vectors.shape[1],
        normalisation=normalisation,
        steering=steering,
        **{**provenance, **extra},
    )
