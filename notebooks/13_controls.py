# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · Controls: does an axis measure more than the words and the length of the answers?
#
# A held-out accuracy above chance shows that an axis separates the answers written under the two
# instructions; it does not show that the hidden states add anything to what the text itself shows. Each
# axis is set beside controls fitted on the same calibration answers and scored on the same evaluation
# answers (notebook 01's, read from the run store):
#
# - **words**: a bag-of-words classifier (TF-IDF of words and punctuation + logistic regression);
# - **embedding**: the axis's own estimator on the embedding output (the input of block 0, the answer's
#   tokens before any processing), pooled like the axis's reading;
# - **length**: the token count alone; and the axis refitted with log length regressed out of the states;
# - **random p95**: the 95th percentile of held-out accuracy over 1000 random directions;
# - **split-half cosine**: the axes fitted on two halves of the calibration questions;
# - **metric rho**: Spearman's ρ between the default (baseline, notebook 02) answers' projections and the
#   axis's text metric;
# - **dose response**: the calibration questions answered under "very" and "slightly" of each pole, with the
#   neutral control in the middle: do the projections order as the instructions do?
#
# **What the axis adds**: its held-out accuracy minus that of its best lexical control (words, embedding,
# length), with its 95 % interval paired by evaluation question (DeLong's). An axis whose interval does not
# lie above 0 is classed **lexical**: it measures what the text already shows, and needs no hidden states.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
dose_questions = (
    None  # calibration questions per axis under each graded instruction (None: quick 5, else all)
)
n_directions = 1000  # random directions of the random-direction control
seed = 0
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import numpy as np

from styleprobe.analyses import controls
from styleprobe.analyses.judge.analysis import JudgeResult
from styleprobe.report import style
from styleprobe.report.plots import axis_label
from styleprobe.result import ResultsError
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
result = controls.run(
    ws,
    dose_questions=dose_questions,
    n_directions=n_directions,
    seed=seed,
    batch_size=batch_size,
)
table, validated = result.table, result.validated()
print(
    f"{ws.describe()}\n{result.n_calibration} calibration and {result.n_evaluation} evaluation questions per"
    f" axis and pole; {result.dose_questions} questions per graded instruction\n{controls.summary(result)}"
)

# %% [markdown]
# ## Held-out accuracy of the axis and of its controls
# *estimator*, *reading*: what fitted the axis and where it reads (the axes file); the embedding control uses
# the same estimator and the same pooling. † the axis failed held-out validation (notebook 01). *gain*: the
# axis's accuracy minus its best lexical control's, with its 95 % interval; *status*: `beyond` when that
# interval lies above 0, else `lexical`.

# %%
shown = ["estimator", "reading", "accuracy", "text_accuracy", "embedding_accuracy", "length_accuracy"]
shown += ["partialled_accuracy"]
shown += ["random_p95", "best_control", "gain", "gain_ci_low", "gain_ci_high", "control_status", "validation"]
assert set(table["control_status"]) <= {"beyond", "lexical"}
assert set(result.beyond()) <= set(validated)
table[shown].rename(index=lambda n: axis_label(n, n in validated))

# %%
methods = {
    "accuracy": "axis (hidden states)",
    "text_accuracy": "words (TF-IDF)",
    "embedding_accuracy": "embedding output",
    "length_accuracy": "token count",
    "partialled_accuracy": "axis, length partialled out",
}
names = list(table.index)
y = np.arange(len(names))
fig, ax = style.figure("full", 0.45 * len(names) + 1.2)
for k, (column, text) in enumerate(methods.items()):
    offset = (k - 2) * 0.12
    ax.scatter(table[column], y + offset, s=14, label=text, zorder=3)
low, high = table["accuracy_ci_low"], table["accuracy_ci_high"]
ax.hlines(y - 0.24, low, high, color="0.3", lw=1, label="axis: 95 % interval")
ax.scatter(table["random_p95"], y, marker="|", s=120, color="0.5", label="random directions: 95th percentile")
ax.axvline(0.5, color="0.7", lw=0.8, ls="--")
ax.set_yticks(y, [axis_label(n, n in validated) for n in names])
ax.invert_yaxis()
ax.set_xlabel(style.label("pairwise_accuracy"))
ax.set_xlim(0, 1.02)
style.source_note(fig, ws.slug, ws.profile.name, legend=True, ncol=3)
ws.save_figure(fig, "controls_accuracy")

# %% [markdown]
# ## Stability and convergent validity
# *split-half cosine*: mean over 20 random halvings of the calibration questions of the cosine between the
# two halves' axes. *metric rho*: Spearman's ρ between the baseline answers' projections and the axis's text
# metric (both averaged over seeds per question), with its Bonett-Wright 95 % interval. Where a judge rated
# the baseline answers (notebook 05), its ρ with the projections is shown beside it.

# %%
convergent = ["split_half_cosine", "metric", "metric_n", "metric_rho", "metric_ci_low", "metric_ci_high"]
frame = table[[c for c in convergent if c in table]]
try:
    judge = JudgeResult.load(ws).agreement[["rho", "ci_low", "ci_high"]].add_prefix("judge_")
    frame = frame.join(judge)
except ResultsError:
    print("no judge ratings: notebook 05 has not run for this model")
frame.rename(index=lambda n: axis_label(n, n in validated))

# %% [markdown]
# ## Dose response
# Mean projection (normalised: ±1 are the held-out means of set A's poles) of the answers under each graded
# instruction, with the neutral control at 0. *dose slope*: the mean over questions of each question's
# least-squares slope of projection on level, with its 95 % t interval over questions (the trend test);
# *ordered*: the five level means increase at every step.

# %%
table[["dose_questions", "dose_slope", "dose_slope_low", "dose_slope_high", "dose_rho", "dose_ordered"]]

# %%
levels = result.dose_levels
fig, panels = style.panels(len(levels), sharex=True)
for ax, (name, means) in zip(panels, levels.iterrows(), strict=True):
    ax.plot(means.index.astype(int), means.to_numpy(float), marker="o", ms=3)
    ax.axhline(0, color="0.7", lw=0.8, ls="--")
    ax.set_title(axis_label(name, name in validated))
    ax.set_xticks([-2, -1, 0, 1, 2])
fig.supxlabel("instruction grade (−2 very negative … 0 none … +2 very positive)")
fig.supylabel(style.label("projection"))
style.source_note(fig, ws.slug, ws.profile.name)
ws.save_figure(fig, "dose_response")

# %% [markdown]
# ## Saved for the paper
# The results section, and the numbers and tables the paper reads (`paper/generated/<model>/`).

# %%
print(f"results: {ws.save(result)}")
assert len(result.paper_tables()["controls_table"].frame) == len(table)
