# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
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

# %% tags=["parameters"]
root = None  # folder holding results/ and figures/ (None: the repository's)
include_imported = True

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from styleprobe.analyses import cross_model
from styleprobe.report.plots import radar
from styleprobe.workspace import Workspace

ws = Workspace.cross_model(root=root)
result = cross_model.run(ws, include_imported=include_imported)
print(f"{len(result.ours)} of our models, {result.n_imported} imported")

# %% [markdown]
# ## Mean projection per model and axis

# %%
means = result.means
fig, ax = plt.subplots(figsize=(8, 0.35 * len(means) + 1.5))
sns.heatmap(means, cmap="RdBu_r", vmin=-1, vmax=1, annot=True, fmt=".2f", ax=ax, cbar_kws={"shrink": 0.6})
ax.set_title("mean baseline projection (imported rows: uncentred scale)")
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
# Eigenvalues of the correlation matrix of the questions × axes projections, as shares of the total.
# Axes that never vary (saturated at a clip value for every question) are dropped first.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
sns.lineplot(data=result.spectra, x="component", y="share", hue="model", marker="o", ax=ax, legend=n < 20)
ax.set_ylabel("share of variance")
if ax.get_legend() is not None:
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
ws.save_figure(fig, "pca_spectra")
assert means.index.is_unique and result.spectra["share"].between(0, 1).all()
result.pc1_share.round(3)

# %% [markdown]
# ## Held-out accuracy of our models

# %%
assert len(result.accuracy) >= 1
result.accuracy.round(2)

# %% [markdown]
# ## Saved for the paper
# The results (`results/cross_model.json`), and the numbers and tables the paper reads
# (`paper/generated/cross_model/`): the mean projections with each model's PC1 share, and the held-out
# accuracies.

# %%
print(f"results: {ws.save(result)}")
