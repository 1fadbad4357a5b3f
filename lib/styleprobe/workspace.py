"""What an analysis works with for one model: the loaded model, its profile, the protocol (axes and
questions), its run store, and the folders its results, figures and paper numbers go to.

A notebook opens one (`ws = Workspace.open(model, ...)`), hands it to the analyses (`stability.run(ws)`),
saves what they return (`ws.save(result)`) and reads another notebook's result only as a typed Result
(`BaselineResult.load(ws)`). The workspace owns every file below its root: nothing else builds a path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from styleprobe import paths
from styleprobe.engine.models import ModelHandle, load_model
from styleprobe.protocol.axes import AxesError, AxisSet
from styleprobe.protocol.profiles import Profile, check_question_counts, get_profile
from styleprobe.protocol.runs import RunStore
from styleprobe.protocol.spec import Protocol
from styleprobe.report import paper
from styleprobe.report.plots import save_figure
from styleprobe.report.results import all_results, load_results, update_results
from styleprobe.result import Result, ResultsError

R = TypeVar("R", bound=Result)
CROSS_MODEL = paper.CROSS_MODEL  # the name results made for all models at once are kept under


@dataclass
class Workspace:
    handle: ModelHandle | None  # None for the cross-model workspace
    profile: Profile
    protocol: Protocol
    slug: str  # the name its files go under: axes/<slug>.json, runs/<slug>/, results/<slug>.json
    root: paths.Folders

    def __post_init__(self) -> None:
        check_question_counts(self.profile, self.protocol)  # never fewer questions than the profile names

    @classmethod
    def open(
        cls,
        model: str,
        *,
        profile: str | None = None,
        revision: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        root: str | Path | None = None,
        sizes: Mapping[str, int | None] | None = None,
        data: str | Path | None = None,
        model_args: Mapping[str, object] | None = None,
    ) -> Workspace:
        """Load `model` with its folders under `root` (None: the default root, see `styleprobe.paths`);
        `sizes` override single profile sizes (n_calibration, calibration_tokens, ...); `data` is another
        protocol folder (None: the package's data); `model_args` go to `from_pretrained` (`load_model`)."""
        prof = get_profile(profile, **dict(sizes or {}))  # checked (and test models registered) first
        protocol = Protocol.load(data)
        check_question_counts(prof, protocol)  # before the model is loaded
        handle = load_model(model, device=device, dtype=dtype, revision=revision, model_args=model_args)
        return cls(handle, prof, protocol, handle.slug, paths.folders(root))

    @classmethod
    def cross_model(
        cls, *, profile: str | None = None, root: str | Path | None = None, data: str | Path | None = None
    ) -> Workspace:
        """The workspace of the cross-model analyses: no model, every model's results."""
        return cls(None, get_profile(profile), Protocol.load(data), CROSS_MODEL, paths.folders(root))

    @property
    def model(self) -> ModelHandle:
        if self.handle is None:
            raise AxesError("the cross-model workspace has no model")
        return self.handle

    # --- files ------------------------------------------------------------------------------------------

    @property
    def runs(self) -> RunStore:
        return RunStore(self.root.runs / self.slug)

    @property
    def axes_file(self) -> Path:
        return self.root.axes / f"{self.slug}.json"

    @property
    def figures(self) -> Path:
        return self.root.figures / self.slug

    @property
    def results_dir(self) -> Path:
        return self.root.results

    @property
    def paper_dir(self) -> Path:
        return paper.generated_dir(self.root.results)

    def axes(self) -> AxisSet:
        if not self.axes_file.exists():
            raise AxesError(f"no axes at {self.axes_file}: run notebook 01_calibration for this model first")
        return AxisSet.load(self.axes_file)

    def save_figure(self, fig, name: str) -> list[Path]:
        """`figures/<slug>/<name>.png` and `.pdf`; the paper includes the PDF from there."""
        return save_figure(fig, self.figures / name)

    # --- results ----------------------------------------------------------------------------------------

    def save(self, result: Result) -> Path:
        """Write `result` as its section of `results/<slug>.json`, and its paper numbers and tables."""
        path = update_results(self.slug, result.name, result.to_dict(), self.results_dir)
        numbers = result.paper()
        if numbers:
            paper.write_numbers(
                self.slug,
                result.notebook,
                numbers,
                digits=result.paper_digits,
                root=self.paper_dir,
                part=result.name,
            )
        for name, table in result.paper_tables().items():
            paper.write_table(
                self.slug,
                name,
                table.frame,
                digits=table.digits,
                columns=table.columns,
                index_name=table.index_name,
                root=self.paper_dir,
                axes=self.protocol.names,
            )
        return path

    def section(self, cls: type[Result]) -> dict:
        """The saved section of `cls` for this model (ResultsError naming the notebook if there is none)."""
        data = load_results(self.slug, self.results_dir)
        if cls.name not in data:
            raise ResultsError(
                f"no {cls.name} result for {self.slug} in {self.results_dir}: "
                f"run notebook {cls.notebook} first"
            )
        return data[cls.name]

    def load(self, cls: type[R]) -> R:
        return cls.load(self)

    def has(self, cls: type[Result]) -> bool:
        return cls.name in load_results(self.slug, self.results_dir)

    def every_model(self, cls: type[R]) -> dict[str, R]:
        """`cls`'s result for every model that has one under this root (this one included), by slug."""
        return {
            slug: cls.from_dict(data[cls.name])
            for slug, data in all_results(self.results_dir).items()
            if cls.name in data and slug != CROSS_MODEL
        }

    def describe(self) -> str:
        if self.handle is None:
            return f"all models under {self.root.results}, profile {self.profile.name}"
        h = self.handle
        return (
            f"{h.model_id}: {h.n_layers} blocks, hidden size {h.hidden_size}, {h.dtype_name} on "
            f"{h.device.type}, profile {self.profile.name}"
        )
