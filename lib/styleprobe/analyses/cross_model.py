"""Fingerprints across models (notebook 10): every model's baseline under one root beside the original
study's published baselines (`mood_axis/baselines/` of the protocol's data folder), and every model's
held-out accuracy.

The imported values are not on our scale: the study did not centre its projections (0 there is the raw
origin, not the calibration midpoint) and floored its scale at 0.1, so only their shapes compare with ours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe.formats.mood_axis import load_baseline
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import BaselineResult
from styleprobe.protocol.spec import Protocol
from styleprobe.result import PaperTable, Result, ResultsError

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace


def imported_baselines(protocol: Protocol) -> dict[str, pd.DataFrame]:
    """The study's per-question baseline projections (questions x axes), by `<model> (imported)`."""
    folder = protocol.file("mood_axis") / "baselines"
    records = [load_baseline(path) for path in sorted(folder.glob("*_baseline.json"))]
    return {f"{r.model} (imported)": r.values for r in records}


def spectra(per_question: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per model: the eigenvalues of the correlation matrix of its questions x axes projections as shares
    of their sum (model, component, share). Axes that never vary are dropped first; a model left with
    fewer than 2 axes or 3 questions has none."""
    rows = []
    for name, frame in per_question.items():
        varying = frame.loc[:, frame.nunique() > 1].dropna()
        if varying.shape[1] < 2 or len(varying) < 3:
            continue
        lam = np.clip(np.linalg.eigvalsh(np.corrcoef(varying.to_numpy(), rowvar=False))[::-1], 0, None)
        rows += [{"model": name, "component": k + 1, "share": v / lam.sum()} for k, v in enumerate(lam)]
    return pd.DataFrame(rows, columns=["model", "component", "share"])


@dataclass
class CrossModelResult(Result):
    """Notebook 10: mean baseline projection, style dimensionality and held-out accuracy of every model."""

    name: ClassVar[str] = "cross_model"
    notebook: ClassVar[str] = "10_cross_model"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "baseline")
    cross_model: ClassVar[bool] = True

    ours: list[str]  # our models with a baseline, by slug
    n_imported: int
    means: pd.DataFrame  # model x axis: mean baseline projection (imported rows on their uncentred scale)
    spectra: pd.DataFrame  # `spectra`
    pc1_share: pd.Series  # by model: the first component's share
    accuracy: pd.DataFrame  # our model x axis (and their mean): held-out pairwise accuracy

    def __post_init__(self) -> None:  # JSON has no NaN: a missing axis comes back as None
        self.means, self.accuracy = self.means.astype(float), self.accuracy.astype(float)

    def paper(self) -> dict:
        pc1 = self.pc1_share.reindex(list(self.means.index))
        return {
            "n_ours": len(self.ours),
            "n_imported": self.n_imported,
            "ours": ", ".join(self.ours),
            "pc1_percent_min": round(100 * pc1.min()),
            "pc1_percent_max": round(100 * pc1.max()),
            "pc1_percent_median": round(100 * pc1.median()),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        first_pole = {n: n.split("_")[0] for n in self.means.columns}  # positive values lean towards it
        pc1 = self.pc1_share.reindex(list(self.means.index)).rename("PC1")
        return {
            "cross_model_means": PaperTable(self.means.join(pc1), columns=first_pole, index_name="model"),
            "cross_model_accuracy": PaperTable(self.accuracy, columns=first_pole, index_name="model"),
        }


def run(ws: Workspace, *, include_imported: bool = True) -> CrossModelResult:
    """Compare the baselines and calibrations of every model under the workspace's root, with the study's
    published baselines when `include_imported`."""
    names = ws.protocol.names
    per_question = {slug: r.per_question.astype(float) for slug, r in ws.every_model(BaselineResult).items()}
    ours = list(per_question)
    if not ours:
        raise ResultsError(f"no baseline results under {ws.results_dir}: run notebooks 01 and 02 first")
    if include_imported:
        per_question |= imported_baselines(ws.protocol)
    means = pd.DataFrame({name: frame.mean() for name, frame in per_question.items()}).T.reindex(
        columns=names
    )
    shares = spectra(per_question)
    accuracy = pd.DataFrame(
        {slug: r.evaluation["pairwise_accuracy"] for slug, r in ws.every_model(CalibrationResult).items()}
    ).T.reindex(columns=names)
    accuracy["mean"] = accuracy.mean(axis=1)
    return CrossModelResult(
        ours=ours,
        n_imported=len(per_question) - len(ours),
        means=means,
        spectra=shares,
        pc1_share=shares[shares["component"] == 1].set_index("model")["share"].rename("pc1_share"),
        accuracy=accuracy,
    )
