"""Generate answers and read their hidden states, one resumable stage at a time."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import Aggregation, Reading, Readings, TokenSequence, extract, measure_mask
from styleprobe.engine.generation import (
    SamplingConfig,
    auto_batch_size,
    generate,
    is_empty,
    tokenize_prompts,
)
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.sampling import row_key
from styleprobe.engine.store import RunMismatchError, Stage, read_manifest
from styleprobe.errors import UsageError, is_integer

if TYPE_CHECKING:  # pandas is for the analyses: the engine imports without it (the GPU check's venv)
    import pandas as pd

REFORWARD_CHUNK = 1024  # tokens per re-forward chunk: bounds activation memory for long (thinking) answers


@dataclass(frozen=True)
class Item:
    """One prompt to answer. `meta` is copied into the result record (axis, pole, split, ...)."""

    id: str
    question: str
    system: str | None = None
    history: tuple[tuple[str, str], ...] = ()
    meta: dict = field(default_factory=dict)
    seed: int | None = None  # sampling seed of this item; None: the stage's seed
    stream: str | None = None  # the name its random numbers are drawn by (None: its id); items sharing one
    # draw the same numbers (common random numbers, e.g. one question under several steering strengths)


@dataclass
class StageResult:
    records: pd.DataFrame  # one row per item, in the order of the items given
    # Aggregation: [n_items, n_layers, hidden] decay-weighted means at each read layer;
    # Readings: [n_items, n_decays, n_layers, hidden], its grid of layers x decays
    per_layer: np.ndarray
    aggregation: Reading

    @property
    def states(self) -> np.ndarray:
        """What the axes project: [n_items, hidden] layer-weighted states of an Aggregation, or
        [n_items, n_aggregations, hidden] of Readings (one vector per aggregation, i.e. per axis)."""
        return self.aggregation.combine(self.per_layer)

    def select(self, mask) -> StageResult:
        mask = np.asarray(mask)
        return StageResult(self.records[mask].reset_index(drop=True), self.per_layer[mask], self.aggregation)

    def read(self, aggregation: Aggregation) -> np.ndarray:
        """[n_items, hidden] states of one aggregation (absolute layers) taken from this result's grid."""
        if isinstance(self.aggregation, Readings):
            return self.aggregation.read(self.per_layer, aggregation)
        if aggregation != self.aggregation:
            raise ValueError(f"{aggregation} was not read (this result holds {self.aggregation} only)")
        return self.states

    def with_reading(self, reading: Reading) -> StageResult:
        """The same answers under another reading taken from this result's grid (nothing is read again):
        an Aggregation or Readings with absolute layers, covered by this result's Readings."""
        if not isinstance(self.aggregation, Readings):
            if reading == self.aggregation:
                return self
            raise ValueError(f"{reading} was not read (this result holds {self.aggregation} only)")
        if isinstance(reading, Aggregation):
            if not self.aggregation.covers(reading):
                raise ValueError(f"{reading} was not read")
            layers, decays = self.aggregation.layers, self.aggregation.decays
            grid = self.per_layer[:, decays.index(float(reading.decay))]
            return StageResult(self.records, grid[:, [layers.index(i) for i in reading.layers]], reading)
        return StageResult(self.records, self.aggregation.subgrid(self.per_layer, reading), reading)


def check_batch_size(batch_size: int | None) -> None:
    """None (choose automatically) or a positive integer; checked before any work or manifest is written."""
    if batch_size is not None and not (is_integer(batch_size) and batch_size >= 1):
        raise UsageError(f"batch size must be a positive integer, got {batch_size!r}")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_stage(
    handle: ModelHandle,
    stage_dir: Path,
    items: list[Item],
    sampling: SamplingConfig,
    aggregation: Reading = Aggregation(),
    *,
    seed: int = 0,
    batch_size: int | None = None,
    thinking: bool | None = None,
    read_with_system: bool = True,
    extraction: str = "auto",
    steer: tuple[Sequence[int], np.ndarray] | None = None,
    desc: str = "generating",
    progress: bool = True,
    on_progress: Callable[[float], None] | None = None,
) -> StageResult:
    """Answer every item and aggregate its hidden states, resuming from whatever batches are on disk.

    Items are sorted by prompt length and cut into batches; each finished batch is written atomically with
    its own seed, so a run killed half-way and resumed ends with the same result as an uninterrupted one.
    `read_with_system=False` re-reads the answers without the system prompt (question + answer only).

    extraction="online" aggregates hidden states while decoding (no second pass); "reforward" re-reads each
    batch with a teacher-forced pass; "auto" uses online capture whenever the reading context is the
    generation context (chat template, system prompt kept, no thinking block) and the re-forward otherwise.

    `steer=(blocks, offsets)` answers item k with `offsets[k]` ([n_items, hidden]; [n_items, n_blocks, hidden]
    for a vector per block, zeros where an item leaves a block alone) added to the output of each of
    those decoder blocks while generating (`generate`). Only the generation is steered: states captured
    online are read steered, a re-forward reads them unsteered (`reread` them to choose).

    With `Readings` (several aggregations, e.g. an axis set whose axes read different blocks), the answers
    are those of the default stage (`Aggregation()`, so every reader shares them) and are re-read once at
    the union of the needed blocks and decays (`reread_result`, stored in `stage_dir/read-<digest>`).

    `on_progress` is called with the share of the items answered so far (a batch counts by its decoding
    steps as they run), for a progress display beside `progress`'s bar."""
    if not items:
        raise ValueError("no items to run")
    check_batch_size(batch_size)
    if isinstance(aggregation, Readings):  # answers of the default stage, re-read at every needed block
        answered = run_stage(
            handle,
            stage_dir,
            items,
            sampling,
            seed=seed,
            batch_size=batch_size,
            thinking=thinking,
            read_with_system=read_with_system,
            extraction=extraction,
            steer=steer,
            desc=desc,
            progress=progress,
        )
        return reread_result(
            handle,
            items,
            answered,
            aggregation,
            Path(stage_dir) / f"read-{_digest(aggregation.to_dict())}",
            keep_system=read_with_system,
            thinking=thinking,
            progress=progress,
        )
    prompts = [build_prompt(handle, it.question, it.system, it.history, thinking=thinking) for it in items]
    prompt_ids = tokenize_prompts(handle, prompts)
    if read_with_system:
        read_ids = prompt_ids
    else:
        reads = [build_prompt(handle, it.question, None, it.history, thinking=thinking) for it in items]
        read_ids = tokenize_prompts(handle, reads)
    order = sorted(range(len(items)), key=lambda i: (len(prompt_ids[i]), items[i].id))
    layers = aggregation.absolute_layers(handle.n_layers)
    same_context = (
        read_with_system
        and handle.uses_chat_template
        and not (thinking or (thinking is None and handle.thinking))
    )
    if extraction == "auto":
        extraction = "online" if same_context else "reforward"
    elif extraction == "online" and not same_context:
        raise ValueError(
            "online capture needs the generation context: chat template, system kept, no thinking"
        )
    settings = {
        "model_id": handle.model_id,
        "dtype": handle.dtype_name,
        "sampling": sampling.__dict__,
        "aggregation": aggregation.to_dict(),
        "layers": layers,
        "seed": seed,
        "thinking": thinking,
        "read_with_system": read_with_system,
        "extraction": extraction,
        "items": _digest(
            [
                (it.id, p) if it.stream is None else (it.id, p, it.stream)
                for it, p in zip(items, prompts, strict=True)
            ]
        ),
    }
    if steer is not None:
        blocks, offsets = list(steer[0]), np.asarray(steer[1], dtype=np.float32)
        if offsets.shape not in (
            (len(items), handle.hidden_size),
            (len(items), len(blocks), handle.hidden_size),
        ):
            shape = (
                f"[{len(items)}, {handle.hidden_size}] or [{len(items)}, {len(blocks)}, {handle.hidden_size}]"
            )
            raise ValueError(f"steering offsets must be {shape}, got {list(offsets.shape)}")
        digest = hashlib.sha256(offsets.tobytes()).hexdigest()[:16]
        settings["steer"] = {
            "blocks": blocks,
            "offsets": digest if offsets.ndim == 2 else f"{digest}-per-block",
        }
    manifest = Path(stage_dir) / "manifest.json"
    if batch_size is None and (found := read_manifest(manifest)) is not None:
        batch_size = found["settings"].get("batch_size")  # resume with the batches the run started with
    chosen = batch_size is None
    if chosen:
        longest = max(len(p) for p in prompt_ids) + sampling.max_new_tokens
        batch_size = auto_batch_size(handle, longest, cap=128 if handle.device.type == "cpu" else 256)
    try:
        stage = Stage(Path(stage_dir), {**settings, "batch_size": batch_size})
    except RunMismatchError:
        # a concurrent first run may have chosen another automatic size: adopt it if that is the only change
        found = read_manifest(manifest)
        theirs = found["settings"].get("batch_size") if found else None
        if not chosen or theirs is None:
            raise
        batch_size = theirs
        stage = Stage(Path(stage_dir), {**settings, "batch_size": batch_size})
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    todo = [b for b in range(len(batches)) if not stage.is_done(b)]
    done = len(items) - sum(len(batches[b]) for b in todo)  # answers on disk
    bar = tqdm(total=len(items), desc=desc, disable=not progress, unit="answer")
    bar.update(done)
    for b in todo:
        idx = batches[b]
        on_step = None
        if on_progress:
            on_progress(done / len(items))

            def on_step(step: int, done: int = done, size: int = len(idx)) -> None:
                on_progress((done + size * step / sampling.max_new_tokens) / len(items))

        keys = [
            row_key(seed if items[i].seed is None else items[i].seed, items[i].stream or items[i].id)
            for i in idx
        ]
        capture = (layers, aggregation.decay) if extraction == "online" else None
        gens, per_layer = generate(
            handle,
            [prompt_ids[i] for i in idx],
            sampling,
            keys,
            capture=capture,
            steer=(blocks, offsets[idx]) if steer is not None else None,
            on_step=on_step,
        )
        seqs = [
            TokenSequence(
                read_ids[i] + g.response_ids, measure_mask(handle, len(read_ids[i]), g.response_ids)
            )
            for i, g in zip(idx, gens, strict=True)
        ]
        if per_layer is None:
            per_layer = extract(handle, seqs, layers, (aggregation.decay,), chunk_size=REFORWARD_CHUNK)[:, 0]
        records = [
            {
                "id": items[i].id,
                **items[i].meta,
                "question": items[i].question,
                "system": items[i].system,
                "response": g.text,
                "n_tokens": len(g.response_ids),
                "n_measured": int(sum(s.measure)),
                "finished": g.finished,
                "empty": g.empty,
                "response_ids": g.response_ids,
            }
            for i, g, s in zip(idx, gens, seqs, strict=True)
        ]
        stage.write(b, records, {"per_layer": per_layer})
        bar.update(len(idx))
        done += len(idx)
    bar.close()
    if on_progress:
        on_progress(1.0)
    import pandas as pd  # only here: see the imports

    records, arrays = stage.read_all(len(batches))
    position = {r["id"]: k for k, r in enumerate(records)}
    back = [position[it.id] for it in items]
    frame = pd.DataFrame([records[k] for k in back])
    frame["empty"] = [is_empty(handle, ids) for ids in frame["response_ids"]]  # also for runs stored before
    return StageResult(frame, arrays["per_layer"][back], aggregation)


def reread(
    handle: ModelHandle,
    items: list[Item],
    response_ids: Sequence[Sequence[int]],
    layers: Sequence[int | str],
    decays: Sequence[float] = (0.9,),
    *,
    keep_system: bool = True,
    thinking: bool | None = None,
    stage_dir: Path | None = None,
    batch_size: int = 16,
    compact: bool = False,
    desc: str = "re-reading",
    progress: bool = True,
) -> np.ndarray:
    """Teacher-forced aggregates [n, n_decays, n_layers, hidden] of given answers in their conversation:
    nothing is generated, and every requested layer (absolute indices, or EMBEDDING) and token decay comes
    from one pass.

    `keep_system=False` drops the system prompt from the context (question + answer only). With
    `stage_dir`, finished batches are stored there and reused, so a long re-read resumes; `compact` stores
    them in float16 (half the size; a batch float16 cannot hold stays float32), for re-reads of every
    block."""
    if len(items) != len(response_ids) or not items:
        raise ValueError(f"need one response per item, got {len(items)} items, {len(response_ids)} responses")
    check_batch_size(batch_size)
    prompts = [
        build_prompt(handle, it.question, it.system if keep_system else None, it.history, thinking=thinking)
        for it in items
    ]
    prompt_ids = tokenize_prompts(handle, prompts)
    seqs = [
        TokenSequence(p + list(r), measure_mask(handle, len(p), r))
        for p, r in zip(prompt_ids, response_ids, strict=True)
    ]
    _warn_past_context(handle, [it.id for it in items], [len(s.ids) for s in seqs])
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].ids))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    stage = None
    if stage_dir is not None:
        settings = {
            "model_id": handle.model_id,
            "dtype": handle.dtype_name,
            "layers": list(layers),
            "decays": list(decays),
            "keep_system": keep_system,
            "thinking": thinking,
            "batch_size": batch_size,
            "items": _digest([s.ids for s in seqs]),
            **({"compact": True} if compact else {}),
        }
        stage = Stage(Path(stage_dir), settings)
    out = np.zeros((len(seqs), len(decays), len(layers), handle.hidden_size), dtype=np.float32)
    for b, idx in enumerate(tqdm(batches, desc=desc, disable=not progress, unit="batch")):
        if stage is not None and stage.is_done(b):
            out[idx] = stage.read(b)[1]["states"]
            continue
        states = extract(handle, [seqs[i] for i in idx], layers, decays, chunk_size=REFORWARD_CHUNK)
        if compact:
            small = states.astype(np.float16)
            states = small if np.isfinite(small).all() else states
        if stage is not None:
            stage.write(b, [{"id": items[i].id} for i in idx], {"states": states})
        out[idx] = states
    return out


class ContextWarning(UserWarning):
    """Some sequences are longer than the model's context: their states are read past trained positions."""


def context_length(handle: ModelHandle) -> int | None:
    """The model's context in tokens (its config's `max_position_embeddings`; None where it gives none)."""
    return getattr(handle.model.config, "max_position_embeddings", None)


def _warn_past_context(handle: ModelHandle, ids: list[str], lengths: list[int]) -> None:
    limit = context_length(handle)
    over = [(i, n) for i, n in zip(ids, lengths, strict=True) if limit and n > limit]
    if over:
        shown = ", ".join(f"{i} ({n} tokens)" for i, n in over[:5]) + (", ..." if len(over) > 5 else "")
        warnings.warn(
            f"{len(over)} of {len(ids)} conversations exceed the model's context of {limit} tokens: {shown}; "
            "their projections are unreliable",
            ContextWarning,
            stacklevel=3,
        )


def read_answers(
    handle: ModelHandle,
    items: list[Item],
    response_ids: Sequence[Sequence[int]],
    reading: Reading,
    stage_dir: Path | None = None,
    *,
    keep_system: bool = True,
    thinking: bool | None = None,
    batch_size: int = 16,
    compact: bool = False,
    desc: str = "re-reading",
    progress: bool = True,
) -> np.ndarray:
    """Teacher-forced per-layer aggregates of given answers under `reading` (`reread` at its blocks and
    decays): [n, n_layers, hidden] for an Aggregation, the grid [n, n_decays, n_layers, hidden] for
    Readings, so that `reading.combine` of it gives the states."""
    several = isinstance(reading, Readings)
    grid = reread(
        handle,
        items,
        response_ids,
        reading.absolute_layers(handle.n_layers),
        reading.decays if several else (reading.decay,),
        keep_system=keep_system,
        thinking=thinking,
        stage_dir=stage_dir,
        batch_size=batch_size,
        compact=compact,
        desc=desc,
        progress=progress,
    )
    return grid if several else grid[:, 0]


def reread_result(
    handle: ModelHandle,
    items: list[Item],
    result: StageResult,
    reading: Reading,
    stage_dir: Path | None,
    **options,
) -> StageResult:
    """The answers of `result` read under `reading` (nothing is generated): one teacher-forced pass over
    every needed block and decay, stored in `stage_dir` (None: not stored) and resumed from it; `options`
    as `read_answers` takes them."""
    ids = list(result.records["response_ids"])
    return StageResult(
        result.records, read_answers(handle, items, ids, reading, stage_dir, **options), reading
    )


def without_system(
    handle: ModelHandle,
    items: list[Item],
    result: StageResult,
    stage_dir: Path,
    *,
    reading: Reading | None = None,
    thinking: bool | None = None,
    progress: bool = True,
) -> StageResult:
    """`result` with its answers' states re-read as conversation + answer, the system prompt dropped
    (nothing is generated; the re-read is stored in `stage_dir` and resumes). `reading` (default: the
    result's own) reads other blocks or poolings; it is stored in `stage_dir/read-<digest>`, so the re-read
    of the result's own reading keeps its folder."""
    reading = result.aggregation if reading is None else reading
    if reading != result.aggregation:
        stage_dir = Path(stage_dir) / f"read-{_digest(reading.to_dict())}"
    return reread_result(
        handle,
        items,
        result,
        reading,
        stage_dir,
        keep_system=False,
        thinking=thinking,
        desc="re-reading without the system prompt",
        progress=progress,
    )


def _response_ids(handle: ModelHandle, responses: list[str]) -> list[list[int]]:
    return handle.tokenizer(responses, add_special_tokens=False)["input_ids"]


def conversation_lengths(handle: ModelHandle, conversations: list[Item], responses: list[str]) -> list[int]:
    """Tokens of each conversation with its response as `read_responses` reads it: what must fit the model's
    context (`context_length`). Each text is tokenized once; nothing runs through the model."""
    prompts = [build_prompt(handle, it.question, it.system, it.history) for it in conversations]
    prompt_ids = tokenize_prompts(handle, prompts)
    return [len(p) + len(r) for p, r in zip(prompt_ids, _response_ids(handle, responses), strict=True)]


def read_responses(
    handle: ModelHandle,
    conversations: list[Item],
    responses: list[str],
    aggregation: Reading = Aggregation(),
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> np.ndarray:
    """Teacher-forced per-layer aggregates of given responses in their conversation context (imported or
    hand-written answers; nothing is generated): [n, n_layers, hidden] for an Aggregation, the grid
    [n, n_decays, n_layers, hidden] for Readings; `aggregation.combine` of it gives the states. A
    conversation longer than the model's context is read past its trained positions, with a ContextWarning
    (`conversation_lengths` finds them beforehand)."""
    response_ids = _response_ids(handle, responses)
    return read_answers(
        handle,
        conversations,
        response_ids,
        aggregation,
        batch_size=batch_size,
        desc="reading",
        progress=progress,
    )
