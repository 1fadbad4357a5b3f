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
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from styleprobe.analyses import cross_model
from styleprobe.protocol import validity
from styleprobe.report.plots import radar
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
fig, ax = plt.subplots(figsize=(8, 0.35 * len(means) + 1.5))
sns.heatmap(means, cmap="RdBu_r", vmin=-1, vmax=1, annot=labels, fmt="", ax=ax, cbar_kws={"shrink": 0.6})
ax.set_title("mean baseline projection (imported rows: uncentred scale; †: axis not validated)")
ws.save_figure(fig, "fingerprint_heatmap")
means.round(3)

# %% [markdown]
# ## Radar grid

# %%
n = len(means)
cols = min(4, n)
fig = plt.figure(figsize=(3.2 * cols, 3.2 * int(np.ceil(n / cols))))
for i, (name, row) in enumerate(means.iterrows()):
    ax = fig.add_subplot(int(np.ceil(n / cols)), cols, i + 1, projection="polar")
    radar({name: row.fillna(0)}, ax=ax, title=name)
fig.tight_layout()
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
palette = dict(zip(dims.index, sns.color_palette("husl", len(dims)), strict=True))  # one colour a model
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, scale in zip(axes, (cross_model.STUDY_SCALE, "correlation"), strict=True):
    frame = result.spectra[result.spectra["scale"] == scale]
    first = scale == cross_model.STUDY_SCALE
    legend = first and n < 20
    sns.lineplot(
        frame, x="component", y="share", hue="model", palette=palette, marker="o", ax=ax, legend=legend
    )
    ax.set_title(f"{scale}: " + ("the study's convention, all models" if first else "our models only"))
    ax.set_ylabel("share of variance")
if axes[0].get_legend() is not None:
    sns.move_legend(axes[0], "upper left", bbox_to_anchor=(2.25, 1), fontsize=7)
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
