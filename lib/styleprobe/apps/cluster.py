"""Many models on a Ray cluster: one Ray task per model runs that model's notebooks (papermill, as
`reproduce` does, one after another), holding the GPUs its preset asks for; once every model is done, the
cross-model notebooks run on the driver.

Results: with a shared root (`shared_root=True`: the NFS or Lustre folder every node mounts) each task
writes there, as a local run would. Without one, each task works in a root of its own on its node and sends
its model's results, axes, figures and generated paper files back; the driver writes them under its root
(atomically, under the same locks as a local run).

Faults: Ray retries a task whose worker dies (`max_retries`); the retry resumes from the run store, so
finished generation batches are not redone (on a shared root, or on the same node without one). A model
that fails (a bad id, out of memory) is reported with its error and the other models go on. Ray is an
optional dependency (`pip install -e .[cluster]`)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from styleprobe.apps.reproduce import (
    cross_model_notebooks,
    execute,
    plan,
    reproduce,
    resolve_notebook,
    run_order,
)
from styleprobe.engine.models import load_presets, model_slug, slugify
from styleprobe.engine.store import atomic_write_bytes, locked
from styleprobe.errors import UsageError, first_line
from styleprobe.paths import folders
from styleprobe.report.notebooks import published_folder

MAX_RETRIES = 2  # retries of a task whose worker died; a notebook that raises is not retried


@dataclass
class ModelRun:
    """What one model's task reports back to the driver."""

    model: str
    status: str  # "done" or "failed"
    error: str = ""
    wall_s: float = 0.0
    gpus: float = 0.0
    notebooks: list[str] = field(default_factory=list)  # executed, in order
    files: dict[str, bytes] = field(default_factory=dict)  # root-relative path -> content (no shared root)

    @property
    def gpu_s(self) -> float:
        """GPU seconds held: wall time times the GPUs the task held."""
        return self.wall_s * self.gpus


def gpus_for(model: str, override: float | None = None) -> float:
    """GPUs one model's task asks Ray for: `override`, else its preset's `gpus` (0 for models that are not
    presets: pass --gpus-per-model for a hub model that needs them)."""
    if override is not None:
        if override < 0:
            raise UsageError(f"--gpus-per-model must be >= 0, got {override}")
        return override
    preset = load_presets().get(model)
    return float(preset.gpus) if preset else 0.0


def model_outputs(root: Path, slug: str) -> list[Path]:
    """The files a model's notebooks leave under `root` for the driver: its results file, its axes, its
    figures, its executed notebooks' clean copies and its generated paper files (not the run store, which
    stays on the node for resumption)."""
    places = [root / "results" / f"{slug}.json", *(root / "axes").glob(f"{slug}*.json")]
    notebooks = published_folder(root / "results", slug)
    for folder in (root / "figures" / slug, root / "paper" / "generated" / slug, notebooks):
        places += [p for p in folder.rglob("*") if p.is_file()]
    return [p for p in places if p.is_file() and not p.name.endswith(".lock")]


def run_model(
    model: str,
    parameters: dict,
    notebooks: list[str] | None,
    root: str,
    shared: bool,
    skip: Collection[str] = (),
) -> ModelRun:
    """One model's notebooks (not the cross-model ones, nor those in `skip`), in plan order, in this process.
    `root` is where they write (the shared root, or this node's own); without a shared root the outputs come
    back in `files`."""
    start = time.perf_counter()
    done: list[str] = []
    status, error = "done", ""
    try:
        steps = plan(
            [model], {**parameters, "root": root}, notebooks, runs_dir=Path(root) / "runs", skip=skip
        )
        for step in steps:
            if step.model is None:
                continue  # the cross-model notebooks run on the driver once all models are done
            print(f"{model}: running {step.notebook}", flush=True)  # Ray forwards it to the driver
            execute(*step, progress=False)
            done.append(step.notebook)
    except Exception as err:  # reported to the driver: one model's failure does not stop the others
        status, error = "failed", f"{type(err).__name__}: {first_line(err)}"
    files = {}
    if not shared:
        files = {
            str(p.relative_to(root)): p.read_bytes() for p in model_outputs(Path(root), model_slug(model))
        }
    return ModelRun(model, status, error, time.perf_counter() - start, notebooks=done, files=files)


def node_root(model: str) -> str:
    """A root of this node's own for one model (stable, so a retry on the same node resumes)."""
    return str(Path(tempfile.gettempdir()) / "styleprobe-ray" / slugify(model))


def write_back(run: ModelRun, root: Path) -> None:
    """The files a task sent back, written under the driver's root, each atomically under its lock."""
    for relative, data in run.files.items():
        target = root / relative
        with locked(target):
            atomic_write_bytes(target, data)


def run_on_ray(
    models: Sequence[str],
    parameters: dict,
    notebooks: list[str] | None = None,
    *,
    address: str | None = None,
    shared_root: bool = True,
    gpus_per_model: float | None = None,
    skip: Collection[str] = (),
    task: Callable[..., ModelRun] = run_model,
    log: Callable[[str], None] = print,
) -> list[ModelRun]:
    """Run every model's notebooks as Ray tasks on the cluster at `address` ("auto": the running cluster;
    None: a local one), then the cross-model notebooks here. Returns one ModelRun per model, in the order
    of `models`; a failed model does not raise (see `summary`)."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install -e '.[cluster]'") from None
    from tqdm.auto import tqdm

    root = Path(parameters.get("root") or folders().results.parent).resolve()
    checked = {**parameters, "root": str(root)}
    plan(list(models), checked, notebooks, runs_dir=root / "runs", skip=skip)  # bad input: refused now
    if not ray.is_initialized():
        ray.init(address=address or None)  # None: $RAY_ADDRESS, else a new local cluster
    remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(task)
    pending = {}
    for model in models:
        gpus = gpus_for(model, gpus_per_model)
        where = str(root) if shared_root else node_root(model)
        ref = remote.options(num_gpus=gpus).remote(
            model, parameters, notebooks, where, shared_root, tuple(skip)
        )
        pending[ref] = (model, gpus)
        log(f"{model}: submitted ({gpus:g} GPUs)")
    runs: dict[str, ModelRun] = {}
    with tqdm(total=len(models), desc="models", unit="model") as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            model, gpus = pending.pop(ready[0])
            try:
                run = ray.get(ready[0])
            except Exception as err:  # the worker died more than MAX_RETRIES times
                run = ModelRun(model, "failed", f"{type(err).__name__}: {first_line(err)}")
            run.gpus = gpus
            if not shared_root:
                write_back(run, root)
            runs[model] = run
            log(f"{model}: {run.status}" + (f" ({run.error})" if run.error else f" in {run.wall_s:.0f} s"))
            bar.update()
    skipped = {resolve_notebook(n) for n in skip}
    cross = [n for n in run_order() if n in cross_model_notebooks() and n not in skipped]
    if notebooks is not None:
        cross = [n for n in cross if n in {resolve_notebook(a) for a in notebooks}]
    done = [model_slug(m) for m in models if runs[m].status == "done"]
    if cross and done:
        reproduce(list(models), {**parameters, "root": str(root)}, cross, log=log)
    if done:
        check_paper(root, done, log)
    return [runs[m] for m in models]


def check_paper(root: Path, done: list[str], log: Callable[[str], None]) -> None:
    """Collect and check the paper's inputs under `root` (`make paper` builds the PDF from them), about
    the default main model when it ran, else the first model done; what is missing is logged, not raised."""
    from styleprobe.report import paper

    main = paper.MAIN_MODEL if paper.MAIN_MODEL in done else done[0]
    try:
        index = paper.build(
            main_model=main, root=paper.generated_dir(root / "results"), compile_pdf=False, log=log
        )
        log(f"paper inputs checked: {index}")
    except paper.PaperError as err:
        log(f"paper not checked: {first_line(err)}")


def summary(runs: Sequence[ModelRun]) -> str:
    """One line per model (status, wall and GPU time, or its error) and the totals."""
    lines = [
        f"{r.model:32} {r.status:6} wall {r.wall_s:7.0f} s  GPU {r.gpu_s:7.0f} s  {r.error}".rstrip()
        for r in runs
    ]
    done = sum(r.status == "done" for r in runs)
    lines.append(f"done: {done}, failed: {len(runs) - done}")
    return "\n".join(lines)
