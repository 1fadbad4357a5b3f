# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
# last conflict turn. Per axis: the mean slope with its t 95 % CI over scenarios and a one-sample t-test
# against 0. Only the axes that pass validation (held-out accuracy of notebook 01, not dead in notebook 08;
# run both first) are tested; the others are shown with a † and not interpreted. Over the tested axes the
# p-values are Holm-adjusted, so the chance of calling any drift significant when none drifts stays at most
# `alpha`. A drift counts as significant only when its Holm-adjusted p < `alpha` **and** |mean slope| >
# 2 × |mean slope of the controls|.
#
# Every answer has at most `max_new_tokens` tokens (32 in the `quick` profile): an answer cut off at the
# budget is measured on its opening only, so the share cut off is printed beside the drift numbers.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
# single sizes overriding the profile's drift sizes (None keeps the profile's value)
n_scenarios = None
n_controls = None
n_conflict = None
n_recovery = None
max_new_tokens = None
seed = 0
alpha = 0.05  # family-wise error rate of the drift tests over the validated axes (Holm)
factor = 2.0  # significance needs |mean slope| > factor * |control mean slope|
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)
imported_dir = None  # the original study's extended_drift files; None: the protocol's mood_axis copy

# %%
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from styleprobe.analyses import drift
from styleprobe.protocol.profiles import drift_profile
from styleprobe.protocol.validity import mark
from styleprobe.report import style
from styleprobe.report.plots import axis_label
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model,
    profile=profile,
    revision=revision,
    device=device,
    dtype=dtype,
    root=root,
    sizes=sizes,
    model_args=model_args,
)
drift_sizes = drift_profile(
    ws.profile,
    n_scenarios=n_scenarios,
    n_controls=n_controls,
    n_conflict=n_conflict,
    n_recovery=n_recovery,
    max_new_tokens=max_new_tokens,
)
print(f"{ws.describe()}\n{drift_sizes}")

# %%
dialogues = drift.converse(ws, drift_sizes, seed=seed, batch_size=batch_size)
n_turns = drift_sizes.n_turns
print(f"{len(dialogues.conversations)} conversations x {n_turns} turns = {len(dialogues.answers)} answers")

# %% [markdown]
# One exchange at the height of the conflict: the last conflict turn of the first scenario.

# %%
first = dialogues.conversations[0]
peak = dialogues.turns[drift_sizes.n_conflict].records.iloc[0]
print(f"[{first.category} / {first.topic}]\nUSER: {peak['question']}\nMODEL: {peak['response'][:600]}")

# %%
imported = drift.imported_summaries(ws.protocol, imported_dir)
result = drift.run(ws, dialogues, alpha=alpha, factor=factor, imported=imported)
print(
    f"{result.n_empty} empty answers (NaN, left out); {result.n_cut} of {result.n_answers}"
    f" ({result.n_cut / result.n_answers:.0%}) cut off at the budget of {drift_sizes.max_new_tokens} tokens"
    f" and measured on their opening only; {result.clipped:.1%} of the projections at or beyond ±1"
)
assert result.n_answers == len(dialogues.conversations) * n_turns
tested = set(result.tested)
label = {n: axis_label(n, n in tested) for n in ws.protocol.names}  # † failed validation
print(f"tested (passed validation): {', '.join(result.tested) or 'none'}")

# %% [markdown]
# ## Trajectories
# Mean projection per turn over scenarios (conflict) and over controls, with t 95 % CI bands. The
# dashed line separates the conflict turns from the recovery turns; † marks an axis that failed validation.

# %%
names = ws.protocol.names
traj = pd.DataFrame(result.trajectories)
kinds = {"conflict": "conflict scenarios", "control": "neutral controls"}
fig, panels = style.panels(len(names), sharex=True, panel_height=1.5)
for ax, name in zip(panels, names, strict=True):
    for kind, colour in zip(drift.KINDS, ("C1", "0.45"), strict=True):
        t = traj[(traj["axis"] == name) & (traj["kind"] == kind)]
        ax.plot(t["turn"], t["mean"], marker="o", ms=2.5, color=colour, label=f"{kinds[kind]} (95 % t CI)")
        ax.fill_between(t["turn"], t["ci_low"], t["ci_high"], color=colour, alpha=0.2, lw=0)
    ax.axvline(drift_sizes.n_conflict + 0.5, ls="--", color="k", lw=0.8, label="end of the conflict turns")
    ax.set_title(label[name])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
fig.supxlabel(style.label("turn"))
fig.supylabel(style.label("projection"))
style.source_note(fig, ws.slug, ws.profile.name, legend=True, ncol=3)
ws.save_figure(fig, "drift_trajectories")

# %%
assert len(traj) == len(drift.KINDS) * len(names) * n_turns
valid = traj.dropna(subset=["ci_low"])
assert ((valid["ci_low"] <= valid["mean"] + 1e-12) & (valid["mean"] <= valid["ci_high"] + 1e-12)).all()

# %% [markdown]
# ## Slopes, significance and recovery
# `mean_slope` is in projection units per user turn. `tested`: the axis passed validation. `significant`
# needs a tested axis, a Holm-adjusted `p_holm` below `alpha` and a slope above twice the controls' slope
# in size. `mean_recovery` > 0 means the value rose again once the user calmed down; `mean_residual` is
# what is left relative to the opening turn.

# %%
table = result.summary
shown = ["mean_slope", "ci_low", "ci_high", "p", "p_holm", "control_mean_slope", "tested", "significant"]
shown += ["mean_delta", "mean_recovery", "recovery_ci_low", "recovery_ci_high", "mean_residual"]
print(result.conclusion())
assert list(table.index) == names and table["mean_slope"].notna().all()
assert table["n"].between(1, drift_sizes.n_scenarios).all()
assert set(result.significant) <= tested and table.loc[~table["tested"], "p_holm"].isna().all()
table[shown].rename(index=lambda n: mark(n, n in tested)).round(4)

# %%
fig, ax = style.figure("two_thirds", 0.3 * len(table) + 1.6)
y = np.arange(len(table))
band = factor * table["control_mean_slope"].abs().to_numpy()
ax.barh(y, 2 * band, left=-band, height=0.6, color="0.5", alpha=0.25, label=f"±{factor:g}×|control slope|")
err = np.vstack([table["mean_slope"] - table["ci_low"], table["ci_high"] - table["mean_slope"]])
groups = {
    "significant drift (95 % CI)": ("C1", table["significant"]),
    "not significant (95 % CI)": ("C0", table["tested"] & ~table["significant"]),
    "† failed validation, not tested": ("0.5", ~table["tested"].astype(bool)),
}
for group, (colour, members) in groups.items():
    sel = members.to_numpy(bool)
    if sel.any():
        ax.errorbar(
            table["mean_slope"][sel],
            y[sel],
            xerr=np.nan_to_num(err[:, sel]),
            fmt="o",
            color=colour,
            capsize=2,
            label=group,
        )
ax.scatter(table["control_mean_slope"], y, marker="x", color="k", zorder=3, label="control mean slope")
ax.axvline(0, color="k", lw=0.8)
ax.set_yticks(y, [label[n] for n in table.index])
ax.invert_yaxis()
ax.set_xlabel("mean slope over the conflict turns\n(normalised units per turn)")
style.source_note(fig, ws.slug, ws.profile.name, legend=True, ncol=2)
ws.save_figure(fig, "drift_slopes")

# %% [markdown]
# Mean slope per conflict category (a few scenarios each, so read the pattern rather than the values; †:
# failed validation).

# %%
by_category = result.by_category
limit = float(np.nanmax(np.abs(by_category.to_numpy()))) or 1.0
fig, ax = style.figure("two_thirds", 0.3 * len(by_category) + 1.9)
shown_categories = by_category.rename(index=style.label, columns=label)
sns.heatmap(
    shown_categories,
    cmap="RdBu_r",
    center=0,
    vmin=-limit,
    vmax=limit,
    annot=True,
    fmt=".3f",
    annot_kws={"fontsize": style.SMALL_PT},
    ax=ax,
    cbar_kws={"label": "normalised units per turn"},
)
ax.set_title("mean slope per conflict category")
ax.tick_params(axis="y", rotation=0)
ax.set_ylabel("conflict category")
style.source_note(fig, ws.slug, ws.profile.name)
ws.save_figure(fig, "drift_categories")
by_category.round(4)

# %% [markdown]
# ## Across models
# Every model's drift under this root beside the original study's drift runs, recomputed with the same
# functions from its published per-turn values (labelled imported; the recomputation is checked against the
# study's own published summary). The study had 12 conflict turns (6 for some models), no recovery turns and
# no controls, and its projections are uncentred with a scale floored at 0.1: compare signs and relative
# sizes, not levels. † marks the axes that failed validation for this model.

# %%
cross = drift.slopes_across_models(ws, result, imported)
models = list(dict.fromkeys(cross["model"]))
print(f"{len(models) - len(imported)} of our models, {len(imported)} imported")
assert ws.slug in models
cross.pivot(index="model", columns="axis", values="mean_slope").reindex(index=models, columns=names).round(4)

# %%
shown_axes = [n for n in names if n in set(cross["axis"])]
fig, panels = style.panels(len(shown_axes), sharey=True, panel_height=0.12 * len(models) + 0.7)
for ax, name in zip(panels, shown_axes, strict=True):
    sub = cross[cross["axis"] == name].set_index("model").reindex(models)
    y = np.arange(len(models))
    err = np.vstack([sub["mean_slope"] - sub["ci_low"], sub["ci_high"] - sub["mean_slope"]])
    ax.errorbar(sub["mean_slope"], y, xerr=np.nan_to_num(err.astype(float)), fmt="o", ms=2.5, capsize=1.5)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_title(label[name])
    ax.xaxis.set_major_locator(MaxNLocator(3))
    ax.set_yticks(y, models)
panels[0].invert_yaxis()
fig.supxlabel("mean slope over the conflict scenarios (normalised units per turn, 95 % CI)")
style.source_note(fig, f"{ws.profile.name} profile; imported rows on the study's uncentred scale")
ws.save_figure(fig, "drift_cross_model")

# %% [markdown]
# ## Saved for the paper
# The results section, and the numbers and the table the paper reads (`paper/generated/<model>/`).

# %%
print(f"results: {ws.save(result)}")
