"""Axis vectors, their normalisation, and the AxisSet file format (`<name>.safetensors` + `<name>.json`).

The pair is one unit: `save` writes both under the lock `<name>.lock` and records the safetensors file's
SHA-256 in the json; `load` checks the hash, reading the pair again under that lock when it does not match,
so concurrent writers never leave a mixed pair that loads, and reading makes no lock file. Identical axes
give identical bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from styleprobe import __version__
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.store import (
    atomic_write_bytes,
    atomic_write_text,
    canonical_safetensors,
    lock_path,
    locked,
    sha256_bytes,
)
from styleprobe.errors import StyleprobeError, first_line

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


class AxesError(StyleprobeError, ValueError):
    """An axes file is missing, malformed, or made for another model; the message is one line."""


def axis_direction(pos: np.ndarray, neg: np.ndarray, trim: float = 0.1) -> np.ndarray:
    """unit(trimmed_mean(pos) - trimmed_mean(neg)); `trim` is cut from each end, per dimension. States are
    [..., n, hidden]; leading dimensions are independent data sets (simulations fit many at once)."""
    from styleprobe.stats import trimmed_mean  # stats imports pandas: not at module level (GPU check)

    diff = trimmed_mean(pos, trim, axis=-2) - trimmed_mean(neg, trim, axis=-2)
    norm = np.linalg.norm(diff, axis=-1, keepdims=True)
    if not (np.isfinite(norm).all() and (norm > 0).all()):
        raise AxesError("the two poles have identical trimmed means; the axis is undefined")
    return (diff / norm).astype(np.float32)


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
) -> list[np.ndarray]:
    """Raw projections of every answer on the axis fitted without its fold: [pos, neg, *others], each
    others entry given as (states, folds). With one fold, every answer is projected in-sample. States are
    [..., n, hidden] (leading dimensions: independent data sets sharing the folds)."""
    groups = [(pos, pos_folds), (neg, neg_folds), *others]
    out = [np.empty(s.shape[:-1]) for s, _ in groups]
    for k in np.unique(np.concatenate([pos_folds, neg_folds])):
        train_p, train_n = pos[..., pos_folds != k, :], neg[..., neg_folds != k, :]
        if not train_p.shape[-2] or not train_n.shape[-2]:  # one fold: nothing is held out
            train_p, train_n = pos, neg
        direction = axis_direction(train_p, train_n, trim).astype(np.float64)
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
    """Unit axis vectors [n_axes, hidden] with the normalisation and provenance needed to reuse them."""

    names: list[str]
    poles: list[tuple[str, str]]
    vectors: np.ndarray
    centres: np.ndarray
    scales: np.ndarray
    model_id: str
    hidden_size: int
    layers: list[int]
    aggregation: dict
    normalisation: str = "crossfit"
    spreads: np.ndarray | None = (
        None  # per axis: within-pole spread on the axis, raw units (None: not measured)
    )
    errors: np.ndarray | None = None  # per axis: `centre_scale_errors` (ERROR_COLUMNS); None: not measured
    calibration: dict = field(default_factory=dict)  # per-axis statistics from calibration
    meta: dict = field(default_factory=dict)  # profile, prompt-set hash, instruction set, context, ...
    version: str = __version__

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
        try:
            self.reading()
        except (TypeError, ValueError) as err:
            raise AxesError(f"invalid aggregation {self.aggregation}: {err}") from None

    def reading(self) -> Aggregation:
        """How answers are read onto these axes (layers, token decay, layer weights), as calibrated."""
        return Aggregation(**self.aggregation)

    @property
    def n_blocks(self) -> int | None:
        """The decoder blocks of the model the axes were read from, as their layers imply: each block read
        is recorded both from the end (the aggregation's negative layers) and from 0 (`layers`). None when
        no layer is counted from the end (axes from a control vector) or the two do not agree."""
        read = self.reading().layers
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
        """[n, hidden] -> [n, n_axes] dot products with the unit axes."""
        self.check_states(states, model_id)
        return states.astype(np.float64) @ self.vectors.T.astype(np.float64)

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
        return self.vectors.astype(np.float64) @ self.vectors.T.astype(np.float64)

    def subset(self, names: list[str]) -> AxisSet:
        idx = [self.index(n) for n in names]
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
        blob = canonical_safetensors(
            save(tensors, metadata={"model_id": self.model_id, "format": "styleprobe-axes"})
        )
        meta = {k: v for k, v in self._fields().items() if k != "vectors"}
        meta.update(
            centres=self.centres.tolist(),
            scales=self.scales.tolist(),
            spreads=None if self.spreads is None else self.spreads.tolist(),
            errors=None if self.errors is None else self.errors.tolist(),
            poles=[list(p) for p in self.poles],
            tensors_sha256=sha256_bytes(blob),
        )
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
    **provenance,
) -> AxisSet:
    """One axis per entry of `states`: axis -> (positive states, negative states), each [n, hidden].

    The direction comes from all of them. `questions` gives each answer's question index (axis -> (pos,
    neg); default: the i-th positive and the i-th negative answer answer question i); the answers are split
    into folds by question (`folds`) and each is projected on the axis fitted without its fold
    (`out_of_fold`), which the crossfit scale uses; the centre and the within-pole spread are measured on the
    fitted direction itself, the one later answers are read on (`centre_and_scale`)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose from {', '.join(NORMALISATIONS)}")
    if questions is None:
        questions = {n: (np.arange(len(p)), np.arange(len(q))) for n, (p, q) in states.items()}
    names = list(states)
    vectors = np.stack([axis_direction(*states[n], trim=trim) for n in names])
    centres, scales, spreads, errors = [], [], [], []
    for i, n in enumerate(names):
        pos, neg = states[n]
        in_sample = [pos @ vectors[i].astype(np.float64), neg @ vectors[i].astype(np.float64)]
        held_out = out_of_fold(pos, neg, *folds(*questions[n]), trim=trim)
        c, s = centre_and_scale(*in_sample, normalisation, held_out)
        centres.append(c)
        scales.append(s)
        spreads.append(within_spread(*in_sample))
        errors.append(centre_scale_errors(*in_sample, *questions[n], held_out))
    return AxisSet(
        names=names,
        poles=[poles[n] for n in names],
        vectors=vectors,
        centres=np.array(centres),
        scales=np.array(scales),
        spreads=np.array(spreads) if np.isfinite(spreads).all() and (np.array(spreads) > 0).all() else None,
        errors=np.array(errors) if normalisation == "crossfit" else None,
        hidden_size=vectors.shape[1],
        normalisation=normalisation,
        **provenance,
    )
