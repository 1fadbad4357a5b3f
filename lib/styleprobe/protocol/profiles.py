"""Named protocol sizes: `paper` is the full protocol, `quick` a small one for CPUs and CI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from styleprobe.errors import is_integer


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


PROFILES = {
    "paper": Profile("paper", 30, 10, 30, (0, 1, 2, 3, 4), 200, 384, 10),
    "quick": Profile("quick", 15, 5, 15, (0,), 128, 128, 5),
    "smoke": Profile("smoke", 4, 3, 6, (0,), 12, 12, 2),  # notebooks on tiny random models in CI
}


def get_profile(name: str | None, **overrides) -> Profile:
    """`None` picks `paper` on a GPU machine and `quick` otherwise. Overrides (None ones ignored) change
    single sizes; the result is then named e.g. `quick+calibration_tokens=64`, so its runs stay apart."""
    name = name or ("paper" if torch.cuda.is_available() else "quick")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    base = PROFILES[name]
    unknown = set(overrides) - set(base.to_dict()) - {"name"}
    if unknown:
        sizes = ", ".join(k for k in base.to_dict() if k != "name")
        raise ValueError(f"unknown profile size {', '.join(sorted(unknown))}; choose from {sizes}")
    for key, value in overrides.items():
        if value is not None and not _valid_size(key, value):
            what = "a non-empty list of seeds >= 0" if key == "seeds" else "a positive integer"
            raise ValueError(f"profile size {key} must be {what}, got {value!r}")
    overrides = {k: tuple(v) if k == "seeds" and v is not None else v for k, v in overrides.items()}
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(base, k) != v}
    if not changed:
        return base
    label = "+".join([name, *(f"{k}={v}" for k, v in sorted(changed.items()))])
    return replace(base, name=label, **changed)


def _valid_size(key: str, value) -> bool:
    if key == "seeds":
        return (
            isinstance(value, list | tuple) and bool(value) and all(is_integer(v) and v >= 0 for v in value)
        )
    return is_integer(value) and value >= 1
