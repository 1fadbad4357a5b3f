"""styleprobe: behavioural fingerprints of chat LLMs from their hidden states.

The Python API in five lines (the shipped axes of the embedded model, its fingerprint, a radar chart):

    import styleprobe
    ws = styleprobe.Workspace.open("smollm2-135m-instruct")  # the model, its profile and output folders
    fp = styleprobe.fingerprint(ws, axes=ws.axes())          # axes/<model>.json; answers the baseline
    print(fp.fingerprint[["mean", "ci_low", "ci_high", "validation"]])
    styleprobe.radar({ws.slug: fp.fingerprint["mean"].clip(-1, 1)}).figure.savefig("fingerprint.png")

The names are imported on first use, so `import styleprobe` stays light (no torch)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Workspace": ("styleprobe.workspace", "Workspace"),
    "fingerprint": ("styleprobe.protocol.fingerprint", "run"),
    "radar": ("styleprobe.report.plots", "radar"),
}
__all__ = ["Workspace", "__version__", "fingerprint", "radar"]  # the names of _EXPORTS, and the version

if TYPE_CHECKING:
    from styleprobe.protocol.fingerprint import run as fingerprint
    from styleprobe.report.plots import radar
    from styleprobe.workspace import Workspace


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'styleprobe' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
