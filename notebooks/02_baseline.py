# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Baseline: the model's default style
#
# The model answers the baseline questions with **no system prompt**, under several sampling seeds. Each
# answer is projected onto the axes calibrated in notebook 01 (run it first). We report the per-axis mean
# with a bootstrap 95 % CI over questions, test-retest reliability across seeds, and how the axes
# co-vary across questions. `styleprobe fingerprint` computes and saves the same result.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seeds = [0, 1, 2, 3, 4]  # test-retest needs several; the CLI fingerprint uses the profile's seeds
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import seaborn as sns

from styleprobe.protocol import fingerprint
from styleprobe.report import style
from styleprobe.report.plots import axis_label, radar
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
axes = ws.axes()  # notebook 01's
result = fingerprint.run(ws, axes=axes, seeds=seeds, batch_size=batch_size)
n = len(result.per_question)
print(f"{len(seeds) * n} answers ({len(seeds)} seeds x {n} questions), {result.n_empty} empty")

# %% [markdown]
# ## Fingerprint
# With the default `crossfit` normalisation, +1 and −1 are where the model's held-out answers land on
# average when told to take the first or the second pole, and 0 is halfway (notebook 01). The position
# is the mean over questions (values averaged over seeds first) with a 95 % interval that carries the error
# of the fitted centre and scale and the seeds' offsets (`fingerprint.position_ci`); it is not clipped. It is
# in pole units only on a validated axis whose scale is not the floor, elsewhere in within-pole
# standard deviations (column `unit`): a floored scale, or the pole separation of an axis that fails, is
# no unit. Beside it, from notebook 01: *neutral*, where the model's uninstructed answers to the
# calibration questions sit, and *obey ±*, how far each instruction moves answers from them. A position
# near +1 with a small *obey +* means the default is already where the positive instruction takes it.
# Axes that failed held-out validation (`validation` not `valid`) are shown but not interpreted.

# %%
table = result.fingerprint
table

# %%
assert len(table) == len(axes.names) and table["mean"].notna().all()
failed = [name for name in table.index if name not in result.validated()]  # in the table's order
print(f"not interpreted (failed validation): {', '.join(failed) or 'none'}")

# %%
fig = style.empty_figure("full", 3.4)
ax_radar = fig.add_subplot(1, 2, 1, projection="polar")
ax_heat = fig.add_subplot(1, 2, 2)
shown = table[["mean", "ci_low", "ci_high"]].clip(-1, 1)
radar(
    {ws.slug: shown["mean"]},
    ax=ax_radar,
    title="position with 95 % CI (shown within ±1)",
    valid=result.validated(),
    intervals={ws.slug: (shown["ci_low"], shown["ci_high"])},
)
sns.heatmap(
    result.per_question.T.rename(index=lambda n: axis_label(n, n in result.validated())),
    cmap="RdBu_r",
    center=0,
    ax=ax_heat,
    xticklabels=5,  # every fifth question: two-digit labels collide otherwise
    cbar_kws={"label": style.label("projection")},
)
ax_heat.set_xlabel("baseline question (index)")
ax_heat.set_title("projection per question (mean over seeds)")
style.source_note(fig, ws.slug, ws.profile.name)
ws.save_figure(fig, "baseline_fingerprint")

# %% [markdown]
# ## Test-retest reliability across seeds
# ICC(2,1) per axis on the questions × seeds matrix: two-way random effects (seeds are a random sample of
# runs), absolute agreement, single run. The CI is the F-based interval (McGraw & Wong). It is computed on
# the unclipped projections (clipping squeezes the questions beyond a pole together and so shrinks the
# between-question variance); notebook 07 reports this ICC too. With one seed it is undefined and left out.

# %%
result.icc

# %% [markdown]
# ## Behavioural vs geometric correlation
# Left: correlation of the axes' projections across questions (do answers that score warm also score
# verbose?). Right: cosine between the axis vectors themselves. Axes can be geometrically near-orthogonal
# and still co-vary in behaviour.

# %%
behaviour = result.behavioural_correlation
geometry = result.axis_cosines.loc[behaviour.index, behaviour.columns]
fig, (a, b) = style.figure("full", 3.3, ncols=2, sharey=True)
for ax_, mat, title in [(a, behaviour, "correlation across questions"), (b, geometry, "axis cosine")]:
    shown = mat.rename(index=axis_label, columns=axis_label)
    sns.heatmap(shown, vmin=-1, vmax=1, cmap="RdBu_r", annot=True, fmt=".2f", ax=ax_, cbar=False)
    ax_.set_title(title)
style.source_note(fig, ws.slug, ws.profile.name)
ws.save_figure(fig, "baseline_correlations")

# %% [markdown]
# ## How many independent dimensions?
# PCA of the questions × axes matrix (columns standardised): the share of the first component and the
# participation ratio (Σλ)²/Σλ², which runs from 1 (one underlying dimension) to the number of axes.

# %%
pr, usable = result.participation_ratio, len(behaviour)
print(f"PC1 share {result.pc1_share:.2f}, participation ratio {pr:.2f} of {usable} axes")
assert 1 - 1e-9 <= pr <= usable + 1e-9

# %% [markdown]
# ## Saved for the paper
# The results section (read by notebooks 04, 07 and 10 and by `styleprobe compare`), and the numbers and
# the fingerprint table the paper reads (`paper/generated/<model>/`).

# %%
print(f"leans (validated axes whose CI excludes 0): {', '.join(result.leans()) or 'none'}")
print(f"results: {ws.save(result)}")
