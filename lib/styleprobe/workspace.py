"""What a notebook works with for one model: the loaded model, its protocol profile and its folders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from styleprobe import paths
from styleprobe.engine.models import ModelHandle, load_model
from styleprobe.protocol.axes import AxesError, AxisSet
from styleprobe.protocol.profiles import Profile, get_profile
from styleprobe.report import paper
from styleprobe.report.plots import save_figure
from styleprobe.report.results import update_results


@dataclass
class Workspace:
    handle: ModelHandle
    profile: Profile
    runs: Path  # runs/<model>: the run store
    figures: Path  # figures/<model>
    axes_file: Path  # axes/<model>.json
    results_dir: Path  # results/
    paper_dir: Path  # paper/generated: the paper's numbers, tables and figure PDFs, one folder per model

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
    ) -> Workspace:
        """Load `model` and resolve its folders under `root` (None: the repository's); `sizes` override
        single profile sizes (n_calibration, calibration_tokens, ...)."""
        handle = load_model(model, device=device, dtype=dtype, revision=revision)
        where = paths.folders(root)
        return cls(
            handle=handle,
            profile=get_profile(profile, **dict(sizes or {})),
            runs=where.runs / handle.slug,
            figures=where.figures / handle.slug,
            axes_file=where.axes / f"{handle.slug}.json",
            results_dir=where.results,
            paper_dir=paper.generated_dir(where.results),
        )

    def axes(self) -> AxisSet:
        if not self.axes_file.exists():
            raise AxesError(f"no axes at {self.axes_file}: run notebook 01_calibration for this model first")
        return AxisSet.load(self.axes_file)

    def save_figure(self, fig, name: str) -> list[Path]:
        return save_figure(fig, self.figures / name)

    def update_results(self, section: str, payload) -> Path:
        return update_results(self.handle.slug, section, payload, self.results_dir)

    def paper_numbers(self, notebook: str, values, digits: int = 2) -> Path:
        """Numbers for the paper, read there as `\\result{<model>/<notebook>/<key>}`."""
        return paper.write_numbers(self.handle.slug, notebook, values, digits=digits, root=self.paper_dir)

    def paper_table(self, name: str, frame, **options) -> Path:
        """A booktabs table for the paper (options: digits, columns, index_name)."""
        return paper.write_table(self.handle.slug, name, frame, root=self.paper_dir, **options)

    def paper_figures(self, names: list[str]) -> list[Path]:
        """Copy figures saved with `save_figure` (their PDFs) to the paper's folder."""
        return paper.copy_figures(self.handle.slug, self.figures, names, root=self.paper_dir)

    def describe(self) -> str:
        h = self.handle
        return f"{h.model_id}: {h.n_layers} blocks, hidden size {h.hidden_size}, profile {self.profile.name}"
