"""The fingerprint: a model's default answers (no system prompt) to the baseline questions, projected on
its axes. The command line (`styleprobe fingerprint`) and notebook 02 both compute it here, and both save
it as a `BaselineResult`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, run_stage
from styleprobe.protocol.axes import AxisSet, axes_id
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.reading import default_thinking
from styleprobe.protocol.runs import Session
from styleprobe.result import Result


def stored_baseline_seeds(ws: Session, profile: Profile | None = None) -> tuple[int, ...] | None:
    """The seeds of the largest default baseline run already in the run store (None if there is none), so
    that a later reader reuses notebook 02's answers instead of generating new ones."""
    profile = profile or ws.profile
    runs = ws.runs.baseline_seeds(profile.name, default_thinking(ws.model, None))
    return max(runs, key=len) if runs else None


def baseline(
    ws: Session,
    *,
    seeds: tuple[int, ...] | None = None,
    aggregation: Aggregation = Aggregation(),
    sampling: SamplingConfig | None = None,
    batch_size: int | None = None,
    thinking: bool | None = None,
    system: str | None = None,
    profile: Profile | None = None,
    progress: bool = True,
) -> dict[int, StageResult]:
    """The model's default answers (no system prompt) to the baseline questions, once per seed.

    All seeds run as one stage so they share batches; an answer's sampling key depends only on its seed
    and question, so seed 0 gives the same answers whichever other seeds run beside it. With `system`, the
    answers are written under that system prompt (e.g. to check that `styleprobe compare` sees a style
    shift) and read without it, like calibration answers. `profile` replaces the workspace's."""
    handle, profile = ws.model, profile or ws.profile
    sampling = sampling or SamplingConfig(profile.baseline_tokens)
    seeds = tuple(seeds if seeds is not None else profile.seeds)
    thinking = default_thinking(handle, thinking)
    questions = ws.protocol.questions.baseline[: profile.n_baseline]
    items = [
        Item(f"seed-{s}/baseline/{i:02d}", q, system, meta={"q_index": i, "seed": s}, seed=s)
        for s in seeds
        for i, q in enumerate(questions)
    ]
    result = run_stage(
        handle,
        ws.runs.baseline(profile.name, seeds, thinking, system),
        items,
        sampling,
        aggregation,
        batch_size=batch_size,
        thinking=thinking,
        read_with_system=system is None,
        desc="baseline",
        progress=progress,
    )
    seed_col = result.records["seed"].to_numpy()
    return {s: result.select(seed_col == s) for s in seeds}


def project_results(axes: AxisSet, results: dict[int, StageResult], model_id: str) -> pd.DataFrame:
    """Long table of normalised projections: one row per (seed, question), one column per axis.
    Empty answers get NaN projections (kept, flagged, never averaged in). The last two columns name what
    was projected, so a saved table keeps its identity (`styleprobe compare` checks it): `model_id` (the
    model that answered; "" when not given) and `axes_id` (`styleprobe.protocol.axes.axes_id` of `axes`)."""
    identity = axes_id(axes)
    frames = []
    for seed, res in results.items():
        values = axes.project(res.states, model_id)
        values[(res.records["n_measured"] == 0).to_numpy()] = np.nan
        frame = pd.DataFrame(values, columns=axes.names)
        frame.insert(0, "seed", seed)
        frame.insert(1, "q_index", res.records["q_index"].to_numpy())
        frame["n_tokens"] = res.records["n_tokens"].to_numpy()
        frame["model_id"] = model_id if model_id is not None else ""
        frame["axes_id"] = identity
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fingerprint_table(projections: pd.DataFrame, axes: list[str], seed: int = 0) -> pd.DataFrame:
    """Per axis: mean over questions (seed-averaged), bootstrap 95 % CI over questions, std, clipped share."""
    per_question = projections.groupby("q_index")[axes].mean()
    rows = []
    for name in axes:
        v = per_question[name].dropna().to_numpy()
        lo, hi = stats.bootstrap_ci(np.mean, v, seed=seed) if len(v) > 1 else (np.nan, np.nan)
        rows.append(
            {
                "axis": name,
                "mean": float(np.mean(v)) if len(v) else np.nan,
                "ci_low": lo,
                "ci_high": hi,
                "std": float(np.std(v, ddof=1)) if len(v) > 1 else np.nan,
                "clipped": float(np.mean(np.abs(projections[name].dropna()) >= 1)),
                "n": len(v),
            }
        )
    return pd.DataFrame(rows).set_index("axis")


@dataclass
class BaselineResult(Result):
    """Notebook 02 and `styleprobe fingerprint`: the default style, its reliability and dimensionality."""

    name: ClassVar[str] = "baseline"
    notebook: ClassVar[str] = "02_baseline"
    needs: ClassVar[tuple[str, ...]] = ("calibration",)

    profile: str
    seeds: list[int]
    model_id: str
    axes_id: str  # `styleprobe compare` refuses fingerprints made with other axes
    fingerprint: pd.DataFrame  # per axis: mean, ci_low, ci_high, std, clipped, n
    icc: pd.DataFrame  # test-retest ICC(2,1) per axis over seeds
    behavioural_correlation: pd.DataFrame
    pc1_share: float
    participation_ratio: float
    eigenvalues: list[float]
    per_question: pd.DataFrame
    n_empty: int
