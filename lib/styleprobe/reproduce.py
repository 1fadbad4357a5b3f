"""Execute the notebooks with papermill: every per-model notebook for each model, then the cross-model one.

Notebook sources are jupytext py:percent files in `notebooks/`; each run writes an executed copy to
`runs/<model>/notebooks/`. Generations are resumed from the run store, so a second run is fast."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from styleprobe.paths import NOTEBOOKS_DIR, RUNS_DIR

PER_MODEL = ("01_calibration", "02_baseline", "04_length_confound")
CROSS_MODEL = ("10_cross_model",)
ORDER = PER_MODEL + CROSS_MODEL


def resolve_notebook(name: str) -> str:
    """`02` or `02_baseline` -> `02_baseline`."""
    matches = [n for n in ORDER if n == name or n.split("_")[0] == name]
    if len(matches) != 1:
        raise ValueError(f"unknown notebook {name!r}; choose from {', '.join(ORDER)}")
    return matches[0]


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
    papermill.execute_notebook(
        notebook,
        str(output),
        parameters=parameters,
        prepare_only=prepare_only,
        kernel_name="python3",
        cwd=str(NOTEBOOKS_DIR),
        progress_bar=progress,
    )
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
    from styleprobe.models import load_presets, slugify

    names = [resolve_notebook(n) for n in notebooks] if notebooks else list(ORDER)
    runs = Path(runs_dir or RUNS_DIR)
    presets = load_presets()
    steps = []
    for model in models:
        folder = (
            Path(out_dir) if out_dir else runs / (model if model in presets else slugify(model)) / "notebooks"
        )
        steps += [(n, folder / f"{n}.ipynb", {"model": model, **parameters}) for n in names if n in PER_MODEL]
    cross = {k: v for k, v in parameters.items() if k in ("results_dir", "figures_dir")}
    folder = Path(out_dir) if out_dir else runs / "cross_model" / "notebooks"
    steps += [(n, folder / f"{n}.ipynb", cross) for n in names if n in CROSS_MODEL]
    return steps


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
