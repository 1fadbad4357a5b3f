"""The check that a typed result's paper view comes from its saved fields alone: the same numbers and tables
from the result as made and as read back from its JSON section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe.report import paper
from styleprobe.result import Result


def _same(a: object, b: object) -> bool:
    """Equal values, NaN equal to NaN; a float never equals an int (the paper prints them differently)."""
    floats = {isinstance(x, float | np.floating) for x in (a, b)}
    if len(floats) > 1:
        return False
    return bool(a == b) or (floats == {True} and np.isnan(a) and np.isnan(b))


def reloaded(result: Result) -> Result:
    """`result` written as its results section and read back."""
    return type(result).from_dict(json.loads(json.dumps(result.to_dict())))


def assert_paper_survives_reload(result: Result, tmp_path: Path) -> None:
    """The reloaded result gives the same paper numbers (NaN-aware), the same table frames, and the same
    printed numbers and table files as `result`."""
    again = reloaded(result)
    numbers, numbers_again = paper.flatten(result.paper()), paper.flatten(again.paper())
    assert list(numbers_again) == list(numbers)
    differ = {k: (v, numbers_again[k]) for k, v in numbers.items() if not _same(v, numbers_again[k])}
    assert not differ, f"reloaded paper numbers differ (made, reloaded): {differ}"
    for name, table in result.paper_tables().items():
        other = again.paper_tables()[name]
        pd.testing.assert_frame_equal(other.frame, table.frame, check_names=False, check_index_type=False)
        assert (other.digits, dict(other.columns), other.index_name) == (
            table.digits,
            dict(table.columns),
            table.index_name,
        )
    written = {}
    for label, r in (("made", result), ("reloaded", again)):
        root = tmp_path / label
        paper.write_numbers("m", r.notebook, r.paper(), digits=r.paper_digits, root=root, part=r.name)
        for name, t in r.paper_tables().items():
            paper.write_table(
                "m", name, t.frame, digits=t.digits, columns=t.columns, index_name=t.index_name, root=root
            )
        written[label] = {p.name: p.read_text() for p in sorted((root / "m").iterdir())}
    assert written["reloaded"] == written["made"]
