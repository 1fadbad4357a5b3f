"""Notebook 05: a judge reads only the question and the answer text and rates every axis. How well do its
ratings follow the projections of the model's default answers (per axis, in both reading contexts, and
pooled over every model with a judge result), and does it tell apart the held-out calibration answers
written under opposite instructions?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.analyses.judge import stats as judge_stats
from styleprobe.analyses.judge.backends import make_judge
from styleprobe.analyses.judge.core import Judge, compare_pairs, evaluation_pairs, rate_responses
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.fingerprint import baseline, project_results
from styleprobe.protocol.reading import other_context
from styleprobe.result import PaperTable, Result

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace


def open_judge(
    ws: Workspace,
    backend: str = "local",
    model: str | None = None,
    *,
    scoring: str = "logprob",
    max_attempts: int = 3,
) -> Judge:
    """The judge, caching its answers in the model's run store: a local transformers model (`model`: a
    preset, hub id or directory; None: the model under study, scored with `scoring`) or an
    OpenAI-compatible endpoint (`backend="openai"`; `model` overrides STYLEPROBE_JUDGE_MODEL)."""
    options = {"protocol": ws.protocol, "cache_dir": ws.runs.judge_cache(), "max_attempts": max_attempts}
    if backend == "local":
        return make_judge("local", model or ws.model, scoring=scoring, **options)
    return make_judge(backend, model, **options)


def default_answers(
    ws: Workspace, *, seeds: Sequence[int], n_responses: int, batch_size: int | None = None
) -> StageResult:
    """The first `n_responses` non-empty default answers (no system prompt) of the first seed of notebook
    02's baseline run (`seeds` as there, so its answers are reused)."""
    first = baseline(ws, seeds=tuple(seeds), batch_size=batch_size)[seeds[0]]
    usable = ~first.records["empty"].astype(bool).to_numpy()
    return first.select(usable & (np.cumsum(usable) <= n_responses))


def run(
    ws: Workspace,
    reader: Judge,
    *,
    seeds: Sequence[int] = (0,),
    seed: int = 0,
    n_responses: int = 8,
    n_pairs: int | None = None,
    n_boot: int = 1000,
    batch_size: int | None = None,
    progress: bool = True,
) -> JudgeResult:
    """Rate `default_answers` with `reader` and correlate the ratings with their projections on the axes
    of notebook 01 (dead zones from notebook 08) and, when notebook 07 has stored them, on the axes of the
    other reading context; ask `reader` which held-out answer of each calibration pair (calibration `seed`,
    at most `n_pairs` per axis) is the positive pole's; pool the ratings with every other model's."""
    axes = ws.axes()
    answers = default_answers(ws, seeds=seeds, n_responses=n_responses, batch_size=batch_size)
    table = answers.records[["q_index", "question", "response", "n_tokens"]].reset_index(drop=True)
    rated = rate_responses(reader, table, progress=progress)

    def project(axis_set: AxisSet) -> pd.DataFrame:
        return project_results(axis_set, {seeds[0]: answers}, ws.model.model_id)

    dead = judge_stats.dead_axes(ws.load(DeadZonesResult), axes.names)
    long = judge_stats.long_ratings(rated, project(axes), axes.names, dead=dead)

    context = axes.meta["context"]
    other_file = ws.runs.axes(other_context(context))
    agreement_other = None
    if other_file.exists():
        other = AxisSet.load(other_file)
        names = [n for n in axes.names if n in other.names]
        other_long = judge_stats.long_ratings(rated, project(other.subset(names)), names, dead=dead)
        agreement_other = judge_stats.agreement(other_long, n_boot=n_boot)

    calibration = calibrate(ws, seed=seed, batch_size=batch_size, context=context, progress=progress)
    pairs = evaluation_pairs(calibration.result.records)
    if n_pairs is not None:
        pairs = pairs.groupby("axis", sort=False).head(n_pairs).reset_index(drop=True)
    compared = compare_pairs(reader, pairs, progress=progress)

    ratings = {ws.slug: long}
    ratings |= {s: pd.DataFrame(r.ratings) for s, r in ws.every_model(JudgeResult).items() if s != ws.slug}
    everything = pd.concat([f.assign(model=m) for m, f in ratings.items()], ignore_index=True)
    pair_columns = ["axis", "q_index", "positive_first", "choice", "correct", "status"]
    return JudgeResult(
        judge=reader.describe(),
        self_judged=reader.kind == "local" and reader.model == ws.model.model_id,
        profile=ws.profile.name,
        seed=seeds[0],
        n_responses=len(table),
        status=rated["status"].value_counts().to_dict(),
        dead_axes=dead,
        dead_source=DeadZonesResult.name,
        ratings=long.to_dict(orient="records"),
        agreement=judge_stats.agreement(long, n_boot=n_boot),
        axes_context=context,
        agreement_other_context=agreement_other,
        other_context=other_context(context),
        compliance=judge_stats.compliance(compared),
        compliance_pairs=compared[pair_columns].to_dict(orient="records"),
        pooled={**judge_stats.pooled(everything, n_boot=n_boot), "models": list(ratings)},
        leave_one_model_out=judge_stats.leave_one_model_out(everything, n_boot=n_boot),
    )


def _number(value: float | None) -> float:
    """A saved NaN reads back as None."""
    return np.nan if value is None else float(value)


@dataclass
class JudgeResult(Result):
    """Notebook 05: the judge's ratings of the default answers against their projections, its pairwise
    compliance check, and the agreement pooled over models."""

    name: ClassVar[str] = "judge"
    notebook: ClassVar[str] = "05_judge"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "baseline", "context_ablation", "dead_zones")

    judge: dict  # Judge.describe(): kind, model, settings
    self_judged: bool  # the model under study judged its own answers
    profile: str
    seed: int  # the baseline seed whose answers were rated
    n_responses: int
    status: dict  # judgements by status (ok, partial, malformed, error, skipped)
    dead_axes: dict  # axis -> dead zone (notebook 08)
    dead_source: str
    ratings: list  # one record per (answer, axis): q_index, axis, rating, projection, clipped, dead
    agreement: pd.DataFrame  # per axis: n, rho, p, ci_low, ci_high, n_missing, n_clipped, dead, ...
    axes_context: str
    agreement_other_context: pd.DataFrame | None  # the same on the other context's axes (None: not stored)
    other_context: str
    compliance: pd.DataFrame  # per axis and "all": n, n_missing, accuracy, ci_low, ci_high, p, chose_first
    compliance_pairs: list  # one record per held-out pair: axis, q_index, positive_first, choice, ...
    pooled: dict  # n_pairs, n_answers, rho, p, ci_low, ci_high, models
    leave_one_model_out: pd.DataFrame

    def paper(self) -> dict[str, Any]:
        overall = self.compliance.loc["all"]
        return {
            "judge": str(self.judge["model"]),
            "judge_kind": self.judge["kind"],
            "self_judged": self.self_judged,
            "n_responses": self.n_responses,
            "mean_rho": self.agreement["rho"].astype(float).mean(),
            "pooled": {
                **{k: _number(self.pooled[k]) for k in ("rho", "ci_low", "ci_high")},
                "p": f"{_number(self.pooled['p']):.2g}",
                "n_pairs": int(self.pooled["n_pairs"]),
            },
            "compliance": {
                **{k: _number(overall[k]) for k in ("accuracy", "ci_low", "ci_high")},
                "n": int(overall["n"]),
            },
            "chose_first": _number(overall["chose_first"]),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        pairs = self.compliance.drop(index="all")[["accuracy", "n"]].add_prefix("pairs ")
        return {
            "judge_table": PaperTable(
                self.agreement[["rho", "ci_low", "ci_high", "n"]].join(pairs),
                columns={"rho": "Spearman rho", "ci_low": "low", "ci_high": "high", "n": "answers"},
            )
        }
