"""Typed results: what an analysis returns, what it saves, and the only way a later analysis reads it.

A Result is a dataclass whose fields are its section of `results/<model>.json`. It names the notebook that
makes it and the results it reads (`needs`), so `styleprobe reproduce` can order the notebooks (and run
independent ones side by side) and refuse a plan whose needs nothing makes. Its `paper()` view gives the
numbers the paper reads as `\\result{<model>/<notebook>/<key>}` and `paper_tables()` its tables; nothing
else writes paper numbers.

Saving and loading go through the Workspace (`ws.save(result)`, `Result.load(ws)`), which owns the files;
the analyses never build a path."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from styleprobe.errors import StyleprobeError

REGISTRY: dict[str, type[Result]] = {}  # section name -> Result class, filled as the analyses are imported


class ResultsError(StyleprobeError, ValueError):
    """A result is missing, truncated or not what its class expects; the message is one line."""


@dataclass(frozen=True)
class PaperTable:
    """A table for the paper: a frame and how to print it (see `styleprobe.report.paper.write_table`)."""

    frame: pd.DataFrame
    digits: int = 2
    columns: Mapping[str, str] = field(default_factory=dict)
    index_name: str | None = None


class Sections(Protocol):
    """What saves and loads results (the Workspace)."""

    def save(self, result: Result) -> Any: ...

    def section(self, cls: type[Result]) -> dict: ...


def plain(obj: Any) -> Any:
    """JSON-ready copies of numpy and pandas values (NaN becomes null; frames by row label)."""
    if isinstance(obj, pd.DataFrame):
        return plain(obj.to_dict(orient="index"))
    if isinstance(obj, pd.Series):
        return plain(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def axis_label(name: str) -> str:
    """How the paper names an axis: `warm_cold` -> `warm/cold`."""
    return str(name).replace("_", "/")


def axis_list(names) -> str:
    """Axes for a sentence of the paper: `warm/cold, formal/casual`, or `none`."""
    return ", ".join(axis_label(n) for n in names) or "none"


def _numeric_index(index: pd.Index) -> pd.Index:
    """Row labels that were numbers before JSON made them strings become numbers again."""
    try:
        return pd.Index(pd.to_numeric(index), name=index.name)
    except (ValueError, TypeError):
        return index


def _decode(kind: Any, value: Any) -> Any:
    """A JSON value back as the field's type: frames and series rebuilt, null floats as NaN."""
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    options = set(typing.get_args(kind)) - {type(None)} if union else {kind}
    if value is None:
        return float("nan") if options == {float} else None
    if pd.DataFrame in options:
        frame = pd.DataFrame.from_dict(value, orient="index") if value else pd.DataFrame()
        frame.index = _numeric_index(frame.index)
        return frame
    if pd.Series in options:
        numeric = all(v is None or isinstance(v, float | int) for v in value.values())
        series = pd.Series(value, dtype=float if numeric else None)
        series.index = _numeric_index(series.index)
        return series
    return value


@dataclass
class Result:
    """Base of every analysis result. Subclasses are dataclasses and set the class variables below."""

    name: ClassVar[str]  # its section in results/<model>.json
    notebook: ClassVar[str]  # the notebook that makes it, e.g. "07_stability"
    needs: ClassVar[tuple[str, ...]] = ()  # names of the results it reads
    cross_model: ClassVar[bool] = False  # made once for all models (notebook 10), not per model
    paper_digits: ClassVar[int] = 2  # decimals of the paper's numbers

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in REGISTRY and REGISTRY[cls.name].__qualname__ != cls.__qualname__:
                raise TypeError(f"two results named {cls.name!r}: {REGISTRY[cls.name]} and {cls}")
            REGISTRY[cls.name] = cls

    def to_dict(self) -> dict:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping) -> typing.Self:
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if f.init]
        required = [f for f in fields if f.default is MISSING and f.default_factory is MISSING]
        missing = [f.name for f in required if f.name not in data]
        if missing:
            raise ResultsError(
                f"the {cls.name} result lacks {', '.join(missing)}: it was written by an older version; "
                f"rerun notebook {cls.notebook}"
            )
        # a field added later with a default takes it in results written before it
        values = {f.name: _decode(hints.get(f.name), data[f.name]) for f in fields if f.name in data}
        return cls(**values)

    def save(self, ws: Sections) -> Any:
        """Write this result (its section, its paper numbers and tables) through the workspace."""
        return ws.save(self)

    @classmethod
    def load(cls, ws: Sections) -> typing.Self:
        """This model's saved result; ResultsError naming the notebook to run if there is none."""
        return cls.from_dict(ws.section(cls))

    def paper(self) -> Mapping[str, Any]:
        """The numbers the paper reads, by key (nested mappings become `a/b/c` keys)."""
        return {}

    def paper_tables(self) -> dict[str, PaperTable]:
        """The tables the paper inputs, by file name."""
        return {}
