"""The README's Results section, written from the committed results so that its numbers and sentences are
those of a run: `python -m styleprobe.report.readme` rewrites the block between BEGIN and END in README.md
(`make reproduce PROFILE=paper` does it after the notebooks), `--check` fails when the block is out of date
(a test runs it), and `--output FILE` writes the block of another root's results to a file of its own
(`make reproduce` does that for its `quick` run, which leaves the README alone). Every sentence that
concludes anything about an axis uses the validation predicate of the tables (`validity`), so an axis that
failed held-out validation is shown, marked, and never interpreted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from styleprobe.analyses.base_vs_instruct import BaseVsInstructResult
from styleprobe.analyses.controls import CONTROL_NAMES, ControlsResult
from styleprobe.analyses.statistics_check import StatisticsCheckResult
from styleprobe.engine.models import model_slug
from styleprobe.engine.store import atomic_write_text
from styleprobe.errors import UsageError
from styleprobe.paths import REPO_ROOT, folders
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import POLES, SPREADS, BaselineResult
from styleprobe.protocol.validity import MARK, heldout_status, mark, valid_axes
from styleprobe.report.paper import CROSS_MODEL, MAIN_MODEL
from styleprobe.report.results import all_results, load_results
from styleprobe.result import axis_label, axis_list

BEGIN = "<!-- results: written by `python -m styleprobe.report.readme` from results/; do not edit -->"
END = "<!-- end of results -->"


def _ci(mean: float, low: float, high: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _count(n: int, total: int) -> str:
    return f"{n} of {total} axes"


UNIT_WORDS = {
    POLES: "half the held-out pole separation",
    SPREADS: "within-pole standard deviations",
    None: "the axes' normalised unit, recorded before units were chosen per axis",
}
"""How the Results block names each unit a position can be in (`fingerprint.position_units`)."""


def _units(baseline: BaselineResult) -> dict[str, str | None]:
    """Per axis, the unit of its position (None for results written before the unit was recorded)."""
    table = baseline.fingerprint
    return {n: (table.loc[n, "unit"] if "unit" in table else None) for n in table.index}


def axes_table(
    calibration: CalibrationResult, baseline: BaselineResult | None, controls: ControlsResult | None = None
) -> str:
    """Per axis: held-out accuracy with its interval, validation status, the default position in its unit
    (`fingerprint.position_units`) and, when notebook 13 ran, the gain over the best lexical control with
    its interval and the axis's class."""
    valid = set(calibration.validated())
    units = _units(baseline) if baseline is not None else {}
    statuses = heldout_status(calibration.evaluation)  # today's rule, also for results saved before it
    header = "| axis | held-out accuracy [95 % CI] | d′ | validation | default position [95 % CI] (unit) |"
    rows = [
        header + (" gain over words and length [95 % CI] | beyond words |" if controls is not None else "")
    ]
    rows.append("| --- " * (5 if controls is None else 7) + "|")
    for name, ev in calibration.evaluation.iterrows():
        accuracy = _ci(ev["pairwise_accuracy"], ev["accuracy_ci_low"], ev["accuracy_ci_high"])
        position = "not run"
        if baseline is not None and name in baseline.fingerprint.index:
            fp = baseline.fingerprint.loc[name]
            unit = units[name] or "normalised"
            position = f"{_ci(fp['mean'], fp['ci_low'], fp['ci_high'], digits=1)} ({unit})"
        status = statuses[name]
        cells = [mark(axis_label(name), name in valid), accuracy, f"{ev['dprime']:.2f}", status, position]
        if controls is not None:
            cells += _control_cells(controls, name)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _control_cells(controls: ControlsResult, name: str) -> list[str]:
    """The gain over the best lexical control [interval] (which control) and whether the axis goes beyond
    it (`ControlsResult.beyond`: validated, and the gain's interval above 0)."""
    if name not in controls.table.index:
        return ["not run", ""]
    row = controls.table.loc[name]
    gain = _ci(row["gain"], row["gain_ci_low"], row["gain_ci_high"])
    best = CONTROL_NAMES.get(row["best_control"], row["best_control"])
    return [f"{gain} ({best})", "yes" if name in controls.beyond() else "no"]


def controls_sentence(controls: ControlsResult) -> str:
    """How many axes go beyond their lexical control (the predicate of the table's last column); an axis
    that failed validation is counted in neither."""
    beyond, valid, n = controls.beyond(), controls.validated(), len(controls.table)
    text = (
        f"**{_count(len(beyond), n)} go beyond their lexical control** (notebook 13: validated, and held-out"
        " accuracy above that of the best of a bag-of-words classifier of the answer text, the same estimator"
        " on the embedding output and the token count, the 95 % interval of the difference above 0)"
    )
    if not valid:
        return text + ": no axis passes validation, so none is compared with its words."
    if beyond:
        text += f": {axis_list(beyond)}"
    lexical = [n for n in controls.lexical() if n in valid]
    if lexical:
        text += f"{';' if beyond else ':'} the validated {axis_list(lexical)} do no better than"
        text += " their words and length"
    return text + "."


def models_table(results_dir: Path) -> str | None:
    """Per model with held-out validation results: the answers per pole behind them, how many axes validate
    (`CalibrationResult.validated`) and, where notebook 13 ran, how many go beyond the lexical control
    (`ControlsResult.beyond`). None when no model has them."""
    rows = []
    for slug, data in all_results(results_dir).items():
        if "calibration" not in data:
            continue
        calibration = CalibrationResult.from_dict(data["calibration"])
        settings, n = calibration.settings, len(calibration.evaluation)
        answers = f"{settings['n_calibration']} + {settings['n_evaluation']}"
        beyond = "not run"
        if "controls" in data:
            beyond = _count(len(ControlsResult.from_dict(data["controls"]).beyond()), n)
        valid = _count(len(calibration.validated()), n)
        rows.append(f"| {slug} | `{calibration.profile}` | {answers} | {valid} | {beyond} |")
    if not rows:
        return None
    header = (
        "| model | profile | answers per pole (calibration + held-out) | validated | beyond words and length"
    )
    header += " |"

    return "\n".join([header, "| --- | --- | --- | --- | --- |", *rows])


def headline(calibration: CalibrationResult, baseline: BaselineResult | None) -> str:
    """What the main model's run shows, in words computed from the same predicate as the table."""
    settings, n = calibration.settings, len(calibration.evaluation)
    valid = calibration.validated()
    name = settings.get("model_name", calibration.model_id)
    text = (
        f"**{name}**, `{calibration.profile}` profile ({settings['n_calibration']} calibration and "
        f"{settings['n_evaluation']} held-out questions per axis and pole): "
        f"**{_count(len(valid), n)} pass held-out validation**"
    )
    if not valid:
        text += ". This model shows no reliable style axis, so nothing is concluded from its fingerprint"
        if baseline is None:
            return text + "."
        units = sorted({UNIT_WORDS[u] for u in _units(baseline).values()})
        return text + f"; its positions are shown for completeness, in {' and '.join(units)}."
    text += f" ({axis_list(valid)})."
    if baseline is not None:
        leans = baseline.leaning()
        text += (
            " By default it leans towards " + ", ".join(leans.values()) + " (95 % interval excluding 0)."
            if leans
            else " On none of them does the default position's 95 % interval exclude 0."
        )
    return text


def base_sentence(pair: BaseVsInstructResult) -> str:
    valid = valid_axes(pair.evaluation["base"])
    n = len(pair.evaluation["base"])
    text = f"The base model `{pair.base_slug}` (notebook 03) passes validation on {_count(len(valid), n)}"
    text += f" ({axis_list(valid)})." if valid else "."
    both = pair.validated
    text += (
        f" Axes validated in both models: {axis_list(both)}."
        if both
        else " No axis is validated in both, so no conclusion on what instruction tuning changed is drawn."
    )
    return text + " " + pair.pair_caveat()


def statistics_sentence(check: StatisticsCheckResult) -> str:
    table, failing = check.table, check.failing
    text = (
        f"Notebook 12 measures by simulation, at the sample sizes the profiles use, the coverage of every "
        f"interval and the false-positive rate of every pass/flag rule: {len(table)} checks, "
        f"{check.n_sims} simulations each; "
    )
    if failing.empty:
        return text + "every bound holds."
    unstated = check.unstated
    command = failing["n"].str.extract(r"\(([^)]*)\)$", expand=False).fillna("")  # e.g. "CLI fingerprint"
    places = (
        failing["condition"] + " (" + failing["profile"] + command.where(command == "", ", " + command) + ")"
    )
    grouped = places.groupby(failing["check"], sort=False).apply(lambda c: "; ".join(dict.fromkeys(c)))
    where = ". ".join(f"{name}: {conditions}" for name, conditions in grouped.items())
    text += f"{len(failing)} miss their bound, under conditions where no method tried holds. {where}."
    if len(unstated):
        text += f" {len(unstated)} of them without a stated reason."
    return text + " Why, per case: docs/method.md (Statistics) and the paper's method section."


def render(results_dir: Path, main_model: str = MAIN_MODEL) -> str:
    """The Results block for `main_model` from the results under `results_dir`."""
    data = load_results(main_model, results_dir)
    if "calibration" not in data:
        raise UsageError(f"no calibration results for {main_model} under {results_dir}: run notebook 01")
    calibration = CalibrationResult.from_dict(data["calibration"])
    baseline = BaselineResult.from_dict(data["baseline"]) if "baseline" in data else None
    controls = ControlsResult.from_dict(data["controls"]) if "controls" in data else None
    parts = [headline(calibration, baseline)]
    if controls is not None:
        parts.append(controls_sentence(controls))
    parts.append(axes_table(calibration, baseline, controls))
    parts.append(
        f"{MARK} failed held-out validation: shown, not interpreted. A position is in pole units (±1: where"
        " answers under each instruction land) only on a validated axis whose scale is not the floor;"
        " elsewhere it is in within-pole standard deviations."
    )
    models = models_table(results_dir)
    if models is not None:
        parts.append("Every model run:\n\n" + models)
    if "base_vs_instruct" in data:
        parts.append(base_sentence(BaseVsInstructResult.from_dict(data["base_vs_instruct"])))
    cross = load_results(CROSS_MODEL, results_dir)
    if "statistics_check" in cross:
        parts.append(statistics_sentence(StatisticsCheckResult.from_dict(cross["statistics_check"])))
    return "\n\n".join([BEGIN, *parts, END])


def replace_block(readme: str, block: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise UsageError("README.md has no results block (its BEGIN and END comments)")
    head, rest = readme.split(BEGIN, 1)
    return head + block + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styleprobe.report.readme", description=__doc__)
    parser.add_argument("--readme", type=Path, default=(REPO_ROOT or Path.cwd()) / "README.md")
    parser.add_argument("--results", type=Path, default=None, help="the results folder (default: the root's)")
    parser.add_argument(
        "--main-model", default=MAIN_MODEL, help=f"the model it is about (a preset or its slug; {MAIN_MODEL})"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the block is out of date")
    parser.add_argument(
        "--output", type=Path, help="write the block to this file (a page of its own) instead of the README"
    )
    args = parser.parse_args(argv)
    results = args.results or folders().results
    block = render(results, model_slug(args.main_model))
    if args.output:
        atomic_write_text(args.output, f"# Results under {results.parent}\n\n{block}\n")
        return 0
    text = args.readme.read_text()
    new = replace_block(text, block)
    if args.check:
        if new != text:
            print(f"{args.readme}: the results block is out of date; run python -m styleprobe.report.readme")
            return 1
        return 0
    if new != text:
        atomic_write_text(args.readme, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
