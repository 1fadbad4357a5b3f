# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
#
# **What 0 and ±1 mean** (the default `crossfit` normalisation): the calibration questions are split into 5
# folds; each answer is projected on the axis fitted without its fold, and −1 and +1 are the mean of these
# held-out projections under the negative and the positive instruction, 0 halfway between them. The
# in-sample projections would put the poles much further apart than new answers ever land (the direction
# is fitted to them), so the unit would depend on the hidden size and the number of answers.
#
# **Neutral control**: the same calibration questions answered with *no* instruction, read like the poles.
# It shows where the model's own default sits between the instructed poles and how far each instruction
# moves answers from it (*obedience*, per pole).

# %% tags=["parameters"]
model = "smollm2-135m-instruct"  # preset, local directory, .gguf file, hub id or random:<arch>
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seed = 0
batch_size = None
normalisation = "crossfit"  # or "median_iqr" (earlier default) or "uncentred_iqr" (the original study)
context = "uninstructed"  # or "instructed": read with the style instruction in context (the original)
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from styleprobe.protocol.calibration import calibrate, calibration_pca, pole_projections, summarise
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

# %%
cal = calibrate(ws, seed=seed, batch_size=batch_size, normalisation=normalisation, context=context)
axes_file = cal.axes.save(ws.axes_file)
result = summarise(ws, cal)
print(f"{ws.describe()}\n{result.n_answers} answers, {result.n_empty} empty; axes saved to {axes_file}")

# %% [markdown]
# ## Held-out separation
# *Pairwise accuracy*: share of (positive, negative) evaluation answers ordered correctly on the axis
# (0.5 = chance), with its 95 % interval. *Sign accuracy*: share on the correct side of 0. *d′*: mean
# difference over the pooled standard deviation. *validation*: `valid` when the accuracy's interval lies
# above 0.6, the least useful accuracy (`weak`: above 0.5 only; `chance`: it includes 0.5); every later table
# marks the other axes with †, and no sentence draws a conclusion from them.

# %%
shown = ["pairwise_accuracy", "accuracy_ci_low", "accuracy_ci_high", "sign_accuracy", "dprime", "validation"]
result.evaluation[shown]

# %%
assert set(result.evaluation.index) == set(cal.axes.names)
assert (result.evaluation["accuracy_ci_low"] <= result.evaluation["pairwise_accuracy"]).all()
assert np.isfinite(cal.result.states).all()
validated = result.validated()
print(f"validated: {', '.join(validated) or 'none'} ({len(validated)} of {len(cal.axes.names)})")

# %% [markdown]
# ## Neutral control: where the default sits, and how far each instruction moves it
# *neutral*: mean position of the uninstructed answers to the calibration questions (cross-fitted, like the
# poles). *obey +* / *obey −*: mean over questions of (positive − neutral) and (neutral − negative), with
# 95 % t intervals, in the axis unit; they add up to 2 on average, and a default at +0.6 is one that the
# positive instruction moves only a little (0.4) and the negative one a lot (1.6).

# %%
result.evaluation[["neutral", "obey_positive", "obey_negative", "obey_positive_low", "obey_negative_low"]]

# %% [markdown]
# ## Geometry: how orthogonal are the axes?

# %%
fig, ax = style.figure("two_thirds", 3.3)
cosines = result.axis_cosines.rename(index=axis_label, columns=axis_label)
sns.heatmap(
    cosines, vmin=-1, vmax=1, cmap="RdBu_r", annot=True, fmt=".2f", ax=ax, cbar_kws={"label": "cosine"}
)
ax.set_title("cosine between axis vectors")
style.source_note(fig, ws.slug, ws.profile.name)
ws.save_figure(fig, "axis_cosines")
print(f"mean |cosine| between different axes: {result.mean_abs_axis_cosine:.3f}")

# %% [markdown]
# ## PCA of the calibration states, coloured by pole
# Each point is one calibration answer. If an instruction pair moves the residual stream, its two poles
# separate along some direction; PCA shows whether that direction is among the largest ones.

# %%
frame, explained = calibration_pca(cal)
poles = {1: "answer under the first pole's instruction", -1: "answer under the second pole's instruction"}
fig, panels = style.panels(len(cal.axes.names), sharex=True, sharey=True)
for ax, name in zip(panels, cal.axes.names, strict=True):
    for pole, text in poles.items():
        part = frame[(frame["axis"] == name) & (frame["pole"] == pole)]
        ax.scatter(part["pc1"], part["pc2"], s=6, alpha=0.7, label=text)
    ax.set_title(axis_label(name))
fig.supxlabel(f"PC1 score (activation units; {explained[0]:.0%} of variance)")
fig.supylabel(f"PC2 score ({explained[1]:.0%})")
style.source_note(fig, ws.slug, ws.profile.name, legend=True)
ws.save_figure(fig, "calibration_pca")

# %% [markdown]
# ## Projections per pole (normalised, not clipped)

# %%
long = pole_projections(cal)
fig, panels = style.panels(len(cal.axes.names), sharey=True)
for ax, name in zip(panels, cal.axes.names, strict=True):
    for pole, text in poles.items():
        values = long.loc[(long["axis"] == name) & (long["pole"] == pole), "value"]
        ax.hist(values, bins=15, histtype="step", label=text)
    ax.set_title(axis_label(name))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
fig.supxlabel(style.label("projection"))
fig.supylabel("answers")
style.source_note(fig, ws.slug, ws.profile.name, legend=True)
ws.save_figure(fig, "calibration_histograms")

# %% [markdown]
# ## Saved for the paper
# The results section, and the numbers and tables the paper reads (`paper/generated/<model>/`): held-out
# scores with the answers' mean length per pole, and the protocol's profiles.

# %%
print(f"results: {ws.save(result)}")
assert len(result.paper_tables()["calibration_evaluation"].frame) == len(cal.axes.names)
