# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Dead zones and text-level validation
#
# A *dead zone* is an axis a model cannot express: its style instructions do not separate the answers, or
# the direction they leave is not stable. This notebook scores every axis of this model (and of every other
# model with results) with a composite severity, checks how much the ranking depends on the weights,
# classifies the dead zones, and asks whether the **text** itself changes with the instruction, independent
# of hidden states. Inputs come from notebooks 01 (calibration) and 07 (stability, benchmark); run those
# first.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
n_draws = 1000  # Dirichlet weight draws for the ranking stability
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import numpy as np
import seaborn as sns

from styleprobe.analyses import deadzones, textmetrics
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
# ## Severity
# Each input becomes a *badness* in [0, 1] (0 healthy, 1 dead), and severity is their weighted mean with the
# original study's weights (accuracy 0.3, d′ 0.3, stability 0.2, SNR 0.2); a missing input is skipped and
# the other weights renormalised. The transforms:
#
# | input | bad = 0 at | bad = 1 at | transform |
# | --- | --- | --- | --- |
# | held-out pairwise accuracy *a* | ≥ 0.9 | ≤ 0.5 (chance) | clip((0.9 − a) / 0.4, 0, 1) |
# | held-out d′ | ≥ 2 | ≤ 0 | clip(1 − d′ / 2, 0, 1) |
# | mean A/B/C axis cosine *c* | ≥ 0.9 | ≤ 0 | clip((0.9 − c) / 0.9, 0, 1) |
# | baseline SNR *s* (notebook 07) | ≥ 2 | 0 | clip(1 − s / 2, 0, 1) |
#
# An axis is flagged **dead** at severity ≥ 0.5.
#
# ## Classification
# Checked in this order (thresholds of `deadzones.ClassThresholds`; the notebook prints the rule with the
# values used): **hard**: held-out accuracy below 0.65 — the instructions do not separate the poles;
# **soft**: separable, but the mean A/B/C stability cosine is below 0.7 — the direction depends on the
# calibration set; **unvalidated**: an axis that failed held-out validation (notebook 01: the interval of its
# accuracy includes 0.5) or is flagged dead gets no further class, since the next two describe how the model
# follows instructions; **asymmetric**: in the benchmark's system-prompt scenarios the model moves towards
# one pole by at least 0.25 (normalised units) and towards the other by less than a quarter of that;
# otherwise **healthy**. The shifts are paired against the same questions answered with no system prompt
# (the benchmark's pass rule also compares each instruction with the opposite one; the class uses the
# movement from the default). The classes compare point estimates with thresholds and carry no test:
# with few questions a class can change with sampling noise, which is why only validated axes get the two
# that describe behaviour. The table's `validation` column is the held-out status; axes that are not
# validated, or dead, are marked † in the figures and tables.
#
# ## How much does the ranking depend on the weights?
# All model-axis pairs with results are ranked by severity (1 = most dead). The weights are then drawn
# uniformly from the simplex (Dirichlet(1, 1, 1, 1)) `n_draws` times; per pair, the 5-95 % range of its rank
# and the share of draws that keep it among the k most severe (k = the number flagged dead at the default
# weights, or 3). A pair whose rank barely moves is a dead zone whatever the weighting.

# %%
zones = deadzones.run(ws, n_draws=n_draws)
table = zones.table
print(zones.summary())
assert table["severity"].dropna().between(0, 1).all()
assert set(table["class"]) <= set(deadzones.CLASSES)
assert (table["dead"] == (table["severity"] >= deadzones.DEAD_SEVERITY)).all()
assert not table.loc[~deadzones.validated(table), "class"].isin(["asymmetric", "healthy"]).any()
table.rename(index=lambda n: mark(n, n in zones.validated())).round(3)

# %%
ranked = zones.ranking.sort_values("default_rank")
print(
    f"{len(ranked)} model-axis pairs from {ranked['model'].nunique()} models; mean Spearman of resampled "
    f"severities with the default ones: {zones.ranking_attrs['mean_spearman']:.3f}; "
    f"k = {zones.ranking_attrs['k']}"
)
shown = ranked.head(60)  # the most severe pairs that fit a page at a legible size
fig, ax = style.figure("full", 0.13 * len(shown) + 1.3)
valid = (shown["validation"] == "valid") & (shown["severity"] < deadzones.DEAD_SEVERITY)
labels = [f"{m} · {axis_label(a, ok)}" for m, a, ok in zip(shown["model"], shown["axis"], valid, strict=True)]
y = np.arange(len(shown))
ax.hlines(y, shown["rank_p05"], shown["rank_p95"], color="grey", label="5-95 % of ranks over weight draws")
ax.plot(shown["default_rank"], y, "o", color="C1", label="default weights")
ax.plot(shown["mean_rank"], y, "|", color="k", ms=6, label="mean over draws")
ax.set_yticks(y, labels)
ax.set_ylim(len(shown) - 0.5, -0.5)
ax.set_xlabel("severity rank (1 = most dead)")
most = f"the {len(shown)} most severe of {len(ranked)} pairs" if len(shown) < len(ranked) else "all pairs"
ax.set_title(f"{most}; †: not validated or dead")
style.source_note(fig, ws.slug, ws.profile.name, legend=True, ncol=2)
ws.save_figure(fig, "dead_zone_ranking")
ranked.head(15).round(3)

# %% [markdown]
# ## Text-level validation
# From the generated text alone (calibration answers of set A, both splits): for each axis one lexicon
# metric expected to be higher at the first pole (its `text_metric` in `data/axes.yaml`: warmth words, word
# count, certainty minus hedging markers, proactive offers, empathy minus analytical words, formality
# markers minus casual markers and contractions, patience minus irritation words; the word lists are in
# `data/lexicon.yaml`), and Cohen's d between the two poles' answers, plus d of the answer length in
# tokens. Across every model-axis pair with results: does the probe separate best where the text changes
# most (Spearman ρ between held-out accuracy and text d)?

# %%
text = textmetrics.run(ws, dead=zones.dead_axes())
text.effects.round(3)

# %%
pooled = textmetrics.pooled_effects(ws, text.effects)
assert len(pooled) == text.n_pairs
rho, p = text.spearman_rho, text.spearman_p
print(f"Spearman rho(accuracy, text d) over {text.n_pairs} model-axis pairs: {rho:.3f} (p = {p:.3g})")
fig, ax = style.figure("two_thirds", 3.0)
sns.scatterplot(pooled, x="d", y="accuracy", hue="model", ax=ax, s=14)
for row in pooled[pooled["model"] == ws.slug].itertuples():
    ax.annotate(axis_label(row.axis, row.axis in zones.validated()), (row.d, row.accuracy), fontsize=7)
ax.axhline(0.5, color="grey", ls=":", lw=0.8)
ax.set_xlabel("text-level Cohen's d, first pole − second pole (pooled SDs)")
ax.set_ylabel("held-out pairwise accuracy (share of pairs)")
why = "fewer than 3 pairs" if text.n_pairs < 3 else "constant accuracy or text d"
value = f"ρ = {rho:.2f} (p = {p:.2g})" if np.isfinite(rho) else f"ρ undefined ({why})"
ax.set_title(f"Spearman {value}\nover {text.n_pairs} model-axis pairs")
style.source_note(fig, ws.slug, ws.profile.name, legend=True, ncol=2)
ws.save_figure(fig, "text_vs_probe")

# %% [markdown]
# ## Saving
# Both results go to `results/<model>.json` (sections `dead_zones` and `text_validation`), with the numbers
# and tables the paper reads.

# %%
ws.save(zones)
print(f"results: {ws.save(text)}")
