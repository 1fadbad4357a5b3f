# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Steering with the calibrated axes
#
# If an axis is a direction the model uses, adding it to the residual stream while the model writes should
# move the style of the text. For each axis we add `alpha × scale × axis` (scale: the axis's normalisation
# scale, so alpha is in normalised projection units per block) to the output of the steered blocks while
# the model writes, over a range of alpha, and measure on the generated text:
# - the **projection shift**: the answers are read back *without* steering (a steered residual projects on
#   the axis trivially; the text read by the unsteered model is what counts), minus the unsteered answer to
#   the same question;
# - the **text-level shift** of the axis's lexicon metric;
# - **degradation**: perplexity under the unsteered model above twice the unsteered answers' median, or more
#   than half of the word 3-grams repeated.
#
# Steerability is the slope of the projection shift on alpha over the alphas whose answers are mostly not
# degraded. Do dead zones (notebook 08) predict which axes cannot be steered? Run 01 and 08 first.
#
# Every axis is steered and shown; only the axes that pass validation (held-out accuracy of notebook 01,
# not dead in notebook 08) are interpreted, the others carry a †. Answers stop at `max_new_tokens`; the
# share cut off there is printed beside the results.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override; questions per alpha: {"n_benchmark": 10}
alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]  # per block, in normalised units (±1.5 degraded most SmolLM2 answers)
steer_layers = None  # decoder blocks to steer (None: the blocks the axes read)
max_new_tokens = None  # None: the profile's baseline budget
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import seaborn as sns

from styleprobe.analyses import steering
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

# %% [markdown]
# ## The sweep
# Every axis at every alpha on the same questions (alpha 0, the unsteered answers, once for all axes); the
# curves are means over the questions.

# %%
result = steering.run(ws, alphas, layers=steer_layers, max_new_tokens=max_new_tokens, batch_size=batch_size)
summary = result.summary
label = {n: mark(n, n in result.validated) for n in result.steerability.index}  # † failed validation
print(
    f"{ws.describe()}; steered blocks {result.layers}, {result.n_questions} questions per alpha: "
    f"{len(summary) * result.n_questions} answers, {summary['degraded'].mean():.0%} degraded, "
    f"{summary['cut'].mean():.0%} cut off at the budget of {result.max_new_tokens} tokens"
)
summary = summary.assign(axis=summary["axis"].map(label))
shown = summary.assign(axis=summary["axis"].map(axis_label))
fig, (a, b, c) = style.figure("full", 2.6, ncols=3)
for ax, column, title in (
    (a, "shift", "projection (read unsteered)"),
    (b, "text_shift", "the axis's text metric"),
    (c, "perplexity", "degradation"),
):
    sns.lineplot(
        shown, x="alpha", y=column, hue="axis", marker="o", ms=3, errorbar=None, ax=ax, legend=ax is a
    )
    ax.set_title(title)
    ax.set_ylabel(style.label(column))
    ax.set_xlabel("")
c.set_yscale("log")
style.log_ticks_plain(c.yaxis)
fig.supxlabel(style.label("alpha"))
style.source_note(fig, ws.slug, ws.profile.name, legend=True)
ws.save_figure(fig, "steering_sweep")
assert summary["repetition"].between(0, 1).all() and (summary["perplexity"].dropna() > 0).all()
summary.set_index(["axis", "alpha"]).round(3)

# %% [markdown]
# ## Steerability, and do dead zones predict it?
# Steerability per axis: the slope of the projection shift on alpha over the usable alphas (at most half of
# their answers degraded). Across every model-axis pair with both steering and dead-zone results, the
# Spearman correlation between dead-zone severity and steerability (a negative ρ: dead zones resist
# steering). The most steerable axis is named among the validated axes only.

# %%
relation = result.severity_vs_steerability
print(
    f"Spearman rho(severity, steerability) over {relation['n_pairs']} model-axis pairs: "
    f"{relation['rho']:.3f} (p = {relation['p']:.3g})"
)
numbers = result.paper()
print(f"most steerable validated axis: {numbers['best_axis']}; not interpreted: {numbers['not_interpreted']}")
result.steerability.rename(index=label)

# %% [markdown]
# ## Saved for the paper
# The results section, and the numbers and the table the paper reads (`paper/generated/<model>/`).

# %%
print(f"results: {ws.save(result)}")
