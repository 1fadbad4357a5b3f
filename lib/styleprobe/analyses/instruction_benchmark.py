"""Does an instruction move the projection? A paired instruction-following benchmark per axis.

Scenarios, each answered for the same questions as a matched control (paired per question and seed):
- system_positive / system_negative: the question under a style system prompt (instruction set B, whose
  wording the standard axes were not calibrated on) against the same question with no system prompt;
- increase / decrease: after a neutral first turn, the user asks for more of the positive (negative) pole
  together with a new question, against the same new question asked without the request.

shift = projection(scenario) - projection(control) on the scenario's axis (normalised, unclipped), signed so
that the expected direction is positive. A scenario **passes** when the mean signed shift over questions
(seed-averaged first) has a bootstrap 95 % CI above 0; the lenient rule, comparable to the original study's
single-conversation checks, only asks for a positive mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, run_stage, without_system
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, keeps_instruction
from styleprobe.protocol.spec import AxisSpec
from styleprobe.result import PaperTable, Result

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

SCENARIOS: dict[str, int] = {"system_positive": 1, "system_negative": -1, "increase": 1, "decrease": -1}
"""scenario -> expected direction on its axis (+1 towards the first-named pole)."""
STUDY_SUBSET = (
    ("warm_cold", "confident_cautious", "verbose_concise"),
    ("system_positive", "increase", "decrease"),
)
"""The original study's 3 axes x 3 scenarios, for a comparable "N/9"."""
SYSTEM_SET = "B"


def first_turn_items(
    specs: Mapping[str, AxisSpec], questions: Sequence[str], seeds: Sequence[int]
) -> list[Item]:
    """Per seed and question: the control (no system prompt) and the two system-prompt scenarios of each
    axis of `specs`."""
    items = []
    for s in seeds:
        for i, q in enumerate(questions):
            meta = {"seed": s, "q_index": i}
            items.append(Item(f"seed-{s}/control/{i:02d}", q, meta={**meta, "scenario": "control"}, seed=s))
            for name, spec in specs.items():
                for scenario, pole in (("system_positive", 1), ("system_negative", -1)):
                    items.append(
                        Item(
                            f"seed-{s}/{scenario}/{name}/{i:02d}",
                            q,
                            system=spec.instruction(pole, SYSTEM_SET),
                            meta={**meta, "scenario": scenario, "axis": name},
                            seed=s,
                        )
                    )
    return items


def second_turn_items(
    specs: Mapping[str, AxisSpec], first: StageResult, follow_ups: Sequence[str], seeds: Sequence[int]
) -> list[Item]:
    """Per seed and question: the first turn's control conversation continued by a new question, alone
    (control) and preceded by the "more positive" and "more negative" request of each axis of `specs`."""
    rec = first.records
    control = rec[rec["scenario"] == "control"].set_index(["seed", "q_index"])
    items = []
    for s in seeds:
        for i, follow in enumerate(follow_ups):
            row = control.loc[(s, i)]
            history = ((row["question"], row["response"]),)
            meta = {"seed": s, "q_index": i}
            items.append(
                Item(
                    f"seed-{s}/turn2-control/{i:02d}",
                    follow,
                    None,
                    history,
                    {**meta, "scenario": "control"},
                    s,
                )
            )
            for name, spec in specs.items():
                for scenario, nudge in zip(("increase", "decrease"), spec.nudges, strict=True):
                    items.append(
                        Item(
                            f"seed-{s}/{scenario}/{name}/{i:02d}",
                            f"{nudge} {follow}",
                            None,
                            history,
                            {**meta, "scenario": scenario, "axis": name},
                            s,
                        )
                    )
    return items


def paired_shifts(axes: AxisSet, results: Sequence[StageResult]) -> pd.DataFrame:
    """One row per (scenario, axis, seed, question): value, its control's value on the same axis and the
    signed shift. Each result holds one turn's scenarios with their own controls; empty answers are NaN."""
    frames = []
    for res in results:
        rec = res.records
        values = axes.project(res.states, clip=False)
        values[(rec["n_measured"] == 0).to_numpy()] = np.nan
        is_control = (rec["scenario"] == "control").to_numpy()
        controls = {
            (s, q): values[k]
            for k, (s, q) in enumerate(zip(rec["seed"], rec["q_index"], strict=True))
            if is_control[k]
        }
        rows = []
        for k, r in enumerate(rec.itertuples(index=False)):
            if is_control[k] or r.axis not in axes.names:
                continue
            j = axes.index(r.axis)
            value, base = values[k, j], controls[(r.seed, r.q_index)][j]
            direction = SCENARIOS[r.scenario]
            rows.append(
                {
                    "scenario": r.scenario,
                    "axis": r.axis,
                    "seed": r.seed,
                    "q_index": r.q_index,
                    "value": value,
                    "control": base,
                    "shift": direction * (value - base),
                }
            )
        frames.append(pd.DataFrame(rows))
    return pd.concat(frames, ignore_index=True)


def _passes(shift: np.ndarray, seed: int) -> tuple[float, float, float, bool, bool]:
    shift = shift[np.isfinite(shift)]
    if len(shift) < 2:
        return (
            float(np.mean(shift)) if len(shift) else np.nan,
            np.nan,
            np.nan,
            False,
            bool(np.mean(shift) > 0),
        )
    lo, hi = stats.bootstrap_ci(np.mean, shift, seed=seed)
    mean = float(np.mean(shift))
    return mean, lo, hi, lo > 0, mean > 0


def scenario_table(shifts: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per (axis, scenario): mean signed shift over questions (seed-averaged) with bootstrap 95 % CI, the
    strict and lenient pass, and the share of seeds that pass on their own (strict rule)."""
    rows = []
    for (axis, scenario), sub in shifts.groupby(["axis", "scenario"], sort=False):
        per_q = sub.groupby("q_index")["shift"].mean().to_numpy()
        mean, lo, hi, strict, lenient = _passes(per_q, seed)
        seed_pass = [_passes(g["shift"].to_numpy(), seed)[3] for _, g in sub.groupby("seed")]
        rows.append(
            {
                "axis": axis,
                "scenario": scenario,
                "shift": mean,
                "ci_low": lo,
                "ci_high": hi,
                "passed": strict,
                "passed_lenient": lenient,
                "seed_pass_rate": float(np.mean(seed_pass)),
                "n_questions": int(np.isfinite(per_q).sum()),
            }
        )
    return pd.DataFrame(rows)


def pass_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per axis: scenarios passed (strict and lenient) out of those run, and the study's N/9 subset
    summarised in `attrs` (study_passed, study_passed_lenient, study_total)."""
    out = table.groupby("axis", sort=False).agg(
        passed=("passed", "sum"), passed_lenient=("passed_lenient", "sum"), scenarios=("passed", "size")
    )
    out["pass_rate"] = out["passed"] / out["scenarios"]
    axes_, scenarios = STUDY_SUBSET
    subset = table[table["axis"].isin(axes_) & table["scenario"].isin(scenarios)]
    out.attrs.update(
        study_passed=int(subset["passed"].sum()),
        study_passed_lenient=int(subset["passed_lenient"].sum()),
        study_total=len(subset),
    )
    return out


def retest_icc(shifts: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per axis, ICC(2,1) across seeds of the scenario answers' projections (subjects: scenario x question,
    raters: seeds) with a bootstrap 95 % CI over subjects; NaN with fewer than 2 seeds or 3 subjects."""
    rows = []
    for axis, sub in shifts.groupby("axis", sort=False):
        matrix = sub.pivot_table(index=["scenario", "q_index"], columns="seed", values="value").dropna()
        row = {"axis": axis, "icc": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_subjects": len(matrix)}
        if matrix.shape[1] >= 2 and matrix.shape[0] >= 3 and np.ptp(matrix.to_numpy()) > 0:
            row["icc"], row["ci_low"], row["ci_high"] = stats.icc_with_ci(
                matrix.to_numpy(), n_boot, seed=seed
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("axis")


def answers(
    ws: Workspace,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
) -> list[StageResult]:
    """Both turns of the benchmark for every axis of the protocol, from the run store (generated the first
    time): turn 1 with the system-prompt scenarios read in `context` ("uninstructed": question + answer,
    like the axes), and turn 2, which has no system prompt."""
    handle, profile, specs = ws.model, ws.profile, ws.protocol.axes
    bank, n = ws.protocol.questions.baseline, profile.n_benchmark
    sampling = SamplingConfig(profile.baseline_tokens)
    first = first_turn_items(specs, bank[:n], seeds)
    stage = ws.runs.benchmark
    turn1 = run_stage(
        handle,
        stage(profile.name, seeds, "turn-1"),
        first,
        sampling,
        batch_size=batch_size,
        desc="benchmark turn 1",
    )
    if not keeps_instruction(context):
        turn1 = without_system(handle, first, turn1, stage(profile.name, seeds, f"turn-1-{context}"))
    second = second_turn_items(specs, turn1, bank[n : 2 * n], seeds)
    turn2 = run_stage(
        handle,
        stage(profile.name, seeds, "turn-2"),
        second,
        sampling,
        batch_size=batch_size,
        desc="benchmark turn 2",
    )
    return [turn1, turn2]


def shifts(
    ws: Workspace,
    axes: AxisSet,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """`paired_shifts` of the benchmark's answers (see `answers`) on `axes`."""
    return paired_shifts(axes, answers(ws, seeds=seeds, context=context, batch_size=batch_size))


def run(
    ws: Workspace,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
) -> BenchmarkResult:
    """The benchmark on the standard axes (instruction set A read in `context`): per scenario and axis the
    signed shift with its CI and pass, per axis the pass rates."""
    standard = calibrate(ws, instruction_set="A", context=context, batch_size=batch_size).axes
    table = scenario_table(shifts(ws, standard, seeds=seeds, context=context, batch_size=batch_size))
    rates = pass_rates(table)
    return BenchmarkResult(
        seeds=list(seeds),
        n_questions=ws.profile.n_benchmark,
        scenarios=table,
        pass_rates=rates,
        study_subset=dict(rates.attrs),
    )


@dataclass
class BenchmarkResult(Result):
    """Notebook 07: do a style system prompt and a mid-conversation request move the projection?"""

    name: ClassVar[str] = "benchmark"
    notebook: ClassVar[str] = "07_stability"

    seeds: list[int]
    n_questions: int  # questions per scenario
    scenarios: pd.DataFrame  # per (axis, scenario): shift, ci_low, ci_high, passed, passed_lenient, ...
    pass_rates: pd.DataFrame  # per axis: passed, passed_lenient, scenarios, pass_rate
    study_subset: dict  # the original study's N/9: study_passed, study_passed_lenient, study_total

    @property
    def names(self) -> list[str]:
        """The axes, in the protocol's order."""
        return list(dict.fromkeys(self.scenarios["axis"]))

    def paper(self) -> dict:
        study = self.study_subset
        return {
            "benchmark_questions": self.n_questions,
            "benchmark_seeds": len(self.seeds),
            "scenarios_passed": int(self.scenarios["passed"].sum()),
            "scenarios_passed_lenient": int(self.scenarios["passed_lenient"].sum()),
            "scenarios_total": len(self.scenarios),
            "study_passed": study["study_passed"],
            "study_passed_lenient": study["study_passed_lenient"],
            "study_total": study["study_total"],
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        shift = self.scenarios.pivot(index="axis", columns="scenario", values="shift")
        table = shift.reindex(index=self.names, columns=list(SCENARIOS)).join(
            self.pass_rates[["passed", "passed_lenient"]]
        )
        return {"benchmark_table": PaperTable(table, columns={"passed_lenient": "lenient"})}
