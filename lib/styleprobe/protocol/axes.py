"""Axis vectors, their normalisation, and the AxisSet file format (`<name>.safetensors` + `<name>.json`).

The pair is one unit: `save` writes both under the lock `<name>.lock` and records the safetensors file's
SHA-256 in the json; `load` reads both under that lock and checks the hash, so concurrent writers never
leave a mixed pair that loads. Identical axes give identical bytes."""

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
    locked,
    sha256_bytes,
)
from styleprobe.errors import StyleprobeError, first_line
from styleprobe.stats import iqr, trimmed_mean

NORMALISATIONS = ("median_iqr", "uncentred_iqr")
ORIGINAL_SCALE_FLOOR = 0.1  # the original study's floor on the IQR, in raw projection units


class AxesError(StyleprobeError, ValueError):
    """An axes file is missing, malformed, or made for another model; the message is one line."""


def axis_direction(pos: np.ndarray, neg: np.ndarray, trim: float = 0.1) -> np.ndarray:
    """unit(trimmed_mean(pos) - trimmed_mean(neg)); `trim` is cut from each end, per dimension."""
    diff = trimmed_mean(pos, trim, axis=0) - trimmed_mean(neg, trim, axis=0)
    norm = np.linalg.norm(diff)
    if not np.isfinite(norm) or norm == 0:
        raise AxesError("the two poles have identical trimmed means; the axis is undefined")
    return (diff / norm).astype(np.float32)


def centre_and_scale(raw: np.ndarray, normalisation: str = "median_iqr") -> tuple[float, float]:
    """Centre and scale from the pooled calibration projections of one axis.

    median_iqr (default): centre = median, scale = IQR, so 0 is the calibration midpoint and the value
    is comparable across models. uncentred_iqr (the original study): centre = 0, scale = max(IQR, 0.1)."""
    spread = iqr(raw)
    if normalisation == "median_iqr":
        return float(np.median(raw)), max(spread, 1e-12)
    if normalisation == "uncentred_iqr":
        return 0.0, max(spread, ORIGINAL_SCALE_FLOOR)
    raise ValueError(f"unknown normalisation {normalisation!r}; choose from {', '.join(NORMALISATIONS)}")


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
    normalisation: str = "median_iqr"
    calibration: dict = field(default_factory=dict)  # per-axis statistics from calibration
    meta: dict = field(default_factory=dict)  # profile, prompt-set hash, instruction set, context, ...
    version: str = __version__

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self.centres = np.asarray(self.centres, dtype=np.float64)
        self.scales = np.asarray(self.scales, dtype=np.float64)
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

    def normalise(self, raw: np.ndarray, clip: bool = True) -> np.ndarray:
        z = (raw - self.centres) / self.scales
        return np.clip(z, -1.0, 1.0) if clip else z

    def project(self, states: np.ndarray, model_id: str | None = None, clip: bool = True) -> np.ndarray:
        """Normalised projections, clipped to [-1, 1] unless `clip=False`."""
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
        """Read the pair written by `save` (under its lock, so never half of two writers' pairs)."""
        js, st, base = axes_pair(path)
        for f in (js, st):
            if not f.exists():
                raise AxesError(f"axes file not found: {f}")
        try:
            with locked(base, optional=True):
                text, blob = js.read_text(), st.read_bytes()
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
    normalisation: str = "median_iqr",
    trim: float = 0.1,
    **provenance,
) -> AxisSet:
    """One axis per entry of `states`: axis -> (positive states, negative states), each [n, hidden]."""
    names = list(states)
    vectors = np.stack([axis_direction(*states[n], trim=trim) for n in names])
    centres, scales = [], []
    for i, n in enumerate(names):
        raw = np.concatenate(states[n]) @ vectors[i].astype(np.float64)
        c, s = centre_and_scale(raw, normalisation)
        centres.append(c)
        scales.append(s)
    return AxisSet(
        names=names,
        poles=[poles[n] for n in names],
        vectors=vectors,
        centres=np.array(centres),
        scales=np.array(scales),
        hidden_size=vectors.shape[1],
        normalisation=normalisation,
        **provenance,
    )
