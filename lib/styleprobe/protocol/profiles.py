"""Named protocol sizes: `paper` is the full protocol, `quick` a small one for CPUs and CI, `smoke` a tiny
one for notebooks on random-init models. `quick` is sized so that `make reproduce` (every notebook but 03
for the embedded model) ends within 30 minutes on 2 CPU cores: its calibration token budget and its drift
sizes are the ones cut for that (see docs/method.md, Profiles). Each profile has the sizes of the
conflict-drift runs beside it (`drift_profile`), named and overridden the same way."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TypeVar

import torch

from styleprobe.errors import is_integer
from styleprobe.protocol.spec import DataError, Protocol


@dataclass(frozen=True)
class Profile:
    name: str
    n_calibration: int  # calibration questions per axis; each is answered under both poles
    n_evaluation: int  # held-out evaluation questions per axis, answered under both poles
    n_baseline: int  # baseline questions, answered with no style instruction
    seeds: tuple[int, ...]  # baseline repetitions (test-retest)
    calibration_tokens: int  # new-token budget for calibration and evaluation answers
    baseline_tokens: int  # new-token budget for baseline answers
    n_benchmark: int  # questions per benchmark scenario (instruction-following check, notebook 07)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DriftProfile:
    """The sizes of the conflict-drift conversations (notebook 09), apart from the others because the
    history makes a conversation's cost grow with the square of its turns."""

    name: str
    n_scenarios: int  # conflict scenarios, taken across categories in turn
    n_controls: int  # neutral control conversations
    n_conflict: int  # conflict turns, the opening request first
    n_recovery: int = field(metadata={"minimum": 0})  # recovery turns after the conflict
    max_new_tokens: int  # token budget of each answer

    @property
    def n_turns(self) -> int:
        return self.n_conflict + self.n_recovery

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "paper": Profile("paper", 30, 30, 30, (0, 1, 2, 3, 4), 200, 384, 10),
    "quick": Profile("quick", 15, 10, 15, (0,), 96, 128, 5),
    "smoke": Profile("smoke", 4, 3, 6, (0,), 12, 12, 2),  # notebooks on tiny random models in CI
}
DRIFT_PROFILES = {
    "paper": DriftProfile("paper", 20, 10, 12, 4, 200),
    "quick": DriftProfile("quick", 8, 4, 8, 2, 32),
    "smoke": DriftProfile("smoke", 2, 1, 3, 1, 8),
}
Sizes = TypeVar("Sizes", Profile, DriftProfile)
QUESTION_SIZES = {
    "n_calibration": "calibration",
    "n_evaluation": "evaluation",
    "n_baseline": "baseline",
    "n_benchmark": "baseline",
}
"""The profile's question counts and the question list of questions.yaml each one takes its first questions
from (per axis, but the baseline, which is one list)."""


def get_profile(name: str | None, **overrides) -> Profile:
    """`None` picks `paper` on a GPU machine and `quick` otherwise. Overrides (None ones ignored) change
    single sizes; the result is then named e.g. `quick+calibration_tokens=64`, so its runs stay apart."""
    name = name or ("paper" if torch.cuda.is_available() else "quick")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    if name.startswith("smoke"):
        import styleprobe.testing  # noqa: F401  (registers the tiny `random:` test models of smoke runs)
    return with_sizes(PROFILES[name], **overrides)


def drift_profile(profile: Profile | str | None, **overrides: int | None) -> DriftProfile:
    """The drift sizes of `profile` (a Profile or its name: `quick+n_baseline=10` has quick's), with single
    sizes overridden as in `get_profile`, e.g. `quick+max_new_tokens=16`."""
    name = profile.name if isinstance(profile, Profile) else profile
    base = (name or ("paper" if torch.cuda.is_available() else "quick")).split("+")[0]
    if base not in DRIFT_PROFILES:
        raise ValueError(f"unknown profile {base!r}; choose from {', '.join(DRIFT_PROFILES)}")
    return with_sizes(DRIFT_PROFILES[base], **overrides)


def with_sizes(base: Sizes, **overrides) -> Sizes:
    """`base` with single sizes changed (None ones ignored), named after what changed (`quick+x=1`)."""
    minimum = {f.name: f.metadata.get("minimum", 1) for f in fields(base) if f.name != "name"}
    unknown = set(overrides) - set(minimum)
    if unknown:
        raise ValueError(
            f"unknown profile size {', '.join(sorted(unknown))}; choose from {', '.join(minimum)}"
        )
    for key, value in overrides.items():
        if value is not None and not _valid_size(key, value, minimum[key]):
            if key == "seeds":
                what = "a non-empty list of seeds >= 0"
            else:
                what = "a positive integer" if minimum[key] == 1 else f"an integer >= {minimum[key]}"
            raise ValueError(f"profile size {key} must be {what}, got {value!r}")
    overrides = {k: tuple(v) if k == "seeds" and v is not None else v for k, v in overrides.items()}
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(base, k) != v}
    if not changed:
        return base
    label = "+".join([base.name, *(f"{k}={v}" for k, v in sorted(changed.items()))])
    return replace(base, name=label, **changed)


def _valid_size(key: str, value, minimum: int) -> bool:
    if key == "seeds":
        return (
            isinstance(value, list | tuple) and bool(value) and all(is_integer(v) and v >= 0 for v in value)
        )
    return is_integer(value) and value >= minimum


def check_question_counts(profile: Profile, protocol: Protocol) -> None:
    """DataError (one line, naming the size, the file, the axis and both counts) when a size of `profile`
    asks for more questions than the protocol's data hold: a profile takes the first n questions of a list,
    and a silently shorter list would change the protocol. Calibration is checked against set A, the
    standard one: sets B and C have their own, shorter lists, used up to their length (docs/method.md)."""
    questions = protocol.questions
    for size, set_name in QUESTION_SIZES.items():
        asked = getattr(profile, size)
        lists = {"": questions.baseline} if set_name == "baseline" else getattr(questions, set_name)
        for axis, items in lists.items():
            if len(items) < asked:
                where = f" for {axis}" if axis else ""
                per_axis = " per axis" if axis else ""
                raise DataError(
                    f"profile {profile.name} asks for {asked} {set_name} questions{per_axis} ({size}), but "
                    f"{protocol.folder / 'questions.yaml'} has {len(items)}{where}"
                )
