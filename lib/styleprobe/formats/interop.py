"""Axes in other tools' formats: llama.cpp control vectors (GGUF) and the original study's `.npz` axes.

Control vectors use the layout llama.cpp's `--control-vector` and repeng read: architecture
`controlvector`, one F32 tensor `direction.N` per layer, where N counts decoder blocks from 1 and the
vector is added to the residual stream after block N (our block index N - 1)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.store import atomic_write_bytes, writing
from styleprobe.errors import is_integer
from styleprobe.formats.mood_axis import load_axis_npz
from styleprobe.protocol.axes import AxesError, AxisSet
from styleprobe.protocol.spec import Protocol

ARCH = "controlvector"
STUDY_MODELS = {
    "qwen_7b": ("Qwen/Qwen2.5-7B-Instruct", 28),
    "llama_8b": ("meta-llama/Llama-3.1-8B-Instruct", 32),
}
"""The original study's model names of its published axis files -> (hub id, decoder blocks)."""


@dataclass
class ControlVector:
    directions: dict[int, np.ndarray]  # decoder block (0-based) -> vector added after it
    model_hint: str
    axis: str = ""

    @property
    def hidden_size(self) -> int:
        return len(next(iter(self.directions.values())))


def export_control_vector(
    axes: AxisSet, axis: str, path: Path, *, layers: list[int] | None = None, strength: float | None = None
) -> Path:
    """Write one axis's steering vector as a control vector (`AxisSet.steering_vector`: the axis itself for a
    difference of means, the plain difference of means at its block for a whitened axis): at each block of
    `layers` (default: the blocks the axis reads, `AxisSet.steering_blocks`) its unit direction times
    `strength` (default: its normalisation scale, so that a llama.cpp scale of 1 moves the axis's
    projection by about one normalised unit per block). Written atomically."""
    i = axes.index(axis)
    blocks = list(axes.steering_blocks(i) if layers is None else layers)
    if not blocks or not all(is_integer(b) and b >= 0 for b in blocks):
        raise AxesError(f"layers must be decoder block indices >= 0 (counted from 0), got {blocks}")
    depth = axes.n_blocks
    if depth is not None and max(blocks) >= depth:
        raise AxesError(
            f"layers {blocks}: {axes.model_id} has {depth} decoder blocks (0 to {depth - 1}), so no block "
            f"{max(blocks)}"
        )
    steering = axes.steering_vector(i).astype(np.float64)
    coefficient = float(np.linalg.norm(steering) if strength is None else strength)
    if not np.isfinite(coefficient):
        raise AxesError(f"strength must be a finite number, got {coefficient}")
    vector = (steering / np.linalg.norm(steering) * coefficient).astype(np.float32)
    path = Path(path)
    with writing(path):  # a full disk or a read-only folder: one line naming the file
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.partial-") as tmp:
            scratch = Path(tmp) / path.name  # GGUFWriter writes to a path; nothing is left behind on failure
            writer = gguf.GGUFWriter(str(scratch), ARCH)
            writer.add_string(f"{ARCH}.model_hint", axes.model_id)
            writer.add_uint32(f"{ARCH}.layer_count", len(blocks))
            writer.add_string("styleprobe.axis", axis)
            writer.add_string("styleprobe.poles", "/".join(axes.poles[i]))
            for block in blocks:
                writer.add_tensor(f"direction.{block + 1}", vector)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            atomic_write_bytes(path, scratch.read_bytes())
    return path


def _string(reader: gguf.GGUFReader, key: str) -> str:
    field = reader.fields.get(key)
    return "" if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")


def read_control_vector(path: Path) -> ControlVector:
    """Read a control vector GGUF (ours, llama.cpp's or repeng's); a malformed file raises AxesError."""
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as err:
        raise AxesError(f"{path}: not a readable GGUF file ({err})") from None
    if _string(reader, "general.architecture") != ARCH:
        raise AxesError(f"{path}: not a control vector (architecture is not {ARCH!r})")
    directions = {}
    for tensor in reader.tensors:
        if tensor.name.startswith("direction."):
            layer = int(tensor.name.split(".", 1)[1])
            if layer < 1:
                raise AxesError(f"{path}: invalid layer {layer} (control vector layers count from 1)")
            directions[layer - 1] = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
    if not directions:
        raise AxesError(f"{path}: no direction.N tensors")
    sizes = {len(v) for v in directions.values()}
    if len(sizes) != 1 or not all(np.all(np.isfinite(v)) for v in directions.values()):
        raise AxesError(f"{path}: directions differ in size or hold NaN/inf")
    return ControlVector(
        dict(sorted(directions.items())),
        _string(reader, f"{ARCH}.model_hint"),
        _string(reader, "styleprobe.axis"),
    )


def control_vector_axis(cv: ControlVector, protocol: Protocol, name: str | None = None) -> AxisSet:
    """One-axis AxisSet from a control vector: the unit mean of its directions, centre 0 and scale = their
    mean norm (uncentred, as no calibration data comes with the file). `name` (default: the one the file
    records) must be an axis of `protocol`, which gives its poles."""
    name = name or cv.axis
    specs = protocol.axes
    if name not in specs:
        raise AxesError(f"unknown axis {name!r}; pass one of {', '.join(specs)}")
    stack = np.stack(list(cv.directions.values()))
    mean = stack.mean(axis=0)
    blocks = list(cv.directions)
    return AxisSet(
        names=[name],
        poles=[specs[name].poles],
        vectors=(mean / np.linalg.norm(mean))[None],
        centres=np.zeros(1),
        scales=np.array([float(np.linalg.norm(stack, axis=1).mean())]),
        model_id=cv.model_hint,
        hidden_size=cv.hidden_size,
        layers=blocks,
        aggregation=Aggregation(tuple(blocks), (1.0,) * len(blocks), 0.9).to_dict(),
        normalisation="uncentred_iqr",
        meta={"source": "control vector"},
    )


def import_study_axes(
    path: Path, protocol: Protocol, model_id: str | None = None, n_layers: int | None = None
) -> AxisSet:
    """The original study's published axes (`<model>_set_<X>_axes.npz`) as an AxisSet with its uncentred
    normalisation (centre 0, scale = its stored IQR-based scale); each axis must be one of `protocol`'s,
    which gives its poles.

    Convention difference: the study aggregated the last 4 `hidden_states` entries, the last of which is
    taken *after* the model's final norm, while this library reads all 4 before it. The two readings rank
    answers alike but are not on one scale (on the embedded SmolLM2, r >= 0.9 per axis while ours spread
    about twice as widely: tests/test_interop.py), so projections on these axes order answers as the
    study's would but are not the study's values; the difference is stated in the axis set's meta.

    A file named for one of the study's models (STUDY_MODELS) is that model's: `n_layers`, if given, must be
    its depth (`model_id` may name a copy of it); other files need both."""
    path = Path(path)
    short = path.name.split("_set_")[0]
    if short in STUDY_MODELS:  # the file names the study's model, whose depth is known
        hub_id, depth = STUDY_MODELS[short]
        if n_layers is not None and n_layers != depth:
            raise AxesError(
                f"{path}: the study read these axes from {hub_id}, which has {depth} decoder blocks, "
                f"not {n_layers}"
            )
        model_id, n_layers = model_id or hub_id, depth
    elif model_id is None or n_layers is None:
        raise AxesError(f"{path}: unknown study model {short!r}; pass model_id and n_layers")
    agg = Aggregation()
    if n_layers < len(agg.layers):
        raise AxesError(
            f"{path}: n_layers must be at least {len(agg.layers)} (the axes read the last "
            f"{len(agg.layers)} decoder blocks), got {n_layers}"
        )
    names, vectors, scales = load_axis_npz(path)
    specs = protocol.axes
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise AxesError(f"{path}: unknown axes {unknown}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return AxisSet(
        names=names,
        poles=[specs[n].poles for n in names],
        vectors=vectors / norms,
        centres=np.zeros(len(names)),
        scales=scales,
        model_id=model_id,
        hidden_size=vectors.shape[1],
        layers=agg.absolute_layers(n_layers),
        aggregation=agg.to_dict(),
        normalisation="uncentred_iqr",
        meta={
            "source": f"mood-axis study file {path.name}",
            "convention": (
                "study: last of the 4 layers read after the final norm; here all 4 before it, so answers "
                "rank alike but values are not on the study's scale"
            ),
        },
    )
