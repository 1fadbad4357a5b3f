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

from collections.abc import Sequence

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.engine.pipeline import Item, StageResult
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.spec import load_axes

SCENARIOS: dict[str, int] = {"system_positive": 1, "system_negative": -1, "increase": 1, "decrease": -1}
"""scenario -> expected direction on its axis (+1 towards the first-named pole)."""
STUDY_SUBSET = (
    ("warm_cold", "confident_cautious", "verbose_concise"),
    ("system_positive", "increase", "decrease"),
)
"""The original study's 3 axes x 3 scenarios, for a comparable "N/9"."""
SYSTEM_SET = "B"


def first_turn_items(questions: Sequence[str], axes: Sequence[str], seeds: Sequence[int]) -> list[Item]:
    """Per seed and question: the control (no system prompt) and each axis's two system-prompt scenarios."""
    specs = load_axes()
    items = []
    for s in seeds:
        for i, q in enumerate(questions):
            meta = {"seed": s, "q_index": i}
            items.append(Item(f"seed-{s}/control/{i:02d}", q, meta={**meta, "scenario": "control"}, seed=s))
            for name in axes:
                for scenario, pole in (("system_positive", 1), ("system_negative", -1)):
                    items.append(
                        Item(
                            f"seed-{s}/{scenario}/{name}/{i:02d}",
                            q,
                            system=specs[name].instruction(pole, SYSTEM_SET),
                            meta={**meta, "scenario": scenario, "axis": name},
                            seed=s,
                        )
                    )
    return items


def second_turn_items(
    first: StageResult, follow_ups: Sequence[str], axes: Sequence[str], seeds: Sequence[int]
) -> list[Item]:
    """Per seed and question: the first turn's control conversation continued by a new question, alone
    (control) and preceded by each axis's "more positive" and "more negative" request."""
    specs = load_axes()
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
            for name in axes:
                for scenario, nudge in zip(("increase", "decrease"), specs[name].nudges, strict=True):
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
