"""Does an instruction move answers towards the style it names? A paired instruction-following benchmark.

Scenarios, each answered for the same questions as a matched control (paired per question and seed):
- system_positive / system_negative: the question under a style system prompt (instruction set B, whose
  wording the standard axes were not calibrated on) against the same question with no system prompt;
- increase / decrease: after a neutral first turn, the user asks for more of the positive (negative) pole
  together with a new question, against the same new question asked without the request.

shift = projection(scenario) - projection(control) on the scenario's axis (normalised, unclipped), signed so
that the pole the scenario names is positive. Each scenario has an opposite (`OPPOSITE`): the same questions
under the instruction for the other pole (the system prompts pair up, and so do the two requests, which
follow the same first turn). Per question (seed-averaged): toward = the scenario's shift, away = the shift
towards the same pole under the opposite instruction, contrast = toward - away.

**Pass rule** (`scenario_p_value`, `holm_passes`): a scenario passes when its instruction moves answers
towards the named pole both more than the opposite instruction does (contrast > 0) and more than no
instruction does (toward > 0): one-sided paired t-tests over questions, the larger of the two p-values
(an intersection-union test, so the pair of conditions is tested at the level of each), Holm-adjusted over
every scenario x axis of the model at a family-wise ALPHA. Without the contrast, an instruction that moves
answers the same way as its opposite would pass. The lenient rule asks only that the two means point the
right way (no test).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import pingouin
import scipy.stats
from numpy.typing import ArrayLike

from styleprobe import stats
from styleprobe.engine.extraction import Aggregation, Reading
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, run_stage, without_system
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, keeps_instruction
from styleprobe.protocol.spec import AxisSpec
from styleprobe.protocol.validity import heldout_status, mark
from styleprobe.result import PaperTable, Result, axis_list

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

SCENARIOS: dict[str, int] = {"system_positive": 1, "system_negative": -1, "increase": 1, "decrease": -1}
"""scenario -> the pole it names on its axis (+1: the first-named pole)."""
OPPOSITE: dict[str, str] = {
    "system_positive": "system_negative",
    "system_negative": "system_positive",
    "increase": "decrease",
    "decrease": "increase",
}
"""scenario -> the scenario that asks for the other pole on the same questions."""
ALPHA = 0.05
"""Family-wise one-sided error rate of the pass rule over all scenarios x axes of one model."""
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
        values = axes.project(axes.states(res), clip=False)
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


def scenario_p_value(toward: ArrayLike, away: ArrayLike) -> float | np.ndarray:
    """One-sided p-value that an instruction moved answers towards the pole it names, per question along
    the last axis: toward = shift towards the named pole under the instruction, away = shift towards the
    same pole under the opposite instruction (both against the same control). The larger of the paired
    t-tests' p-values of contrast = toward - away > 0 and of toward > 0 (intersection-union test). Pairs
    with a NaN are dropped; fewer than 2 pairs give NaN, which never passes. Vectorised over leading axes."""
    toward, away = np.broadcast_arrays(np.asarray(toward, dtype=float), np.asarray(away, dtype=float))
    paired = np.isfinite(toward) & np.isfinite(away)
    tests = (np.where(paired, toward - away, np.nan), np.where(paired, toward, np.nan))
    with warnings.catch_warnings():  # fewer than 2 pairs or no spread: scipy warns and returns NaN or 0
        warnings.simplefilter("ignore")
        p = [
            scipy.stats.ttest_1samp(x, 0.0, axis=-1, nan_policy="omit", alternative="greater").pvalue
            for x in tests
        ]
    worst = np.maximum(*p)
    return float(worst) if np.ndim(worst) == 0 else worst


def scenario_passes(
    toward: ArrayLike, away: ArrayLike, alpha: float = ALPHA, n_tests: int = 1
) -> bool | np.ndarray:
    """The pass rule for one scenario among `n_tests` at family-wise level `alpha` (Bonferroni):
    `scenario_p_value` <= alpha / n_tests. Holm's first step is this test, so under the null of every
    scenario `holm_passes` passes something exactly when this passes one (the same family-wise rate)."""
    passed = np.asarray(scenario_p_value(toward, away)) <= alpha / n_tests
    return bool(passed) if passed.ndim == 0 else passed


def holm_passes(p_values: ArrayLike, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """(passed, Holm-adjusted p) of a model's scenario p-values at family-wise level `alpha`; a NaN p-value
    (too few answers) is no test: it never passes and does not count in the family."""
    passed, adjusted = pingouin.multicomp(np.asarray(p_values, dtype=float), alpha=alpha, method="holm")
    return np.asarray(passed, dtype=bool), np.asarray(adjusted, dtype=float)


def _mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its skewness-corrected 95 % interval (`stats.skewed_mean_ci`; NaN with fewer than 2 values):
    a few questions can move far more than the rest, and the t interval then covers too little."""
    return (float(np.mean(values)) if len(values) else np.nan), *stats.skewed_mean_ci(values)


def scenario_table(shifts: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per (axis, scenario), over the questions answered under both it and its opposite (each question
    seed-averaged first): shift = mean toward with a 95 % t interval (ci_low, ci_high), opposite_shift =
    mean away, contrast = mean(toward - away) with its 95 % t interval, p_value (`scenario_p_value`),
    p_holm and passed (`holm_passes` over all rows at `alpha`), passed_lenient (mean shift and mean
    contrast both above 0, no test) and n_questions."""
    per_q = shifts.groupby(["axis", "q_index", "scenario"], sort=False)["shift"].mean().unstack("scenario")
    per_q = per_q.reindex(columns=list(SCENARIOS))
    rows = []
    for axis in dict.fromkeys(shifts["axis"]):
        sub = per_q.loc[axis]
        for scenario in SCENARIOS:
            toward, away = sub[scenario].to_numpy(), -sub[OPPOSITE[scenario]].to_numpy()
            paired = np.isfinite(toward) & np.isfinite(away)
            toward, away = toward[paired], away[paired]
            shift, low, high = _mean_ci(toward)
            contrast, contrast_low, contrast_high = _mean_ci(toward - away)
            rows.append(
                {
                    "axis": axis,
                    "scenario": scenario,
                    "shift": shift,
                    "ci_low": low,
                    "ci_high": high,
                    "opposite_shift": _mean_ci(away)[0],
                    "contrast": contrast,
                    "contrast_low": contrast_low,
                    "contrast_high": contrast_high,
                    "p_value": scenario_p_value(toward, away),
                    "passed_lenient": bool(shift > 0 and contrast > 0),
                    "n_questions": len(toward),
                }
            )
    table = pd.DataFrame(rows)
    table["passed"], table["p_holm"] = holm_passes(table["p_value"], alpha)
    return table


def pass_rates(table: pd.DataFrame, validation: pd.Series) -> pd.DataFrame:
    """Per axis: scenarios passed (strict and lenient) out of those run, the pass rate and the axis's
    held-out `validation`; in `attrs` the original study's N/9 subset counted on its validated axes only
    (study_passed, study_passed_lenient, study_total)."""
    out = table.groupby("axis", sort=False).agg(
        passed=("passed", "sum"), passed_lenient=("passed_lenient", "sum"), scenarios=("passed", "size")
    )
    out["pass_rate"] = out["passed"] / out["scenarios"]
    out["validation"] = validation.reindex(out.index)
    axes_, scenarios = STUDY_SUBSET
    valid = [a for a in axes_ if validation.get(a) == "valid"]
    subset = table[table["axis"].isin(valid) & table["scenario"].isin(scenarios)]
    out.attrs.update(
        study_passed=int(subset["passed"].sum()),
        study_passed_lenient=int(subset["passed_lenient"].sum()),
        study_total=len(subset),
    )
    return out


def retest_icc(shifts: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Per axis, ICC(2,1) across seeds of the scenario answers' projections (subjects: scenario x question,
    raters: seeds) with its kurtosis-adjusted F-based `ci` interval (`stats.icc_with_ci`); NaN with fewer
    than 2 seeds or 3 subjects."""
    rows = []
    for axis, sub in shifts.groupby("axis", sort=False):
        matrix = sub.pivot_table(index=["scenario", "q_index"], columns="seed", values="value").dropna()
        row = {"axis": axis, "icc": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_subjects": len(matrix)}
        if matrix.shape[1] >= 2 and matrix.shape[0] >= 3 and np.ptp(matrix.to_numpy()) > 0:
            row["icc"], row["ci_low"], row["ci_high"] = stats.icc_with_ci(matrix.to_numpy(), ci=ci)
        rows.append(row)
    return pd.DataFrame(rows).set_index("axis")


def answers(
    ws: Workspace,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
    reading: Reading = Aggregation(),
) -> list[StageResult]:
    """Both turns of the benchmark for every axis of the protocol, from the run store (generated the first
    time): turn 1 with the system-prompt scenarios read in `context` ("uninstructed": question + answer,
    like the axes), and turn 2, which has no system prompt; both read with `reading` (an axis set's)."""
    handle, profile, specs = ws.model, ws.profile, ws.protocol.axes
    bank, n = ws.protocol.questions.baseline, profile.n_benchmark
    sampling = SamplingConfig(profile.baseline_tokens)
    first = first_turn_items(specs, bank[:n], seeds)
    stage = ws.runs.benchmark
    instructed = keeps_instruction(context)
    turn1 = run_stage(
        handle,
        stage(profile.name, seeds, "turn-1"),
        first,
        sampling,
        reading if instructed else Aggregation(),
        batch_size=batch_size,
        desc="benchmark turn 1",
    )
    if not instructed:
        again = stage(profile.name, seeds, f"turn-1-{context}")
        turn1 = without_system(handle, first, turn1, again, reading=reading)
    second = second_turn_items(specs, turn1, bank[n : 2 * n], seeds)
    turn2 = run_stage(
        handle,
        stage(profile.name, seeds, "turn-2"),
        second,
        sampling,
        reading,
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
    found = answers(ws, seeds=seeds, context=context, batch_size=batch_size, reading=axes.reading())
    return paired_shifts(axes, found)


def run(
    ws: Workspace,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    context: ReadingContext = DEFAULT_CONTEXT,
    batch_size: int | None = None,
) -> BenchmarkResult:
    """The benchmark on the standard axes (instruction set A read in `context`): per scenario and axis the
    shift, the contrast with the opposite instruction and the pass (`scenario_table`), per axis the pass
    rates and the standard axes' held-out validation (`validity.heldout_status`)."""
    cal = calibrate(ws, instruction_set="A", context=context, batch_size=batch_size)
    table = scenario_table(shifts(ws, cal.axes, seeds=seeds, context=context, batch_size=batch_size))
    validation = heldout_status(cal.evaluation)
    rates = pass_rates(table, validation)
    return BenchmarkResult(
        seeds=list(seeds),
        n_questions=ws.profile.n_benchmark,
        scenarios=table,
        pass_rates=rates,
        study_subset=dict(rates.attrs),
        validation=validation,
        alpha=ALPHA,
    )


@dataclass
class BenchmarkResult(Result):
    """Notebook 07: does a style system prompt or a mid-conversation request move answers towards the
    style it names, more than the opposite instruction does?"""

    name: ClassVar[str] = "benchmark"
    notebook: ClassVar[str] = "07_stability"

    seeds: list[int]
    n_questions: int  # questions per scenario
    scenarios: pd.DataFrame  # per (axis, scenario): see scenario_table
    pass_rates: pd.DataFrame  # per axis: passed, passed_lenient, scenarios, pass_rate, validation
    study_subset: dict  # the original study's N/9 on validated axes: study_passed, _lenient, study_total
    validation: pd.Series  # per axis: held-out status of the standard axis (`validity.heldout_status`)
    alpha: float  # family-wise level of the pass rule

    @property
    def names(self) -> list[str]:
        """The axes, in the protocol's order."""
        return list(dict.fromkeys(self.scenarios["axis"]))

    def validated(self) -> list[str]:
        """The axes whose standard axis passed held-out validation: the only ones counted."""
        return [n for n in self.names if self.validation.get(n) == "valid"]

    def counted(self) -> pd.DataFrame:
        """The scenario rows on validated axes: what the counts and sentences are about."""
        return self.scenarios[self.scenarios["axis"].isin(self.validated())]

    def rule(self) -> str:
        """The pass rule, as `scenario_table` applies it, with this run's parameters."""
        n_tests = int(self.scenarios["p_value"].notna().sum())
        return (
            "A scenario passes when its instruction moves the answers towards the pole it names both further "
            "than the opposite instruction does and further than no instruction does, each by a one-sided "
            f"paired t-test over the {self.n_questions} questions (averaged over {len(self.seeds)} seeds); "
            f"the larger of the two p-values is adjusted by Holm's method over the {n_tests} scenarios of "
            f"the model at a family-wise error rate of {self.alpha:g}."
        )

    def summary(self) -> str:
        """What the benchmark shows, counted on validated axes only (the same rows as `paper`)."""
        counted, validated = self.counted(), self.validated()
        left_out = [n for n in self.names if n not in validated]
        if not validated:
            return (
                "No axis passed held-out validation, so the benchmark supports no conclusion about "
                f"instruction following; its {len(self.scenarios)} scenarios are shown (marked), not counted."
            )
        text = (
            f"On the {len(validated)} validated axes, {int(counted['passed'].sum())} of {len(counted)} "
            f"scenarios pass ({int(counted['passed_lenient'].sum())} point the right way without the test)"
        )
        if left_out:
            text += f"; not counted, as they failed held-out validation: {axis_list(left_out)}"
        study = self.study_subset
        if study["study_total"]:
            text += (
                f". Of the original study's checks on validated axes, {study['study_passed']} of "
                f"{study['study_total']} pass ({study['study_passed_lenient']} without the test)"
            )
        return text + "."

    def paper(self) -> dict:
        study, counted = self.study_subset, self.counted()
        return {
            "benchmark_questions": self.n_questions,
            "benchmark_seeds": len(self.seeds),
            "benchmark_alpha": self.alpha,
            "benchmark_tests": int(self.scenarios["p_value"].notna().sum()),
            "benchmark_n_validated": len(self.validated()),
            "benchmark_not_validated": axis_list(n for n in self.names if n not in self.validated()),
            "scenarios_passed": int(counted["passed"].sum()),
            "scenarios_passed_lenient": int(counted["passed_lenient"].sum()),
            "scenarios_total": len(counted),
            "study_passed": study["study_passed"],
            "study_passed_lenient": study["study_passed_lenient"],
            "study_total": study["study_total"],
            "benchmark_rule": self.rule(),
            "benchmark_summary": self.summary(),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        wide = self.scenarios.pivot(index="axis", columns="scenario", values=["shift", "contrast"])
        table = wide["shift"].reindex(index=self.names, columns=list(SCENARIOS))
        table["system contrast"] = wide["contrast"]["system_positive"]
        table["request contrast"] = wide["contrast"]["increase"]
        table = table.join(self.pass_rates[["passed", "passed_lenient"]])
        valid = set(self.validated())
        table = table.rename(index={n: mark(n, n in valid) for n in table.index})
        return {"benchmark_table": PaperTable(table, columns={"passed_lenient": "lenient"})}
