"""Do the axes depend on the calibration data? Agreement across independent calibration sets, convergence
with the number of calibration questions, and robustness to the wording of the style instruction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.pipeline import Item, StageResult
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import POLES, fit_from_result, heldout_scores
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.spec import load_axes, load_questions


def set_cosines(axis_sets: Mapping[str, AxisSet]) -> pd.DataFrame:
    """Per axis (rows), the cosine between each pair of sets' axis vectors (columns "A~B", ...) and their
    mean. Every set must hold the same axes."""
    if len(axis_sets) < 2:
        raise ValueError("set_cosines needs at least two axis sets")
    first = next(iter(axis_sets.values()))
    names = first.names
    for label, axes in axis_sets.items():
        if axes.names != names or axes.hidden_size != first.hidden_size:
            raise ValueError(f"axis set {label!r} holds other axes or another hidden size than the first")
    out = pd.DataFrame(index=pd.Index(names, name="axis"))
    for a, b in combinations(axis_sets, 2):
        out[f"{a}~{b}"] = np.sum(axis_sets[a].vectors * axis_sets[b].vectors, axis=1)
    out["mean"] = out.mean(axis=1)
    return out


def projection_agreement(projections: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per axis, Pearson r between the projections of the same answers under each pair of sets (frames with
    one column per axis, rows aligned) and their mean: do different calibrations rank answers alike?"""
    labels = list(projections)
    names = list(projections[labels[0]].columns)
    out = pd.DataFrame(index=pd.Index(names, name="axis"))
    for a, b in combinations(labels, 2):
        col = []
        for name in names:
            x, y = projections[a][name].to_numpy(float), projections[b][name].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            varies = ok.sum() > 2 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0
            col.append(stats.pearson(x[ok], y[ok])[0] if varies else np.nan)
        out[f"{a}~{b}"] = col
    out["mean"] = out.mean(axis=1)
    return out


def convergence(
    result: StageResult,
    full: AxisSet,
    sizes: Sequence[int] = (5, 10, 15, 20, 30),
    *,
    n_repeats: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Axes refitted on random subsets of n calibration questions (the same subset for every axis, both poles
    of each question kept), per n in `sizes` below the number available, `n_repeats` times each, and the
    full set itself as the last size.

    Rows: n, repeat, axis, cosine to the `full` axis and held-out pairwise accuracy / d' on the evaluation
    split (which the subsets never touch). The largest n equals the full set, so its cosine is 1 by design."""
    rec = result.records
    cal = (rec["split"] == "calibration").to_numpy()
    available = np.unique(rec.loc[cal, "q_index"])
    if len(available) < 2:
        raise ValueError(f"convergence needs at least 2 calibration questions, got {len(available)}")
    sizes = sorted({n for n in sizes if 0 < n < len(available)} | {len(available)})
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for repeat in range(1 if n == len(available) else n_repeats):
            chosen = rng.choice(available, size=n, replace=False)
            keep = ~cal | np.isin(rec["q_index"].to_numpy(), chosen)
            axes, scores = fit_from_result(result.select(keep), full.model_id or "", layers=full.layers)
            cos = np.sum(axes.vectors * full.subset(axes.names).vectors, axis=1)
            for i, name in enumerate(axes.names):
                rows.append(
                    {
                        "n": n,
                        "repeat": repeat,
                        "axis": name,
                        "cosine": float(cos[i]),
                        "pairwise_accuracy": scores.loc[name, "pairwise_accuracy"],
                        "dprime": scores.loc[name, "dprime"],
                    }
                )
    return pd.DataFrame(rows)


def formulation_items(profile: Profile, axes: Sequence[str] | None = None) -> list[Item]:
    """Every axis x pole x evaluation question under each of the five prompt formulations of the data."""
    specs, bank = load_axes(), load_questions()
    items = []
    for name in axes or list(specs):
        spec = specs[name]
        for form, (positive, negative) in spec.formulations.items():
            for q_index, question in enumerate(bank.evaluation[name][: profile.n_evaluation]):
                for pole, pole_name in POLES.items():
                    items.append(
                        Item(
                            id=f"formulation/{form}/{name}/{pole_name}/{q_index:02d}",
                            question=question,
                            system=positive if pole == 1 else negative,
                            meta={
                                "formulation": form,
                                "axis": name,
                                "pole": pole,
                                "split": "evaluation",
                                "q_index": q_index,
                            },
                        )
                    )
    return items


def formulation_scores(axes: AxisSet, standard: StageResult, formulations: StageResult) -> pd.DataFrame:
    """Per formulation (plus "standard", the evaluation answers of the calibration instructions) and axis:
    held-out pairwise accuracy and d' of the standard axis between the two poles' answers, and the cosine
    between the formulation's own direction unit(mean(+) - mean(-)) and the standard axis."""
    parts = {"standard": standard.select((standard.records["split"] == "evaluation").to_numpy())}
    for form in dict.fromkeys(formulations.records["formulation"]):
        parts[form] = formulations.select((formulations.records["formulation"] == form).to_numpy())
    rows = []
    for form, part in parts.items():
        scores = heldout_scores(axes, part)
        rec, states = part.records, part.states
        for i, name in enumerate(axes.names):
            sel = (rec["axis"] == name).to_numpy() & (rec["n_measured"] > 0).to_numpy()
            pole = rec["pole"].to_numpy()
            direction = states[sel & (pole == 1)].mean(0) - states[sel & (pole == -1)].mean(0)
            norm = np.linalg.norm(direction)
            rows.append(
                {
                    "formulation": form,
                    "axis": name,
                    "pairwise_accuracy": scores.loc[name, "pairwise_accuracy"],
                    "dprime": scores.loc[name, "dprime"],
                    "cosine": float(direction @ axes.vectors[i] / norm) if norm > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)
