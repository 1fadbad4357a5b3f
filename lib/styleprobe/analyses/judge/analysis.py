"""Notebook 05: a judge reads only the question and the answer text and rates every axis. How well do its
ratings follow the projections of the model's default answers (per axis, in both reading contexts, and
pooled over every model with a judge result), and does it tell apart the held-out calibration answers
written under opposite instructions, shown in both orders?

Only axes that pass held-out validation (`styleprobe.protocol.validity`, and not a dead zone) carry a
conclusion: the others are marked in every table and left out of the mean, the agreement rule, the pooled
correlation and the generated sentences. The compliance check reads texts, not axes, so it pools every axis;
it is invalid when the judge answers by position (`judge.stats.answers_by_position`)."""

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
from styleprobe.engine.extraction import Aggregation, Reading
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.axes import AxisSet, readings_for
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.fingerprint import baseline, project_results
from styleprobe.protocol.reading import other_context
from styleprobe.protocol.validity import heldout_status, mark
from styleprobe.result import PaperTable, Result, axis_label, axis_list

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
    ws: Workspace,
    *,
    seeds: Sequence[int],
    n_responses: int,
    batch_size: int | None = None,
    aggregation: Reading = Aggregation(),
) -> StageResult:
    """The first `n_responses` non-empty default answers (no system prompt) of the first seed of notebook
    02's baseline run (`seeds` as there, so its answers are reused), read with `aggregation` (the axes')."""
    first = baseline(ws, seeds=tuple(seeds), batch_size=batch_size, aggregation=aggregation)[seeds[0]]
    usable = ~first.records["empty"].astype(bool).to_numpy()
    return first.select(usable & (np.cumsum(usable) <= n_responses))


def axis_validation(axis_set: AxisSet, dead: dict[str, bool]) -> dict[str, str]:
    """Per axis of `axis_set`: its held-out validation status from its own calibration statistics
    (`validity.heldout_status`: "valid", "chance" or "weak"), or "dead" for a dead zone of notebook 08."""
    evaluation = pd.DataFrame.from_dict(axis_set.calibration, orient="index")
    evaluation = evaluation.reindex(index=axis_set.names, columns=["pairwise_accuracy", "accuracy_ci_low"])
    status = heldout_status(evaluation)
    return {name: "dead" if dead.get(name) else status[name] for name in axis_set.names}


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
    of notebook 01 (validation from their calibration, dead zones from notebook 08) and, when notebook 07 has
    stored them, on the axes of the other reading context; ask `reader` which held-out answer of each
    calibration pair (calibration `seed`, at most `n_pairs` per axis, each shown in both orders) is the
    positive pole's; pool the ratings of the valid axes with every other model's."""
    axes = ws.axes()
    context = axes.meta["context"]
    other_file = ws.runs.axes(other_context(context))
    other = None
    if other_file.exists():
        other = AxisSet.load(other_file)
        other = other.subset([n for n in axes.names if n in other.names])
    reading = readings_for(axes, other) if other is not None else axes.reading()
    answers = default_answers(
        ws, seeds=seeds, n_responses=n_responses, batch_size=batch_size, aggregation=reading
    )
    table = answers.records[["q_index", "question", "response", "n_tokens"]].reset_index(drop=True)
    rated = rate_responses(reader, table, progress=progress)

    def project(axis_set: AxisSet) -> pd.DataFrame:
        return project_results(axis_set, {seeds[0]: answers}, ws.model.model_id)

    def long(axis_set: AxisSet, validation: dict[str, str]) -> pd.DataFrame:
        valid = {name: status == "valid" for name, status in validation.items()}
        projections = project(axis_set)
        return judge_stats.long_ratings(
            rated, projections, axis_set.names, dead=dead, valid=valid, clips=axis_set.clips
        )

    dead = judge_stats.dead_axes(ws.load(DeadZonesResult), axes.names)
    validation = axis_validation(axes, dead)
    ratings_long = long(axes, validation)

    agreement_other = None
    if other is not None:
        agreement_other = judge_stats.agreement(long(other, axis_validation(other, dead)))

    calibration = calibrate(ws, seed=seed, batch_size=batch_size, context=context, progress=progress)
    pairs = evaluation_pairs(calibration.result.records)
    if n_pairs is not None:
        pairs = pairs.groupby("axis", sort=False).head(n_pairs).reset_index(drop=True)
    compared = compare_pairs(reader, pairs, progress=progress)

    ratings = {ws.slug: ratings_long}
    ratings |= {s: pd.DataFrame(r.ratings) for s, r in ws.every_model(JudgeResult).items() if s != ws.slug}
    everything = pd.concat([f.assign(model=m) for m, f in ratings.items()], ignore_index=True)
    pair_columns = ["axis", "q_index", "positive_first", "choice", "chose_first", "correct", "status"]
    return JudgeResult(
        judge=reader.describe(),
        self_judged=reader.kind == "local" and reader.model == ws.model.model_id,
        profile=ws.profile.name,
        seed=seeds[0],
        n_responses=len(table),
        status=rated["status"].value_counts().to_dict(),
        dead_axes=dead,
        dead_source=DeadZonesResult.name,
        validation=validation,
        ratings=ratings_long.to_dict(orient="records"),
        agreement=judge_stats.agreement(ratings_long),
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


def agreement_summary(agreement: pd.DataFrame) -> dict[str, Any]:
    """What the paper says about the per-axis agreement, from the valid axes of an `agreement` table only:
    how many axes are valid and have a defined rho, which are undefined and why, the mean rho
    (`judge.stats.mean_agreement`: none over fewer than MIN_DEFINED_AXES), the axes where the ratings follow
    the projections (the table's `agrees`, `judge.stats.agreeing`), and the sentence saying all of it."""
    valid = agreement[agreement["valid"].astype(bool)]
    defined = valid[valid["undefined"] == ""]
    undefined = valid[valid["undefined"] != ""]
    agrees = valid.index[valid["agrees"].astype(bool)]
    summary = {
        "n_axes": len(agreement),
        "n_valid_axes": len(valid),
        "n_defined_axes": len(defined),
        "min_defined_axes": judge_stats.MIN_DEFINED_AXES,
        "mean_rho": judge_stats.mean_agreement(valid["rho"].astype(float)),
        "n_agreeing": len(agrees),
        "agreeing_axes": axis_list(agrees),
    }
    if valid.empty:
        text = (
            f"None of the {len(agreement)} axes passed held-out validation, so the judge's ratings are not "
            "compared with any projection."
        )
    else:
        scope = (
            f"All {len(agreement)} axes"
            if len(valid) == len(agreement)
            else f"{len(valid)} of the {len(agreement)} axes"
        )
        text = (
            f"{scope} passed held-out validation; Spearman's rho between rating and projection is defined "
            f"on {len(defined)} of them"
        )
        if np.isfinite(summary["mean_rho"]):
            text += f"; their mean is {summary['mean_rho']:.2f}"
        else:
            text += f", fewer than {judge_stats.MIN_DEFINED_AXES}, so no mean is reported"
        if len(undefined):
            reasons = "; ".join(f"{axis_label(a)}: {r}" for a, r in undefined["undefined"].items())
            text += f" (undefined on {reasons})"
        text += "."
        if len(defined):
            family = f"{len(defined)} axis" if len(defined) == 1 else f"{len(defined)} axes"
            text += (
                f" The ratings follow the projections (interval of rho above 0, family-wise level "
                f"{judge_stats.ALPHA:.0%} with Bonferroni over the {family} with a defined rho) on "
                f"{axis_list(agrees) if len(agrees) else 'none of them'}."
            )
    return summary | {"agreement_text": text}


def pooled_summary(pooled: dict) -> dict[str, Any]:
    """What the paper says about the correlation pooled over models (`judge.stats.pooled`): its numbers and
    the sentence."""
    numbers = {k: _number(pooled[k]) for k in ("rho", "ci_low", "ci_high", "p_undefined")}
    numbers |= {"n_pairs": int(pooled["n_pairs"]), "n_answers": int(pooled["n_answers"])}
    models = len(pooled["models"])
    scope = (
        f"Pooled over the validated axes of {models} model{'s' if models > 1 else ''} "
        f"({numbers['n_pairs']} rated answer-axis pairs from {numbers['n_answers']} answers)"
    )
    if not numbers["n_pairs"]:
        text = "No validated axis has a rated answer, so no correlation is pooled."
    elif not np.isfinite(numbers["rho"]):
        text = f"{scope}, Spearman's rho is undefined ({pooled['undefined']})."
    elif numbers["n_answers"] < judge_stats.MIN_ANSWERS:
        text = f"{scope}, Spearman's rho is {numbers['rho']:.2f}, with no interval over so few answers."
    elif not np.isfinite(numbers["ci_low"]):
        text = (
            f"{scope}, Spearman's rho is {numbers['rho']:.2f}; no bootstrap interval can be computed "
            f"({numbers['p_undefined']:.1%} of resamples have constant ratings or projections, where rho is "
            "undefined)."
        )
    else:
        text = (
            f"{scope}, Spearman's rho is {numbers['rho']:.2f} (95 % CI {numbers['ci_low']:.2f} to "
            f"{numbers['ci_high']:.2f}, a bootstrap over whole answers; {numbers['p_undefined']:.1%} of "
            "resamples have constant ratings or projections, where rho is undefined, and count as no value)."
        )
    return {"pooled": numbers, "pooled_text": text}


def compliance_summary(compliance: pd.DataFrame) -> dict[str, Any]:
    """What the paper says about the pairwise compliance check, from the "all" row of a `compliance` table:
    its numbers, whether the check is valid (the judge does not answer by position) and the sentence."""
    row = compliance.loc["all"]
    by_position = bool(row["by_position"])
    first, second = int(row["first_both"]), int(row["second_both"])
    position = f"exact McNemar test p = {_number(row['position_p']):.2g}"
    summary = {
        "compliance": {
            **{k: _number(row[k]) for k in ("accuracy", "ci_low", "ci_high", "p")},
            "n": int(row["n_consistent"]),
            "n_pairs": int(row["n_pairs"]),
            "valid": not by_position and int(row["n_pairs"]) > 0,
        },
        "chose_first": _number(row["chose_first"]),
        "position": {"first_both": first, "second_both": second, "p": _number(row["position_p"])},
    }
    shown = f"Shown each of {int(row['n_pairs'])} held-out pairs in both orders, the judge"
    if not int(row["n_pairs"]):
        text = "No held-out pair was answered in both orders: there is no compliance check."
    elif by_position:
        text = (
            f"{shown} picked the first-shown answer in both orders on {first} pairs and the second-shown in "
            f"both on {second} ({position}): it answers by position, so its compliance check is invalid."
        )
    else:
        text = (
            f"{shown} gave the same answer in both orders on {int(row['n_consistent'])} and picked the one "
            f"written under the positive instruction on a share of {_number(row['accuracy']):.2f} of those "
            f"(Wilson 95 % CI {_number(row['ci_low']):.2f} to {_number(row['ci_high']):.2f}); it does not "
            f"answer by position (first-shown in both orders on {first} pairs, second-shown on {second}, "
            f"{position})."
        )
    return summary | {"compliance_text": text}


@dataclass
class JudgeResult(Result):
    """Notebook 05: the judge's ratings of the default answers against their projections, its pairwise
    compliance check in both orders, and the agreement pooled over models."""

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
    validation: dict  # axis -> "valid", "chance", "weak" (held-out validation) or "dead"
    ratings: list  # one record per (answer, axis): q_index, axis, rating, projection, clipped, dead, valid
    agreement: pd.DataFrame  # per axis: n, rho, p, ci_low, ci_high, undefined, ..., valid, agrees
    axes_context: str
    agreement_other_context: pd.DataFrame | None  # the same on the other context's axes (None: not stored)
    other_context: str
    compliance: pd.DataFrame  # per axis and "all": see judge.stats.compliance
    compliance_pairs: list  # one record per showing: axis, q_index, positive_first, choice, chose_first, ...
    pooled: dict  # n_pairs, n_answers, rho, undefined, ci_low, ci_high, p_undefined, models (valid axes)
    leave_one_model_out: pd.DataFrame

    def paper(self) -> dict[str, Any]:
        return {
            "judge": str(self.judge["model"]),
            "judge_kind": self.judge["kind"],
            "self_judged": self.self_judged,
            "n_responses": self.n_responses,
            **agreement_summary(self.agreement),
            **pooled_summary(self.pooled),
            **compliance_summary(self.compliance),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        table = self.agreement[["rho", "ci_low", "ci_high", "n", "undefined"]]
        pairs = self.compliance.drop(index="all")[["accuracy", "n_consistent", "first_both"]]
        table = table.join(pairs.add_prefix("pairs "))
        table.index = [mark(name, bool(valid)) for name, valid in self.agreement["valid"].items()]
        columns = {"rho": "Spearman rho", "ci_low": "low", "ci_high": "high", "n": "answers"}
        columns |= {"undefined": "rho undefined", "pairs n_consistent": "pairs same"}
        columns |= {"pairs first_both": "first both"}
        return {"judge_table": PaperTable(table.rename_axis("axis"), columns=columns)}
