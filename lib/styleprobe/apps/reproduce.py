"""Execute the notebooks with papermill: every per-model notebook for each model, then the cross-model one.

Notebook sources are jupytext py:percent files in `notebooks/`; each run writes an executed copy to
`runs/<model>/notebooks/`. Generations are resumed from the run store, so a second run is fast.
Two notebooks run only for some models: 03 (base vs instruct) for a model with a base model to compare
with (its preset's `base`, or a `base_model` parameter), 06 (thinking mode) for a model with a thinking
switch. Asked for by name (`notebooks`), they run for every model given. 00 (the explore app) runs only
when asked for by name."""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import cache
from pathlib import Path

from styleprobe.errors import StyleprobeError, UsageError
from styleprobe.paths import NOTEBOOKS_DIR, folders


class NotebookFailed(StyleprobeError):
    """A notebook raised while it ran; the message names the notebook, the error and the executed copy."""


PER_MODEL = (
    "01_calibration",
    "02_baseline",
    "04_length_confound",
    "07_stability",
    "08_dead_zones",
    "05_judge",
    "09_drift",
    "11_steering",
)
BASE_PAIR = ("03_base_vs_instruct",)  # an instruct model beside its base model
THINKING = ("06_thinking_mode",)  # models with a thinking switch only
CROSS_MODEL = ("10_cross_model",)
INTERACTIVE = ("00_explore",)  # the widget app: run headless only when asked for by name
# Execution order: 05 (judge) after 07 and 08, whose uninstructed axes and dead zones it compares with.
ORDER = (
    "00_explore",
    "01_calibration",
    "02_baseline",
    "03_base_vs_instruct",
    "04_length_confound",
    "06_thinking_mode",
    "07_stability",
    "08_dead_zones",
    "05_judge",
    "09_drift",
    "11_steering",
    "10_cross_model",
)
assert sorted(ORDER) == sorted(PER_MODEL + BASE_PAIR + THINKING + CROSS_MODEL + INTERACTIVE)


def resolve_notebook(name: str) -> str:
    """`02` or `02_baseline` -> `02_baseline`."""
    matches = [n for n in ORDER if n == name or n.split("_")[0] == name]
    if len(matches) != 1:
        raise UsageError(f"unknown notebook {name!r}; choose from {', '.join(ORDER)}")
    return matches[0]


@cache
def notebook_parameters(name: str) -> frozenset[str]:
    """The names assigned in the notebook's `parameters` cell (what papermill may set)."""
    import jupytext

    notebook = jupytext.read(NOTEBOOKS_DIR / f"{name}.py")
    for cell in notebook.cells:
        if "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return frozenset(
                t.id
                for node in tree.body
                if isinstance(node, ast.Assign)
                for t in node.targets
                if isinstance(t, ast.Name)
            )
    return frozenset()


def check_parameters(steps: list[tuple[str, Path, dict]], parameters: dict) -> None:
    """Refuse, before anything runs, a parameter that no planned notebook takes (a misspelling) and a
    profile or `sizes` that the notebooks would reject."""
    from styleprobe.protocol.profiles import get_profile

    taken = set().union(*(notebook_parameters(name) for name, _, _ in steps)) if steps else set()
    unknown = sorted(set(parameters) - taken)
    if unknown:
        names = ", ".join(sorted(taken))
        raise UsageError(f"unknown notebook parameter {unknown[0]!r}; the planned notebooks take {names}")
    sizes = parameters.get("sizes") or {}
    if not isinstance(sizes, dict):
        raise UsageError(f"parameter sizes must be a mapping like {{n_baseline: 10}}, got {sizes!r}")
    try:
        get_profile(parameters.get("profile"), **sizes)
    except ValueError as err:
        raise UsageError(str(err)) from None


def execute(
    name: str, output: Path, parameters: dict, *, prepare_only: bool = False, progress: bool = True
) -> Path:
    """Run one notebook (or only inject its parameters, for nbval) and write it to `output`; `progress`
    shows papermill's bar over the notebook's cells."""
    import jupytext
    import papermill

    notebook = jupytext.read(NOTEBOOKS_DIR / f"{name}.py")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            notebook,
            str(output),
            parameters=parameters,
            prepare_only=prepare_only,
            kernel_name="python3",
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=progress,
        )
    except papermill.PapermillExecutionError as err:
        last = (str(err.evalue).strip().splitlines() or [""])[-1]
        raise NotebookFailed(
            f"notebook {name} failed in cell {err.exec_count}: {err.ename}: {last} (executed copy: {output})"
        ) from None
    return output


def plan(
    models: list[str],
    parameters: dict,
    notebooks: list[str] | None = None,
    runs_dir: Path | None = None,
    out_dir: Path | None = None,
) -> list[tuple[str, Path, dict]]:
    """The (notebook, output, parameters) steps of a reproduction, in order. With `out_dir` (one model),
    the notebooks are written there as `<notebook>.ipynb` instead of under the run store."""
    from styleprobe.engine.models import load_presets, slugify
    from styleprobe.engine.toy import THINKING_ARCHS

    names = [resolve_notebook(n) for n in notebooks] if notebooks else list(ORDER)
    runs = Path(runs_dir or folders().runs)
    presets = load_presets()
    steps = []
    for model in models:
        folder = (
            Path(out_dir) if out_dir else runs / (model if model in presets else slugify(model)) / "notebooks"
        )
        preset = presets.get(model)
        base = parameters.get("base_model") or (preset.base if preset else None)
        toy = model.startswith("random:") and model.removeprefix("random:") in THINKING_ARCHS
        thinks = preset.thinking if preset else toy
        for n in names:
            if (
                n in PER_MODEL
                or (n in THINKING and (thinks or notebooks))
                or (n in INTERACTIVE and notebooks)
            ):
                steps.append((n, folder / f"{n}.ipynb", {"model": model, **parameters}))
            elif n in BASE_PAIR and (base or notebooks):
                pair = {"instruct_model": model, **({"base_model": base} if base else {})}
                steps.append((n, folder / f"{n}.ipynb", {**pair, **parameters}))
    folder = Path(out_dir) if out_dir else runs / "cross_model" / "notebooks"
    steps += [(n, folder / f"{n}.ipynb", parameters) for n in names if n in CROSS_MODEL]
    check_parameters(steps, parameters)
    # each notebook gets only the parameters it declares (e.g. 10_cross_model takes no model)
    return [(n, out, {k: v for k, v in p.items() if k in notebook_parameters(n)}) for n, out, p in steps]


def reproduce(
    models: list[str],
    parameters: dict,
    notebooks: list[str] | None = None,
    *,
    runs_dir: Path | None = None,
    out_dir: Path | None = None,
    dry_run: bool = False,
    prepare_only: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Execute (or with `dry_run`, only print) every step of `plan`."""
    done = []
    for name, output, params in plan(models, parameters, notebooks, runs_dir, out_dir):
        shown = " ".join(f"-p {k} {v}" for k, v in params.items())
        log(f"{'would run' if dry_run else 'running'}: papermill notebooks/{name}.py {output} {shown}")
        if not dry_run:
            done.append(execute(name, output, params, prepare_only=prepare_only, progress=not prepare_only))
    return done
