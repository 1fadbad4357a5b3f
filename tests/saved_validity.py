"""Save the two results every validity check reads (notebook 01's held-out evaluation, notebook 08's dead
zones) for a test workspace, with only the fields that check reads filled in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import pandas as pd

from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.report.results import update_results


def save_validity(
    ws,
    accuracy: Mapping[str, tuple[float, float]],
    dead: Iterable[str] = (),
    severity: Mapping[str, float] | None = None,
    slug: str | None = None,
) -> None:
    """`accuracy`: axis -> (pairwise accuracy, lower end of its interval); `dead`: axes classed dead, with
    their `severity` when given; `slug`: another model under the workspace's root (default: its own)."""
    evaluation = pd.DataFrame(accuracy, index=["pairwise_accuracy", "accuracy_ci_low"]).T
    zones = pd.DataFrame({"dead": [a in set(dead) for a in accuracy]}, index=list(accuracy))
    if severity is not None:
        zones["severity"] = pd.Series(severity)
    sections = {
        CalibrationResult: {"evaluation": evaluation.to_dict(orient="index")},
        DeadZonesResult: {"table": zones.to_dict(orient="index"), "ranking": {}},
    }
    for cls, filled in sections.items():
        section = {f.name: None for f in dataclasses.fields(cls)} | filled
        update_results(slug or ws.slug, cls.name, section, ws.results_dir)
