# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Length confound: are the axes just measuring answer length?
#
# Longer answers could push every projection in the same direction and make the axes look correlated.
# We correlate each axis' baseline projection with the answer length in tokens, then regress length out of
# every axis and compare the cross-axis correlations before and after. Uses the answers of notebook 02.
#
# Only the axes that pass validation (held-out accuracy of notebook 01, not dead in notebook 08; run both
# first) are tested, with Holm-adjusted p-values over them; the others are shown with a † and not
# interpreted. An answer cut off at the token budget has the budget's length whatever it would have said,
# so the share cut off is printed beside the correlations.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seeds = None  # None: notebook 02's seeds, whose answers are reused
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import numpy as np
import seaborn as sns

from styleprobe.analyses import length
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
result = length.run(ws, seeds=seeds, batch_size=batch_size)
answers, per_axis = result.answers, result.per_axis
label = {n: mark(n, n in result.validated) for n in per_axis.index}  # † failed validation
print(
    f"{result.n_answers} answers, mean length {result.mean_length:.1f} tokens; {result.n_cut}"
    f" ({result.n_cut / result.n_answers:.0%}) cut off at the budget of {result.budget} tokens"
)

# %% [markdown]
# ## Projection vs length, per axis (Pearson r over all answers)
# `p_holm`: Holm-adjusted over the validated axes (NaN: not tested).

# %%
significant = result.significant()
print(f"length correlates with {len(significant)} of {len(result.validated)} validated axes: {significant}")
assert set(significant) <= set(result.validated)
per_axis.rename(index=label)

# %%
fig, panels = style.panels(len(per_axis), sharey=True)
for ax_, name in zip(panels, per_axis.index, strict=True):
    ax_.scatter(answers["n_tokens"], answers[name], s=5, alpha=0.5)
    ax_.set_title(f"{axis_label(name, name in result.validated)}\nr = {per_axis.loc[name, 'r']:.2f}")
fig.supxlabel(style.label("n_tokens"))
fig.supylabel(style.label("projection"))
style.source_note(fig, ws.slug, ws.profile.name)
ws.save_figure(fig, "length_vs_projection")

# %% [markdown]
# ## Cross-axis correlations before and after regressing length out

# %%
before, after = result.mean_abs_r_before, result.mean_abs_r_after
print(f"mean |r| between axes: {before:.3f} before, {after:.3f} after ({result.relative_change:+.0%})")
assert np.isfinite([before, after]).all()

# %%
fig, (a, b) = style.figure("full", 3.3, ncols=2, sharey=True)
readable = {n: axis_label(n, n in result.validated) for n in per_axis.index}
for ax_, mat, title in [(a, result.before, "raw"), (b, result.after, "with length regressed out")]:
    shown = mat.rename(index=readable, columns=readable)
    sns.heatmap(shown, vmin=-1, vmax=1, cmap="RdBu_r", annot=True, fmt=".2f", ax=ax_, cbar=False)
    ax_.set_title(f"Pearson r across answers\n{title}")
style.source_note(fig, ws.slug, ws.profile.name)
ws.save_figure(fig, "length_confound")

# %% [markdown]
# ## Saved for the paper
# The results section, and the numbers and the per-axis table the paper reads (`paper/generated/<model>/`).

# %%
print(f"results: {ws.save(result)}")
