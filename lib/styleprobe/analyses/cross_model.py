"""Fingerprints across models (notebook 10): every model's baseline under one root beside the original
study's published baselines (`mood_axis/baselines/` of the protocol's data folder), and every model's
held-out accuracy.

The imported values are not on our scale: the study did not centre its projections (0 there is the raw
origin, not the calibration midpoint) and floored its scale at 0.1, so only their shapes compare with ours.

Dimensionality (PC1 share, participation ratio) comes in two conventions (`stats.SCALES`): the covariance
of the raw projections, the study's, which recomputes its published effective dimensionality from its files
(constant axes kept); and the correlation matrix (constant axes dropped), where each axis weighs the same.
The study's models are shown on the covariance only; ours on both, side by side.

Our models' means and accuracies on an axis that fails held-out validation for that model
(`validity.valid_axes`, with the axes notebook 08 classed dead when it ran) are marked (`validity.MARK`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.formats.mood_axis import load_baseline
from styleprobe.protocol import validity
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import BaselineResult
from styleprobe.protocol.spec import Protocol
from styleprobe.result import PaperTable, Result, ResultsError

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

STUDY_SCALE = "covariance"
"""The study's convention for PC1 share and effective dimensionality (`stats.spectrum_shares`)."""
DIMENSIONALITY_LABELS = {
    "pc1_share_covariance": "PC1 cov.",
    "participation_ratio_covariance": "PR cov.",
    "pc1_share_correlation": "PC1 corr.",
    "participation_ratio_correlation": "PR corr.",
}


def imported_baselines(protocol: Protocol) -> dict[str, pd.DataFrame]:
    """The study's per-question baseline projections (questions x axes), by `<model> (imported)`."""
    folder = protocol.file("mood_axis") / "baselines"
    records = [load_baseline(path) for path in sorted(folder.glob("*_baseline.json"))]
    return {f"{r.model} (imported)": r.values for r in records}


def model_spectrum(frame: pd.DataFrame, scale: str) -> np.ndarray | None:
    """`stats.spectrum_shares` of one model's questions x axes projections on `scale`, over the questions
    with a value on every axis it has; "correlation" first drops axes that never vary, "covariance" keeps
    them (as the study did). None when fewer than 2 axes or 3 questions are left, or nothing varies."""
    frame = frame.dropna(axis=1, how="all").dropna()
    if scale == "correlation":
        frame = frame.loc[:, frame.nunique() > 1]
    if frame.shape[1] < 2 or len(frame) < 3 or not (frame.nunique() > 1).any():
        return None
    return stats.spectrum_shares(frame.to_numpy(dtype=float), scale)


def spectra(per_question: dict[str, pd.DataFrame], scales: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Long table (model, scale, component, share) of `model_spectrum` for each model on each of its
    `scales` (by model name)."""
    rows = []
    for name, frame in per_question.items():
        for scale in scales[name]:
            shares = model_spectrum(frame, scale)
            if shares is not None:
                rows += [
                    {"model": name, "scale": scale, "component": k + 1, "share": v}
                    for k, v in enumerate(shares)
                ]
    return pd.DataFrame(rows, columns=["model", "scale", "component", "share"])


def dimensionality(shares: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Per model (rows in `models` order): PC1 share and participation ratio 1 / Σ share² on each scale,
    columns `<measure>_<scale>` (NaN where a model has no spectrum on that scale)."""
    out = pd.DataFrame(index=pd.Index(models, name="model"), columns=list(DIMENSIONALITY_LABELS), dtype=float)
    for (model, scale), group in shares.groupby(["model", "scale"]):
        s = group.sort_values("component")["share"].to_numpy()
        out.loc[model, [f"pc1_share_{scale}", f"participation_ratio_{scale}"]] = [s[0], 1 / np.sum(s**2)]
    return out


def _percent(value: float) -> float | int:
    return round(100 * value) if np.isfinite(value) else float("nan")


def _marked(frame: pd.DataFrame, valid: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """`frame` with each cell whose (row, column) is False in `valid` printed with `validity.MARK`."""
    out = frame.astype(object)
    for row in valid.index.intersection(frame.index):
        for col in valid.columns.intersection(frame.columns):
            if not valid.loc[row, col] and np.isfinite(frame.loc[row, col]):
                out.loc[row, col] = f"{frame.loc[row, col]:.{digits}f}{validity.MARK}"
    return out


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
    spectra: pd.DataFrame  # `spectra`: ours on both scales, the study's models on the covariance only
    dimensionality: pd.DataFrame  # `dimensionality`, by model
    accuracy: pd.DataFrame  # our model x axis (and their mean): held-out pairwise accuracy
    valid: pd.DataFrame  # our model x axis: passes held-out validation and is not dead (`validity`)

    def __post_init__(self) -> None:  # JSON has no NaN: a missing axis comes back as None
        self.means, self.accuracy = self.means.astype(float), self.accuracy.astype(float)
        self.dimensionality = self.dimensionality.astype(float)
        self.valid = self.valid.astype(bool)

    def paper(self) -> dict:
        dims = self.dimensionality
        imported = dims.drop(index=self.ours, errors="ignore")
        ours = dims.reindex(self.ours)
        out: dict = {"n_ours": len(self.ours), "n_imported": self.n_imported, "ours": ", ".join(self.ours)}
        pc1 = imported[f"pc1_share_{STUDY_SCALE}"]
        pr = imported[f"participation_ratio_{STUDY_SCALE}"]
        out |= {
            "imported_pc1_percent_min": _percent(pc1.min()),
            "imported_pc1_percent_max": _percent(pc1.max()),
            "imported_pc1_percent_median": _percent(pc1.median()),
            "imported_participation_ratio_min": pr.min(),
            "imported_participation_ratio_max": pr.max(),
        }
        for scale in stats.SCALES:
            pc1, pr = ours[f"pc1_share_{scale}"], ours[f"participation_ratio_{scale}"]
            out |= {
                f"ours_pc1_percent_{scale}_min": _percent(pc1.min()),
                f"ours_pc1_percent_{scale}_max": _percent(pc1.max()),
                f"ours_participation_ratio_{scale}_min": pr.min(),
                f"ours_participation_ratio_{scale}_max": pr.max(),
            }
        out["n_ours_without_valid_axis"] = int((~self.valid.any(axis=1)).sum())
        return out

    def paper_tables(self) -> dict[str, PaperTable]:
        first_pole = {n: n.split("_")[0] for n in self.means.columns}  # positive values lean towards it
        return {
            "cross_model_means": PaperTable(
                _marked(self.means, self.valid), columns=first_pole, index_name="model"
            ),
            "cross_model_dimensionality": PaperTable(
                self.dimensionality, columns=DIMENSIONALITY_LABELS, index_name="model"
            ),
            "cross_model_accuracy": PaperTable(
                _marked(self.accuracy, self.valid), columns=first_pole, index_name="model"
            ),
        }


def run(ws: Workspace, *, include_imported: bool = True) -> CrossModelResult:
    """Compare the baselines and calibrations of every model under the workspace's root, with the study's
    published baselines when `include_imported`."""
    names = ws.protocol.names
    per_question = {slug: r.per_question.astype(float) for slug, r in ws.every_model(BaselineResult).items()}
    ours = list(per_question)
    if not ours:
        raise ResultsError(f"no baseline results under {ws.results_dir}: run notebooks 01 and 02 first")
    scales = dict.fromkeys(ours, stats.SCALES)
    if include_imported:
        imported = imported_baselines(ws.protocol)
        per_question |= imported
        scales |= dict.fromkeys(imported, (STUDY_SCALE,))
    means = pd.DataFrame({name: frame.mean() for name, frame in per_question.items()}).T.reindex(
        columns=names
    )
    shares = spectra(per_question, scales)
    calibrations = ws.every_model(CalibrationResult)
    dead = {slug: r.dead_axes() for slug, r in ws.every_model(DeadZonesResult).items()}
    accuracy = pd.DataFrame({slug: r.evaluation["pairwise_accuracy"] for slug, r in calibrations.items()}).T
    accuracy = accuracy.reindex(columns=names)
    valid = pd.DataFrame(False, index=accuracy.index, columns=names)
    for slug, r in calibrations.items():
        valid.loc[slug, [a for a in validity.valid_axes(r.evaluation, dead.get(slug, ())) if a in names]] = (
            True
        )
    accuracy["mean"] = accuracy[names].mean(axis=1)
    return CrossModelResult(
        ours=ours,
        n_imported=len(per_question) - len(ours),
        means=means,
        spectra=shares,
        dimensionality=dimensionality(shares, list(per_question)),
        accuracy=accuracy,
        valid=valid,
    )
