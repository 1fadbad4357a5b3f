"""The run store's layout: the only code that names anything under `runs/<model>/`.

Every stage (a set of answers with their states, see `styleprobe.engine.pipeline`) lives in a folder whose
name holds everything that changes its answers: the profile, the instruction set, the reading context, the
seeds. A run with other settings therefore gets another folder, and a finished folder is reused as it is.
The names are the ones earlier versions used, so existing run stores resume."""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass
from pathlib import Path

from styleprobe.engine.models import ModelHandle
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.reading import ReadingContext
from styleprobe.protocol.spec import Protocol


def _seeds(seeds: tuple[int, ...] | list[int]) -> str:
    return "seeds-" + "-".join(map(str, seeds))


@dataclass(frozen=True)
class RunStore:
    """`runs/<model>/` of one model: a folder per stage, named by its settings."""

    root: Path

    def calibration(
        self,
        instruction_set: str,
        context: ReadingContext,
        profile: str,
        axes: list[str] | None = None,
        thinking: bool | None = None,
    ) -> Path:
        """Calibration (and evaluation) answers of one instruction set, read in `context`; a subset of the
        axes and a thinking run are runs of their own."""
        subset = "" if axes is None else "-" + "+".join(axes)
        tag = "-thinking" if thinking else ""
        return self.root / f"calibration-{instruction_set}-{context}-{profile}{subset}{tag}"

    def neutral(self, profile: str, axes: list[str] | None = None, thinking: bool | None = None) -> Path:
        """The neutral control: the calibration questions of set A answered with no instruction."""
        subset = "" if axes is None else "-" + "+".join(axes)
        return self.root / f"neutral-{profile}{subset}{'-thinking' if thinking else ''}"

    def dose(
        self, context: ReadingContext, profile: str, n_questions: int, thinking: bool | None = None
    ) -> Path:
        """The dose-response control: the first `n_questions` calibration questions of set A under each
        graded instruction, read in `context`."""
        return self.root / f"dose-{context}-{profile}-{n_questions}q{'-thinking' if thinking else ''}"

    def baseline_root(self, profile: str, thinking: bool | None = None, system: str | None = None) -> Path:
        """The folder of every baseline run of this profile (one subfolder per set of seeds)."""
        tag = "" if thinking is None else f"-thinking-{'on' if thinking else 'off'}"
        if system is not None:
            tag += "-system-" + hashlib.sha256(system.encode()).hexdigest()[:10]
        return self.root / f"baseline{tag}-{profile}"

    def baseline(
        self, profile: str, seeds: tuple[int, ...], thinking: bool | None = None, system: str | None = None
    ) -> Path:
        """Default answers to the baseline questions, all `seeds` in one stage."""
        return self.baseline_root(profile, thinking, system) / _seeds(seeds)

    def baseline_seeds(self, profile: str, thinking: bool | None = None) -> list[tuple[int, ...]]:
        """The seed sets of the baseline runs already stored for `profile`."""
        folder = self.baseline_root(profile, thinking)
        found = [p.name for p in folder.glob("seeds-*") if p.is_dir()]
        return [tuple(int(s) for s in name.split("-")[1:]) for name in sorted(found)]

    def benchmark(self, profile: str, seeds: list[int] | tuple[int, ...], part: str) -> Path:
        """One part of the instruction benchmark: `turn-1`, `turn-1-uninstructed` or `turn-2`."""
        return self.root / f"benchmark-{profile}" / _seeds(seeds) / part

    def formulations(self, profile: str, context: ReadingContext | None = None) -> Path:
        """Answers under five wordings of each pole's instruction; `context` names a re-read."""
        return self.root / (f"formulations-{profile}" + (f"-{context}" if context else ""))

    def all_layers(self, instruction_set: str, context: ReadingContext, profile: str) -> Path:
        """A re-read of the calibration answers that keeps every layer (the configuration ablation)."""
        return self.root / f"reread-all-layers-{instruction_set}-{context}-{profile}"

    def blocks(self, calibration: Path) -> Path:
        """The answers of a `calibration` stage re-read at the embedding and every block with every pooling
        (`calibration.GRID_DECAYS`): what nested selection chooses from (`blocks-<the stage's settings>`)."""
        return calibration.with_name(calibration.name.replace("calibration-", "blocks-", 1))

    def steering(self, profile: str, max_new_tokens: int, layers: list[int]) -> Path:
        return self.root / f"steering-{profile}-{max_new_tokens}tok-blocks{'+'.join(map(str, layers))}"

    def drift(self, tag: str, seed: int) -> Path:
        """One seed of the drift conversations (`tag` names the scenarios and budgets); turns below it."""
        return self.root / tag / f"seed-{seed}"

    def judge_cache(self) -> Path:
        return self.root / "judge-cache"

    def axes(self, context: ReadingContext) -> Path:
        """Standard axes read in the other context than the model's `axes/<model>.json` (notebook 07)."""
        return self.root / f"axes-{context}.json"

    def axes_files(self) -> list[Path]:
        """Every axes file kept in the run store."""
        return sorted(self.root.glob("axes-*.json"))

    def notebooks(self) -> Path:
        """Executed copies of the notebooks."""
        return self.root / "notebooks"


class Session(typing.Protocol):
    """What the protocol's stages run in: a loaded model, its profile, the protocol and its run store
    (`styleprobe.workspace.Workspace` is one)."""

    profile: Profile
    protocol: Protocol

    @property
    def model(self) -> ModelHandle: ...

    @property
    def runs(self) -> RunStore: ...
