"""The same axes and answers under each normalisation (notebook 07): where the calibration answers, the
held-out evaluation answers and the default (baseline) answers land when 0 and ±1 are set the crossfit way
(the default), from in-sample medians and IQRs (earlier versions), or the original study's way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import NORMALISATIONS, AxisSet
from styleprobe.protocol.calibration import Calibration, fit_from_result, fitted_like
from styleprobe.protocol.fingerprint import project_results
from styleprobe.result import PaperTable, Result


def renormalised(cal: Calibration, normalisation: str) -> AxisSet:
    """`cal`'s axes with another normalisation: the same directions, centre and scale set anew."""
    poles = dict(zip(cal.axes.names, cal.axes.poles, strict=True))
    return fit_from_result(
        cal.result,
        cal.axes.model_id,
        normalisation,
        poles=poles,
        layers=cal.axes.layers,
        **fitted_like(cal.axes),
        **cal.axes.meta,
    )[0]


def _pole_means(axes: AxisSet, result: StageResult, split: str) -> pd.DataFrame:
    rec = result.records
    values = axes.project(axes.states(result), clip=False)
    keep = (rec["split"] == split).to_numpy() & ~rec["empty"].to_numpy(bool)
    rows = {}
    for i, name in enumerate(axes.names):
        own = keep & (rec["axis"] == name).to_numpy()
        pole = rec["pole"].to_numpy()
        rows[name] = {
            p: float(values[own & (pole == s), i].mean()) for p, s in (("positive", 1), ("negative", -1))
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def compare(cal: Calibration, baseline: dict[int, StageResult], model_id: str) -> pd.DataFrame:
    """Per normalisation and axis: the mean calibration (in-sample) and evaluation (held-out) projection of
    each pole, unclipped, and the baseline position as each normalisation reports it (clipped where its
    convention clips, `AxisSet.clips`)."""
    frames = []
    for normalisation in NORMALISATIONS:
        axes = renormalised(cal, normalisation)
        position = project_results(axes, baseline, model_id).groupby("q_index")[axes.names].mean().mean()
        frame = (
            _pole_means(axes, cal.result, "calibration")
            .add_prefix("calibration_")
            .join(_pole_means(axes, cal.result, "evaluation").add_prefix("heldout_"))
            .assign(position=position, normalisation=normalisation)
        )
        frames.append(frame.rename_axis("axis").reset_index())
    return pd.concat(frames, ignore_index=True).set_index(["normalisation", "axis"])


@dataclass
class NormalisationsResult(Result):
    """Notebook 07: the fingerprint and the pole means under each normalisation."""

    name: ClassVar[str] = "normalisations"
    notebook: ClassVar[str] = "07_stability"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "baseline")

    table: pd.DataFrame  # `compare`, flattened: one row per (normalisation, axis)

    def summary(self) -> pd.DataFrame:
        """Per normalisation, averaged over axes: the half distance between the poles' mean projections in
        sample and held out (1 in sample would be the unit's own definition for crossfit; held out is what
        new answers show), and the mean |position| of the default."""
        t = self.table.reset_index()
        t["calibration_half"] = (t["calibration_positive"] - t["calibration_negative"]) / 2
        t["heldout_half"] = (t["heldout_positive"] - t["heldout_negative"]) / 2
        t["abs_position"] = t["position"].abs()
        return t.groupby("normalisation", sort=False)[
            ["calibration_half", "heldout_half", "abs_position"]
        ].mean()

    def paper(self) -> dict:
        return {"summary": self.summary().to_dict(orient="index")}

    def paper_tables(self) -> dict[str, PaperTable]:
        columns = {
            "calibration_half": "in-sample half separation",
            "heldout_half": "held-out half separation",
            "abs_position": "mean |position|",
        }
        return {
            "normalisations_table": PaperTable(self.summary(), columns=columns, index_name="normalisation")
        }


def run(cal: Calibration, baseline: dict[int, StageResult], model_id: str) -> NormalisationsResult:
    table = compare(cal, baseline, model_id).reset_index()
    return NormalisationsResult(
        table=table.assign(key=table["normalisation"] + "/" + table["axis"]).set_index("key")
    )
