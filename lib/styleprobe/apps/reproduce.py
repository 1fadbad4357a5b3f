"""Execute the notebooks with papermill: every per-model notebook for each model, then the cross-model one.

Notebook sources are jupytext py:percent files in `notebooks/`; each run writes an executed copy to
`runs/<model>/notebooks/`, and a clean copy for readers to `results/notebooks/<model>/`
(`styleprobe.report.notebooks`). Generations are resumed from the run store, so a second run is fast.
The order comes from the typed results (`styleprobe.result`): a notebook runs after the notebooks that make
the results it needs (ties by notebook number), a plan whose needs neither a planned notebook makes nor the
root already holds is refused, and with `jobs` > 1 notebooks that do not need each other run side by side.
Two notebooks run only for some models: 03 (base vs instruct) for a model with a base model to compare
with (its preset's `base`, or a `base_model` parameter), 06 (thinking mode) for a model with a thinking
switch. Asked for by name (`notebooks`), they run for every model given. 00 (the explore app) runs only
when asked for by name. `skip` leaves notebooks out (`make reproduce` leaves out 03, the longest on a CPU)."""

from __future__ import annotations

import ast
import heapq
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import cache
from pathlib import Path
from typing import NamedTuple

from styleprobe.errors import StyleprobeError, UsageError
from styleprobe.paths import IN_CHECKOUT, NOTEBOOKS_DIR, folders
from styleprobe.report.notebooks import publish, published
from styleprobe.report.paper import CROSS_MODEL
from styleprobe.report.results import all_results, load_results, result_classes
from styleprobe.result import Result


class NotebookFailed(StyleprobeError):
    """A notebook raised while it ran; the message names the notebook, the error and the executed copy."""


BASE_PAIR = "03_base_vs_instruct"  # an instruct model beside its base model
THINKING = "06_thinking_mode"  # models with a thinking switch only
INTERACTIVE = "00_explore"  # the widget app: run headless only when asked for by name


class Step(NamedTuple):
    """One notebook run: the notebook, where its executed copy goes, and its papermill parameters."""

    notebook: str
    output: Path
    parameters: dict

    @property
    def model(self) -> str | None:
        """The model it runs for (None: the cross-model notebook)."""
        return model_of(self.parameters)


def model_of(parameters: Mapping) -> str | None:
    """The model a notebook's parameters run it for (None: the cross-model notebook)."""
    return parameters.get("model", parameters.get("instruct_model"))


def _notebook_names() -> list[str]:
    return sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))


def makers(registry: Mapping[str, type[Result]]) -> dict[str, str]:
    """{result name: the notebook that makes it}."""
    return {name: cls.notebook for name, cls in registry.items()}


def notebook_needs(notebook: str, registry: Mapping[str, type[Result]]) -> set[str]:
    """The results `notebook` reads that another notebook makes."""
    own = [cls for cls in registry.values() if cls.notebook == notebook]
    return {need for cls in own for need in cls.needs} - {cls.name for cls in own}


def order(notebooks: list[str], registry: Mapping[str, type[Result]]) -> list[str]:
    """`notebooks` sorted so that each comes after the notebooks making the results it needs; among those
    free to run, the lowest number first."""
    made_by = makers(registry)
    before = {
        nb: {made_by[n] for n in notebook_needs(nb, registry) if n in made_by} & set(notebooks)
        for nb in notebooks
    }
    ready = [nb for nb in notebooks if not before[nb]]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        nb = heapq.heappop(ready)
        out.append(nb)
        for other in notebooks:
            if nb in before[other]:
                before[other].discard(nb)
                if not before[other]:
                    heapq.heappush(ready, other)
    if len(out) < len(notebooks):
        cycle = ", ".join(sorted(set(notebooks) - set(out)))
        raise UsageError(f"the needs of notebooks {cycle} form a cycle (see their Result classes' needs)")
    return out


@cache
def _registry() -> dict[str, type[Result]]:
    return result_classes()


def run_order() -> tuple[str, ...]:
    """Every notebook, in the order a reproduction runs them."""
    return tuple(order(_notebook_names(), _registry()))


def cross_model_notebooks() -> frozenset[str]:
    """The notebooks run once for all models (their results are cross-model)."""
    return frozenset(cls.notebook for cls in _registry().values() if cls.cross_model)


def per_model_notebooks() -> tuple[str, ...]:
    """The notebooks a reproduction runs for every model, in order."""
    only_some = {INTERACTIVE, BASE_PAIR, THINKING, *cross_model_notebooks()}
    return tuple(n for n in run_order() if n not in only_some)


def resolve_notebook(name: str) -> str:
    """`02` or `02_baseline` -> `02_baseline`."""
    names = _notebook_names()
    matches = [n for n in names if n == name or n.split("_")[0] == name]
    if len(matches) != 1:
        raise UsageError(f"unknown notebook {name!r}; choose from {', '.join(names)}")
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


def declared_parameters(notebooks: list[str] | None = None) -> frozenset[str]:
    """The parameters that the notebooks named (None: every notebook a reproduction may run) take."""
    names = [resolve_notebook(n) for n in notebooks] if notebooks else list(run_order())
    return frozenset().union(*(notebook_parameters(n) for n in names))


def check_parameters(steps: list[Step], parameters: dict) -> None:
    """Refuse, before anything runs, a parameter that no planned notebook takes (a misspelling) and a
    profile or `sizes` that the notebooks would reject."""
    from styleprobe.protocol.profiles import get_profile

    taken = set().union(*(notebook_parameters(s.notebook) for s in steps)) if steps else set()
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


def check_needs(steps: list[Step], registry: Mapping[str, type[Result]], results_dir: Path) -> None:
    """Refuse a plan with a notebook that needs a result which no planned notebook makes and which is not
    saved under `results_dir` (for its model; for the cross-model notebook, for any model)."""
    from styleprobe.engine.models import load_presets, slugify

    presets = load_presets()
    made_by = makers(registry)
    planned: dict[str | None, set[str]] = {}
    for step in steps:
        planned.setdefault(step.model, set()).add(step.notebook)
    made_anywhere = {name for name, nb in made_by.items() if any(nb in p for p in planned.values())}
    for step in steps:
        if step.model is None:
            have = made_anywhere | {name for data in all_results(results_dir).values() for name in data}
        else:
            slug = step.model if step.model in presets else slugify(step.model)
            made = {name for name, nb in made_by.items() if nb in planned[step.model]}
            have = made | set(load_results(slug, results_dir))
        lacking = notebook_needs(step.notebook, registry) - have
        if lacking:
            by_maker: dict[str, list[str]] = {}
            for need in sorted(lacking, key=lambda n: (made_by.get(n, "~"), n)):
                by_maker.setdefault(made_by.get(need, "no notebook"), []).append(need)
            listed = "; ".join(f"{', '.join(needs)} (made by {nb})" for nb, needs in by_maker.items())
            whom = f" for {step.model}" if step.model else ""
            add = " ".join(nb[:2] for nb in by_maker)
            raise UsageError(
                f"notebook {step.notebook}{whom} needs results that no planned notebook makes and "
                f"{results_dir} lacks: {listed}; add {add} to --notebooks (or run them first)"
            )


def execute(
    name: str, output: Path, parameters: dict, *, prepare_only: bool = False, progress: bool = True
) -> Path:
    """Run one notebook (or only inject its parameters, for nbval) and write it to `output`, and once it
    ran, its clean copy to the results folder of the `root` parameter; `progress` shows papermill's bar
    over the notebook's cells."""
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
    if not prepare_only:
        from styleprobe.engine.models import model_slug

        model = model_of(parameters)
        owner = model_slug(model) if model else CROSS_MODEL
        publish(output, published(folders(parameters.get("root")).results, owner, name))
    return output


def plan(
    models: list[str],
    parameters: dict,
    notebooks: list[str] | None = None,
    runs_dir: Path | None = None,
    out_dir: Path | None = None,
    skip: Collection[str] = (),
) -> list[Step]:
    """The steps of a reproduction, in order, without the notebooks in `skip`. With `out_dir` (one model),
    the notebooks are written there as `<notebook>.ipynb` instead of under the run store. A needed result
    that neither a planned notebook makes nor the root (the `root` parameter's, else the default) holds is a
    UsageError."""
    from styleprobe.engine.models import load_presets, model_slug
    from styleprobe.testing import THINKING_ARCHS

    if not IN_CHECKOUT:
        raise UsageError("reproduce runs the notebooks of a styleprobe checkout; run it from a clone")
    ordered, cross = run_order(), cross_model_notebooks()
    asked = {resolve_notebook(n) for n in notebooks} if notebooks else set(ordered) - {INTERACTIVE}
    skipped = {resolve_notebook(n) for n in skip}
    names = [n for n in ordered if n in asked and n not in skipped]
    runs = Path(runs_dir or folders().runs)
    presets = load_presets()
    steps = []
    for model in models:
        folder = Path(out_dir) if out_dir else runs / model_slug(model) / "notebooks"
        preset = presets.get(model)
        base = parameters.get("base_model") or (preset.base if preset else None)
        toy = model.startswith("random:") and model.removeprefix("random:") in THINKING_ARCHS
        thinks = preset.thinking if preset else toy
        for n in names:
            if n == BASE_PAIR:
                if base or notebooks:
                    pair = {"instruct_model": model, **({"base_model": base} if base else {})}
                    steps.append(Step(n, folder / f"{n}.ipynb", {**pair, **parameters}))
            elif n not in cross and (n != THINKING or thinks or notebooks):
                steps.append(Step(n, folder / f"{n}.ipynb", {"model": model, **parameters}))
    folder = Path(out_dir) if out_dir else runs / "cross_model" / "notebooks"
    steps += [Step(n, folder / f"{n}.ipynb", dict(parameters)) for n in names if n in cross]
    check_parameters(steps, parameters)
    # each notebook gets only the parameters it declares (e.g. 10_cross_model takes no model)
    steps = [Step(n, out, {k: v for k, v in p.items() if k in notebook_parameters(n)}) for n, out, p in steps]
    root = parameters.get("root")
    check_needs(steps, _registry(), folders(root).results if root else folders().results)
    return steps


def dependencies(steps: list[Step], registry: Mapping[str, type[Result]] | None = None) -> list[set[int]]:
    """For each step, the earlier steps that make a result it needs (the same model's, or any model's for
    the cross-model notebook): what must finish before it starts."""
    registry = registry if registry is not None else _registry()
    made_by = makers(registry)
    out = []
    for i, step in enumerate(steps):
        needed_from = {made_by[n] for n in notebook_needs(step.notebook, registry) if n in made_by}
        out.append(
            {
                j
                for j, earlier in enumerate(steps[:i])
                if earlier.notebook in needed_from and (step.model is None or earlier.model == step.model)
            }
        )
    return out


def command(step: Step) -> str:
    """The papermill command line a step amounts to (for the log)."""
    shown = " ".join(f"-p {k} {v}" for k, v in step.parameters.items())
    return f"papermill notebooks/{step.notebook}.py {step.output} {shown}"


def run_steps(
    steps: list[Step],
    after: list[set[int]],
    run: Callable[[Step], Path],
    *,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Run the steps, at most `jobs` at a time, each once the steps it comes `after` finished (in plan order
    among those ready). The first failure stops new starts and is raised once the running steps end."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    done: dict[int, Path] = {}
    running: dict[Future, int] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            if failure is None:
                started = set(running.values()) | set(done)
                for i, step in enumerate(steps):
                    if len(running) >= jobs:
                        break
                    if i not in started and after[i] <= set(done):
                        log(f"running: {command(step)}")
                        running[pool.submit(run, step)] = i
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                if future.exception() is not None:
                    failure = failure or future.exception()
                else:
                    done[i] = future.result()
    if failure is not None:
        raise failure
    return [done[i] for i in sorted(done)]


def reproduce(
    models: list[str],
    parameters: dict,
    notebooks: list[str] | None = None,
    *,
    runs_dir: Path | None = None,
    out_dir: Path | None = None,
    dry_run: bool = False,
    prepare_only: bool = False,
    jobs: int = 1,
    skip: Collection[str] = (),
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Execute (or with `dry_run`, only print) every step of `plan`, `jobs` notebooks at a time."""
    steps = plan(models, parameters, notebooks, runs_dir, out_dir, skip)
    if dry_run:
        for step in steps:
            log(f"would run: {command(step)}")
        return []
    progress = jobs == 1 and not prepare_only  # one bar at a time

    def run(step: Step) -> Path:
        return execute(*step, prepare_only=prepare_only, progress=progress)

    return run_steps(steps, dependencies(steps), run, jobs=jobs, log=log)
