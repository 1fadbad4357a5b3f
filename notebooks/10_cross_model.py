# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Fingerprints across models
#
# Every model with results under `results/` (written by notebooks 01 and 02), beside the original study's
# published baselines (`data/mood_axis/baselines/`, imported as published). **The imported values are not
# on our scale**: the study did not centre its projections (0 there is the raw origin, not the calibration
# midpoint) and floored its scale at 0.1; compare their shapes, not their levels, with ours.
#
# For our models, a cell whose axis fails held-out validation for that model (`validity.valid_axes`,
# including the axes notebook 08 classed dead where it ran) is marked † and carries no conclusion.

# %% tags=["parameters"]
root = None  # folder holding results/ and figures/ (None: the repository's)
include_imported = True

# %%
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from styleprobe.analyses import cross_model
from styleprobe.protocol import validity
from styleprobe.report import style
from styleprobe.report.plots import POLE_NOTE, axis_label, radar
from styleprobe.workspace import Workspace

ws = Workspace.cross_model(root=root)
result = cross_model.run(ws, include_imported=include_imported)
print(f"{len(result.ours)} of our models, {result.n_imported} imported")

# %% [markdown]
# ## Mean projection per model and axis

# %%
means = result.means
valid = result.valid.reindex(index=means.index, columns=means.columns, fill_value=True)
labels = means.map("{:.2f}".format).where(valid, means.map("{:.2f}".format) + validity.MARK)
fig, ax = style.figure("full", 0.2 * len(means) + 1.6)
sns.heatmap(
    means.rename(columns=axis_label),
    cmap="RdBu_r",
    vmin=-1,
    vmax=1,
    annot=labels,
    fmt="",
    annot_kws={"fontsize": style.SMALL_PT},
    ax=ax,
    cbar_kws={"label": "mean projection (normalised units)"},
)
ax.set_ylabel("model")
ax.set_title("mean baseline projection\n(imported rows: the study's uncentred scale; †: axis not validated)")
ws.save_figure(fig, "fingerprint_heatmap")
means.round(3)

# %% [markdown]
# ## Radar grid

# %%
n, ncols = len(means), 5
nrows = max(2, -(-(n + 3) // ncols))  # the first, labelled radar takes 2 x 2 cells
fig = style.empty_figure("full", 1.25 * nrows + 0.4)
grid = fig.add_gridspec(nrows, ncols)
cells = [grid[:2, :2]] + [grid[r, c] for r in range(nrows) for c in range(ncols) if r >= 2 or c >= 2]
for i, (cell, (name, row)) in enumerate(zip(cells, means.iterrows(), strict=False)):
    title = name.replace(" (imported)", "\n(imported)")
    if row.isna().any():  # drawn as missing, not as 0
        title += f"\n{row.notna().sum()} of {len(row)} axes"
    ax = fig.add_subplot(cell, projection="polar")
    validated = [a for a in row.index if valid.loc[name, a]]  # the others get a †
    radar({name: row.clip(-1, 1)}, ax=ax, title=title, note=False, labels=i == 0, valid=validated)
notes = "; ".join(POLE_NOTE.split("\n"))
style.source_note(fig, f"spokes in the order of the first; {notes}; values shown within ±1")
ws.save_figure(fig, "radar_grid")

# %% [markdown]
# ## How many dimensions does each model's style span?
# Eigenvalues of the questions × axes projections as shares of their sum, and the participation ratio
# (Σλ)²/Σλ² (1: one dimension .. the number of axes), in two conventions (`stats.spectrum_shares`):
# - **covariance** of the raw projections: the study's convention. Axes weigh by their spread and an axis
#   that never varies is kept. On the study's own files it recomputes the effective dimensionality the
#   study published (e.g. DeepSeek 7B 3.66, Qwen 7B 1.91; `tests/test_stats.py`), so the study's models
#   are shown on it alone.
# - **correlation**: every axis standardised, so each weighs the same whatever its spread; axes that never
#   vary are dropped. Our models are shown on both, side by side.
#
# Both are computed over all axes of a model, validated or not, as the study did.

# %%
dims = result.dimensionality
ours = dims.loc[result.ours]
spectra = result.spectra.assign(
    n_axes=result.spectra.groupby(["model", "scale"])["component"].transform("max")
)
groups = [(cross_model.STUDY_SCALE, k) for k in sorted(spectra["n_axes"].unique())] + [("correlation", None)]
fig, panels = style.panels(len(groups), ncols=2, panel_height=2.6, sharey=True)
for ax, (scale, n_axes) in zip(panels, groups, strict=True):
    frame = spectra[spectra["scale"] == scale]
    frame = frame[frame["n_axes"] == n_axes] if n_axes else frame
    shown = list(dict.fromkeys(frame["model"]))
    colours = style.PALETTE if len(shown) <= len(style.PALETTE) else sns.color_palette("tab20", len(shown))
    for colour, name in zip(colours, shown, strict=False):
        part = frame[frame["model"] == name]
        imported = name.endswith(" (imported)")
        short = name.removesuffix(" (imported)")
        ax.plot(
            part["component"], part["share"], "o--" if imported else "o-", ms=2.5, color=colour, label=short
        )
    convention = "covariance (the study's), models with" if n_axes else "correlation, our models"
    ax.set_title(f"{convention} {n_axes} axes" if n_axes else convention)
    ax.set_xlabel("principal component")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
for ax in panels[:: min(2, len(panels))]:
    ax.set_ylabel("share of variance")
style.source_note(fig, "solid: our models; dashed: imported (the study's models and scale)")
ws.save_figure(fig, "pca_spectra")
imported = dims.drop(index=result.ours)
assert means.index.is_unique and result.spectra["share"].between(0, 1).all()
assert imported.filter(like="correlation").isna().all().all()  # the study's models: its convention only
print("the study's models, on its convention (covariance):")
print(imported.filter(like="covariance").round(3))
print("\nours, both conventions side by side:")
ours.round(3)

# %% [markdown]
# ## Held-out accuracy of our models

# %%
assert len(result.accuracy) >= 1
result.accuracy.round(2)

# %% [markdown]
# ## Saved for the paper
# The results (`results/cross_model.json`), and the numbers and tables the paper reads
# (`paper/generated/cross_model/`): the mean projections, the dimensionality on both conventions
# (`cross_model_dimensionality`: the study's models on the covariance only) and the held-out accuracies,
# with our models' non-validated axes marked.

# %%
print(f"results: {ws.save(result)}")
