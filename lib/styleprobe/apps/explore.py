"""Answer one message and score the answer on the axes: the engine of the `00_explore` widget app.

An `Explorer` holds one model's workspace, one axis set and the model's baseline fingerprint under those
axes. `ask` generates a reply (optionally under a system prompt, optionally continuing the conversation so
far), reads it in the context the axes were calibrated in (question + answer, the system prompt dropped,
unless the axes were read "instructed") and keeps the turn in a history."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe import paths
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import Reading, measure_mask
from styleprobe.engine.generation import SamplingConfig, generate, tokenize_prompts
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.pipeline import Item, read_answers
from styleprobe.engine.sampling import row_key
from styleprobe.protocol.axes import AxesError, AxisSet
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.fingerprint import baseline, project_results, stored_baseline_seeds
from styleprobe.protocol.profiles import Profile, get_profile
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, default_thinking, keeps_instruction
from styleprobe.protocol.spec import Protocol
from styleprobe.workspace import Workspace


@dataclass
class Turn:
    model: str
    message: str
    system: str | None
    response: str
    response_ids: tuple[int, ...]
    finished: bool  # ended on an end-of-turn token, not on the token budget
    scores: pd.Series  # normalised projection per axis; NaN when the reply is empty
    index: int = field(default_factory=itertools.count().__next__)  # order of asking, across explorers


def axes_files(ws: Workspace) -> list[Path]:
    """Axis files calibrated on the workspace's model: `axes/<slug>.json` first, then the run store's
    (e.g. the instructed axes of notebook 07)."""
    found = []
    for path in [ws.axes_file, *ws.runs.axes_files()]:
        try:
            if path.exists() and AxisSet.load(path).model_id == ws.model.model_id:
                found.append(path)
        except AxesError:
            continue  # a broken file is not offered
    return found


def axes_label(path: Path, ws: Workspace) -> str:
    """A short name for an axis file: its name, with where it is when not in the axes folder."""
    if path.parent == ws.axes_file.parent:
        return path.name
    if path.is_relative_to(ws.runs.root):
        return f"{path.name} (run store)"
    return f"{path.name} ({path.parent.name}/)"


@dataclass
class Explorer:
    ws: Workspace  # the model, its profile and its run store (which keeps the baseline answers)
    axes: AxisSet
    axes_file: Path
    history: list[Turn] = field(default_factory=list)
    _baseline: pd.Series | None = None

    @classmethod
    def open(
        cls,
        model: str | ModelHandle,
        *,
        axes_file: str | Path | None = None,
        profile: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        root: str | Path | None = None,
        calibrate_missing: bool = False,
        progress: bool = True,
    ) -> Explorer:
        """Open the model's workspace (or one around a loaded handle) and its axes: `axes_file`, else the
        first of `axes_files` under `root` (None: the default root); with none, calibrate
        (`calibrate_missing`) or raise a one-line `AxesError`."""
        if isinstance(model, ModelHandle):
            ws = Workspace(model, get_profile(profile), Protocol.load(), model.slug, paths.folders(root))
        else:
            ws = Workspace.open(model, profile=profile, device=device, dtype=dtype, root=root)
        if axes_file is None:
            axes_file = next(iter(axes_files(ws)), ws.axes_file)
        axes_file = Path(axes_file)
        if not axes_file.exists():
            if not calibrate_missing:
                raise AxesError(
                    f"no axes for {ws.model.model_id} at {axes_file}: run notebook 01 or calibrate"
                )
            calibrate(ws, progress=progress).axes.save(axes_file)
        axes = AxisSet.load(axes_file)
        if axes.model_id != ws.model.model_id:
            raise AxesError(f"axes in {axes_file} belong to {axes.model_id!r}, not {ws.model.model_id!r}")
        return cls(ws, axes, axes_file)

    @property
    def handle(self) -> ModelHandle:
        return self.ws.model

    @property
    def profile(self) -> Profile:
        return self.ws.profile

    @property
    def name(self) -> str:
        return self.ws.slug

    @property
    def context(self) -> ReadingContext:
        """The context the axes were calibrated in, and replies are read in."""
        return self.axes.meta.get("context", DEFAULT_CONTEXT)

    @property
    def aggregation(self) -> Reading:
        return self.axes.reading()

    @property
    def baseline_ready(self) -> bool:
        """Whether `baseline()` has been computed (else its first call generates the baseline answers)."""
        return self._baseline is not None

    @property
    def baseline_size(self) -> tuple[int, int]:
        """What a first `baseline()` generates: (answers, new-token budget of each)."""
        seeds = stored_baseline_seeds(self.ws) or self.profile.seeds
        return len(seeds) * self.profile.n_baseline, self.profile.baseline_tokens

    def baseline(
        self, progress: bool = True, on_progress: Callable[[float], None] | None = None
    ) -> pd.Series:
        """Mean normalised projection of the default answers (no system prompt) to the profile's baseline
        questions, under this axis set. A baseline run already in the run store (notebook 02's seeds) is
        reused; otherwise the profile's seeds are generated once (`on_progress`: the share answered)."""
        if self._baseline is None:
            seeds = stored_baseline_seeds(self.ws)
            results = baseline(
                self.ws,
                seeds=seeds,
                aggregation=self.aggregation,
                progress=progress,
                on_progress=on_progress,
            )
            projections = project_results(self.axes, results, self.handle.model_id)
            # in the axes' normalised unit, the unit of every turn's scores (the fingerprint table's
            # positions are in pole units only on validated axes whose scale is not the floor)
            self._baseline = projections.groupby("q_index")[self.axes.names].mean().mean()
        return self._baseline

    def ask(
        self,
        message: str,
        system: str | None = None,
        *,
        continue_conversation: bool = False,
        seed: int = 0,
        max_new_tokens: int | None = None,
    ) -> Turn:
        """Answer `message` (sampled like the baseline answers), score the reply and add it to the history.
        With `continue_conversation`, earlier turns are the conversation before the message."""
        if not message or not message.strip():
            raise ValueError("empty message: type something for the model to answer")
        system = system.strip() if system and system.strip() else None
        history = tuple((t.message, t.response) for t in self.history) if continue_conversation else ()
        thinking = default_thinking(self.handle, None)
        item = Item(f"turn-{len(self.history)}", message, system, history)
        prompt = build_prompt(self.handle, message, system, history, thinking=thinking)
        sampling = SamplingConfig(max_new_tokens or self.profile.baseline_tokens)
        (gen,), _ = generate(
            self.handle, tokenize_prompts(self.handle, [prompt]), sampling, [row_key(seed, item.id)]
        )
        scores = pd.Series(np.nan, index=self.axes.names)
        # nothing to measure (empty, or a think block never closed): NaN, like unmeasured baseline answers
        if any(measure_mask(self.handle, 0, gen.response_ids)) and not gen.empty:
            reading = self.aggregation
            per_layer = read_answers(
                self.handle,
                [item],
                [gen.response_ids],
                reading,
                keep_system=keeps_instruction(self.context),
                thinking=thinking,
                progress=False,
            )
            scores[:] = self.axes.project(reading.combine(per_layer), self.handle.model_id)[0]
        turn = Turn(self.name, message, system, gen.text, tuple(gen.response_ids), gen.finished, scores)
        self.history.append(turn)
        return turn

    def validated(self) -> list[str]:
        """The axes that passed held-out validation when they were calibrated (the `validation` status the
        axes file records, as the fingerprint table reads it); a score on any other axis is shown marked."""
        recorded = {name: self.axes.calibration.get(name, {}).get("validation") for name in self.axes.names}
        return [name for name, status in recorded.items() if status == "valid"]

    def history_table(self) -> pd.DataFrame:
        """One row per turn: the message, the system prompt, the reply's length and its scores."""
        return history_table(self.history, self.axes.names)


def history_table(turns: list[Turn], names: list[str]) -> pd.DataFrame:
    rows = [
        {
            "model": t.model,
            "message": t.message,
            "system": t.system or "",
            "n_tokens": len(t.response_ids),
            **t.scores.reindex(names).to_dict(),
        }
        for t in turns
    ]
    return pd.DataFrame(rows, columns=["model", "message", "system", "n_tokens", *names])
