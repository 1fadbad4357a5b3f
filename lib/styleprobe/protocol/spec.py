"""The protocol's data: the style axes (axes.yaml), the question bank (questions.yaml) and the per-axis text
lexicon (lexicon.yaml), loaded and validated as one `Protocol` from a data folder.

`Protocol.load()` reads the package's own data folder (`styleprobe/data`, also reachable as `data/` in a
checkout) or the folder named by `STYLEPROBE_DATA_DIR`; `Protocol.load(folder)` reads any other. Code below
the notebooks never loads the protocol itself: it is handed one."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from styleprobe.errors import StyleprobeError, first_line
from styleprobe.paths import data_dir

INSTRUCTION_SETS = ("A", "B", "C")
FORMULATIONS = ("plain", "minimal", "role", "behavioural", "example")
GRADES = ("very_negative", "slightly_negative", "slightly_positive", "very_positive")
"""The graded instructions of the dose-response control (`AxisSpec.graded`), from the negative pole's
strongest to the positive pole's strongest."""
GRADE_LEVELS = {
    "very_negative": -2,
    "slightly_negative": -1,
    "neutral": 0,
    "slightly_positive": 1,
    "very_positive": 2,
}
"""The ordinal level of each grade, with "neutral" (no instruction) in the middle: the order the projections
of the graded answers should follow."""
_QUESTION_SETS = ("calibration", "evaluation", "set_b", "set_c")
_SET_NAMES = {"A": "calibration", "B": "set_b", "C": "set_c"}


class DataError(StyleprobeError, ValueError):
    """A data file is missing or malformed; the message is one line naming the file."""


@dataclass(frozen=True)
class AxisSpec:
    name: str
    positive: str
    negative: str
    description: str
    instructions: dict[str, tuple[str, str]]
    formulations: dict[str, tuple[str, str]]
    nudges: tuple[str, str]
    graded: dict[str, str]  # the dose-response instructions by grade, in the order of GRADES
    text_metric: str | None = None  # the text metric expected higher at the positive pole

    def instruction(self, pole: int, set_name: str = "A") -> str:
        """The system prompt for pole +1 (positive) or -1 (negative) from instruction set `set_name`."""
        if pole not in (1, -1):
            raise ValueError(f"pole must be +1 or -1, got {pole!r}")
        if set_name not in self.instructions:
            raise ValueError(f"unknown instruction set {set_name!r}; expected one of {INSTRUCTION_SETS}")
        return self.instructions[set_name][0 if pole == 1 else 1]

    def graded_instruction(self, grade: str) -> str | None:
        """The system prompt of a grade of the dose-response control (None for "neutral": no instruction)."""
        if grade not in GRADE_LEVELS:
            raise ValueError(f"unknown grade {grade!r}; expected one of {list(GRADE_LEVELS)}")
        return None if grade == "neutral" else self.graded[grade]

    @property
    def poles(self) -> tuple[str, str]:
        return (self.positive, self.negative)


@dataclass(frozen=True)
class QuestionBank:
    calibration: dict[str, list[str]]
    evaluation: dict[str, list[str]]
    baseline: list[str]
    set_b: dict[str, list[str]]
    set_c: dict[str, list[str]]

    def calibration_set(self, name: str) -> dict[str, list[str]]:
        """Questions per axis of calibration set "A" (the standard one), "B" or "C"."""
        if name not in _SET_NAMES:
            raise ValueError(f"unknown calibration set {name!r}; expected one of {INSTRUCTION_SETS}")
        return getattr(self, _SET_NAMES[name])

    def all_questions(self) -> list[tuple[str, str]]:
        """Every question with its set label, e.g. ("calibration/warm_cold", q) or ("baseline", q)."""
        out = [(f"{s}/{ax}", q) for s in _QUESTION_SETS for ax, qs in getattr(self, s).items() for q in qs]
        return out + [("baseline", q) for q in self.baseline]


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = first_line(exc)
        raise DataError(f"{path}: cannot read YAML ({first})") from exc


def _get(path: Path, mapping: Any, key: str, where: str, kind: type) -> Any:
    """mapping[key], checked to be a `kind` (non-empty for strings)."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise DataError(f"{path}: missing key {where}{key}")
    value = mapping[key]
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise DataError(f"{path}: {where}{key} must be a non-empty {kind.__name__}")
    return value


def _pair(path: Path, mapping: Any, key: str, where: str) -> tuple[str, str]:
    sub = _get(path, mapping, key, where, dict)
    where = f"{where}{key}."
    return (_get(path, sub, "positive", where, str), _get(path, sub, "negative", where, str))


def _pairs(
    path: Path, mapping: Any, key: str, where: str, names: tuple[str, ...]
) -> dict[str, tuple[str, str]]:
    sub = _get(path, mapping, key, where, dict)
    if set(sub) != set(names):
        raise DataError(f"{path}: {where}{key} must have exactly the keys {list(names)}, got {list(sub)}")
    return {n: _pair(path, sub, n, f"{where}{key}.") for n in names}


def _graded(path: Path, mapping: Any, where: str) -> dict[str, str]:
    sub = _get(path, mapping, "graded", where, dict)
    if set(sub) != set(GRADES):
        raise DataError(f"{path}: {where}graded must have exactly the keys {list(GRADES)}, got {list(sub)}")
    return {g: _get(path, sub, g, f"{where}graded.", str) for g in GRADES}


def load_axes(path: Path | None = None) -> dict[str, AxisSpec]:
    """Parse and validate axes.yaml; the axes keep the order of the file."""
    path = Path(path) if path is not None else data_dir() / "axes.yaml"
    entries = _get(path, _read_yaml(path), "axes", "", list)
    axes: dict[str, AxisSpec] = {}
    for i, entry in enumerate(entries):
        where = f"axes[{i}]."
        name = _get(path, entry, "name", where, str)
        if name in axes:
            raise DataError(f"{path}: duplicate axis {name!r}")
        where = f"axes[{i}] ({name})."  # the axis named in every message below
        axes[name] = AxisSpec(
            name=name,
            positive=_get(path, entry, "positive", where, str),
            negative=_get(path, entry, "negative", where, str),
            description=_get(path, entry, "description", where, str),
            instructions=_pairs(path, entry, "instructions", where, INSTRUCTION_SETS),
            formulations=_pairs(path, entry, "formulations", where, FORMULATIONS),
            nudges=_pair(path, entry, "nudges", where),
            graded=_graded(path, entry, where),
            text_metric=_get(path, entry, "text_metric", where, str) if "text_metric" in entry else None,
        )
    if not axes:
        raise DataError(f"{path}: 'axes' is empty")
    return axes


def load_questions(path: Path | None = None, axes_path: Path | None = None) -> QuestionBank:
    """Parse and validate questions.yaml against the axes (axes.yaml next to it, else the default one)."""
    path = Path(path) if path is not None else data_dir() / "questions.yaml"
    if axes_path is None:
        sibling = path.with_name("axes.yaml")
        axes_path = sibling if sibling.exists() else data_dir() / "axes.yaml"
    names = list(load_axes(axes_path))
    raw = _read_yaml(path)
    sets: dict[str, dict[str, list[str]]] = {}
    for set_name in _QUESTION_SETS:
        by_axis = _get(path, raw, set_name, "", dict)
        extra, missing = set(by_axis) - set(names), [n for n in names if n not in by_axis]
        if extra or missing:
            raise DataError(
                f"{path}: {set_name} axes do not match {axes_path.name}"
                f" (unknown: {sorted(extra)}, missing: {missing})"
            )
        sets[set_name] = {n: _questions(path, by_axis, n, f"{set_name}.") for n in names}
    return QuestionBank(baseline=_questions(path, raw, "baseline", ""), **sets)


def _questions(path: Path, mapping: Any, key: str, where: str) -> list[str]:
    items = _get(path, mapping, key, where, list)
    for i, q in enumerate(items):
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{path}: {where}{key}[{i}] must be a non-empty string")
    if not items:
        raise DataError(f"{path}: {where}{key} is empty")
    return list(items)


def normalise_text(text: str) -> str:
    """Lower-case `text` and keep only letters and digits (drops punctuation, whitespace and symbols)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def find_overlaps(bank: QuestionBank) -> list[tuple[str, str, str]]:
    """(first set, later set, question) for every question equal to an earlier one after normalisation."""
    seen: dict[str, str] = {}
    overlaps = []
    for label, question in bank.all_questions():
        key = normalise_text(question)
        if key in seen:
            overlaps.append((seen[key], label, question))
        else:
            seen[key] = label
    return overlaps


def prompt_set_hash(axes_path: Path | None = None, questions_path: Path | None = None) -> str:
    """First 16 hex digits of the sha256 of the canonical JSON of both (validated) data files."""
    axes_path = Path(axes_path) if axes_path is not None else data_dir() / "axes.yaml"
    questions_path = Path(questions_path) if questions_path is not None else data_dir() / "questions.yaml"
    load_questions(questions_path, axes_path)
    payload = {"axes": _read_yaml(axes_path), "questions": _read_yaml(questions_path)}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Protocol:
    """The axes, their questions and the data folder they come from, validated together. Everything that
    needs an axis or a question takes a Protocol; other files of the folder (lexicon.yaml, judge.yaml,
    drift.yaml, mood_axis/) are found with `file`."""

    folder: Path
    axes: dict[str, AxisSpec]
    questions: QuestionBank
    hash: str  # prompt_set_hash of axes.yaml + questions.yaml: stored with every axis set

    @classmethod
    def load(cls, folder: str | Path | None = None) -> Protocol:
        """The protocol of `folder` (None: the package's data, or `STYLEPROBE_DATA_DIR`)."""
        folder = Path(folder) if folder is not None else data_dir()
        if not folder.is_dir():
            raise DataError(f"{folder}: no such data folder")
        axes_path, questions_path = folder / "axes.yaml", folder / "questions.yaml"
        return cls(
            folder=folder,
            axes=load_axes(axes_path),
            questions=load_questions(questions_path, axes_path),
            hash=prompt_set_hash(axes_path, questions_path),
        )

    @property
    def names(self) -> list[str]:
        return list(self.axes)

    def poles(self) -> dict[str, tuple[str, str]]:
        return {name: spec.poles for name, spec in self.axes.items()}

    def file(self, name: str) -> Path:
        """Another file (or folder) of the data folder, e.g. `lexicon.yaml`; DataError if it is missing."""
        path = self.folder / name
        if not path.exists():
            raise DataError(f"{path}: missing from the data folder {self.folder}")
        return path
