"""`results/<model>.json`: the small machine-readable summary each notebook adds its section to, and the
registry of the typed results that fill it.

Notebooks may run at the same time: `update_results` holds the lock `results/<model>.json.lock` across its
read-modify-write, so no section is lost, and the file is replaced whole, so readers need no lock."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

from styleprobe.engine.store import locked, write_json
from styleprobe.errors import first_line
from styleprobe.paths import folders
from styleprobe.result import REGISTRY, Result, ResultsError, plain

RESULT_PACKAGES = ("styleprobe.protocol", "styleprobe.analyses")  # where the Result classes are defined


def results_path(slug: str, results_dir: Path | None = None) -> Path:
    return Path(results_dir or folders().results) / f"{slug}.json"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ResultsError(f"corrupt results file {path} ({first_line(err)}); repair or delete it") from None
    if not isinstance(data, dict):
        raise ResultsError(f"corrupt results file {path} (not a JSON object); repair or delete it")
    return data


def load_results(slug: str, results_dir: Path | None = None) -> dict:
    """The model's results ({"model": slug} if it has none yet); a damaged file raises ResultsError."""
    path = results_path(slug, results_dir)
    return _read(path) if path.exists() else {"model": slug}


def update_results(slug: str, section: str, payload, results_dir: Path | None = None) -> Path:
    """Replace one section of the model's results file (under its lock, written atomically) and return its
    path; a damaged file raises ResultsError and is left as it is."""
    path = results_path(slug, results_dir)
    payload = plain(payload)
    with locked(path):
        data = load_results(slug, results_dir)
        data[section] = payload
        write_json(path, data)
    return path


def all_results(results_dir: Path | None = None) -> dict[str, dict]:
    """Every model's results, by slug."""
    folder = Path(results_dir or folders().results)
    return {p.stem: _read(p) for p in sorted(folder.glob("*.json"))}


def result_classes() -> dict[str, type[Result]]:
    """{section name: Result class} of every result: imports each module of the protocol and the analyses
    (defining a Result registers it) and returns the registry."""
    for package in RESULT_PACKAGES:
        path = importlib.import_module(package).__path__
        for module in pkgutil.walk_packages(path, prefix=f"{package}."):
            importlib.import_module(module.name)
    return dict(REGISTRY)
