# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
# - **separability**: held-out pairwise accuracy and d′ per axis (an axis is *separable* in a model when
#   it passes that model's held-out validation, the predicate of every table), and per-item correctness
#   (an evaluation question counts as correct when the answer under the positive-pole instruction
#   projects above the answer under the negative-pole instruction), paired between the models with
#   McNemar's exact test;
# - **baseline variability**: the spread of the default answers across questions, as the ratio of mean
#   absolute deviations from the median instruct/base with Bonett and Seier's 95 % CI, which holds for skewed
#   and heavy-tailed questions (notebook 12; unclipped projections, each model in units of
#   its own within-pole spread, which does not depend on how far its instructions move answers;
#   the ratio in the pole unit, which does, is shown beside it);
# - **effective dimensionality** of the default answers: the participation ratio of the questions × axes
#   matrix.
#
# Base models have no chat template: they get the plain format
# `"<instruction>\n\nUser: <question>\nAssistant:"` and their answer is cut where they start a new `User:`
# turn. A true pair is one base model and its own instruction-tuned version (e.g. `make notebook NB=03
# MODEL=qwen2.5-7b-instruct` compares Qwen2.5-7B-Instruct with Qwen2.5-7B); the default pair here,
# gemma-3-270m base and SmolLM2-135M-Instruct, is what runs without a model hub, and it is not a true pair.
# The results go with the instruct model's.

# %% tags=["parameters"]
base_model = "gemma3-270m-base"  # preset, local directory, .gguf file, hub id or random:<arch>
instruct_model = "smollm2-135m-instruct"
revision = None  # of the instruct model; the base model loads its default revision
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seeds = [0, 1, 2, 3, 4]  # baseline repetitions, averaged per question (as in notebook 02)
seed = 0  # calibration sampling seed
alpha = 0.05  # level of the per-axis separability test and of McNemar's test
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import numpy as np
import pandas as pd

from styleprobe.analyses import base_vs_instruct
from styleprobe.engine.chat import PLAIN_ASSISTANT, build_prompt
from styleprobe.report import style
from styleprobe.report.plots import axis_label
from styleprobe.workspace import Workspace

ws = Workspace.open(
    instruct_model,
    profile=profile,
    revision=revision,
    device=device,
    dtype=dtype,
    root=root,
    sizes=sizes,
    model_args=model_args,
)
base = Workspace.open(
    base_model, profile=profile, device=device, dtype=dtype, root=root, sizes=sizes, model_args=model_args
)
models = {"base": base, "instruct": ws}
pair = f"{base.slug} (base) vs {ws.slug} (instruct)"
for role, w in models.items():
    prompt_format = "chat template" if w.model.uses_chat_template else "plain"
    print(f"{role}: {w.describe()}; prompt format: {prompt_format}")

# %% [markdown]
# ## The prompts each model sees
# The same calibration item (first axis, positive pole, first calibration question) and the same baseline
# question, in each model's format.

# %%
axis_name, spec = next(iter(ws.protocol.axes.items()))
question = ws.protocol.questions.calibration_set("A")[axis_name][0]
baseline_question = ws.protocol.questions.baseline[0]
for role, w in models.items():
    calibration_prompt = build_prompt(w.model, question, spec.instruction(+1, "A"))
    prompts = [calibration_prompt, build_prompt(w.model, baseline_question)]
    for kind, text in zip(["calibration", "baseline"], prompts, strict=True):
        print(f"===== {role} ({w.slug}), {kind} prompt =====\n{text}")
        assert w.model.uses_chat_template or text.endswith(PLAIN_ASSISTANT)
if base.model.uses_chat_template:
    print(f"Note: {base_model} has a chat template, so it is treated as a chat model, not a base model.")

# %% [markdown]
# ## Are the two models a true pair?
# Instruction tuning is isolated only when the instruct model was tuned from this very base model. Two
# models of different families also differ in architecture, tokenizer and pre-training data, and every
# difference below mixes those with the effect of tuning.

# %%
result = base_vs_instruct.run(base, ws, seeds=seeds, seed=seed, alpha=alpha, batch_size=batch_size)
shape = {role: (w.model.n_layers, w.model.hidden_size) for role, w in models.items()}
family = result.families
if result.same_family:
    print(f"Both models are {family['base']} with {shape['base'][0]} blocks of width {shape['base'][1]}.")
else:
    print(
        f"The two models are of DIFFERENT families: base {family['base']} ({shape['base'][0]} blocks, width "
        f"{shape['base'][1]}) vs instruct {family['instruct']} ({shape['instruct'][0]} blocks, width "
        f"{shape['instruct'][1]}). Differences below are not the effect of instruction tuning alone."
    )

# %% [markdown]
# ## Held-out separation, side by side

# %%
shown = ["pairwise_accuracy", "sign_accuracy", "dprime", "empty_answers"]
evaluation = pd.concat({role: ev[shown] for role, ev in result.evaluation.items()}, axis=1)
evaluation

# %%
assert evaluation.xs("pairwise_accuracy", axis=1, level=1).stack().between(0, 1).all()
fig, (left, right) = style.figure("full", 0.25 * len(evaluation) + 1.3, ncols=2, sharey=True)
evaluation.xs("pairwise_accuracy", axis=1, level=1).rename(index=axis_label).plot.barh(ax=left, legend=False)
left.axvline(0.5, color="grey", lw=1, ls="--")
left.set_xlabel("held-out pairwise accuracy (0.5 = chance)")
left.set_ylabel("")
evaluation.xs("dprime", axis=1, level=1).rename(index=axis_label).plot.barh(ax=right, legend=False)
right.axvline(0, color="grey", lw=1)
right.set_xlabel("held-out d′ (pooled SDs)")
left.invert_yaxis()
style.source_note(fig, pair, ws.profile.name, legend=True)
ws.save_figure(fig, "base_vs_instruct_separation")

# %% [markdown]
# ## Per-item correctness and McNemar's test
# Per axis, the share of evaluation questions whose positive answer projects above its negative answer,
# with a one-sided exact binomial test against 1/2 (`above_chance` when p < alpha; shown, it decides
# nothing: separable means validated). McNemar's exact
# test compares the two models on the same items: only the discordant items count (correct for one model
# only); p is the two-sided binomial probability of a split at least that uneven.

# %%
pooled, per_axis = result.mcnemar_pooled, result.mcnemar_per_axis
correctness = pd.concat(
    [result.per_item_correctness[role][["share", "above_chance"]].add_prefix(f"{role}_") for role in models]
    + [
        per_axis[["only_first", "only_second", "p_value"]].set_axis(
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
assert 0 <= pooled["p_value"] <= 1 and per_axis["p_value"].between(0, 1).all()
correctness

# %% [markdown]
# ## Baseline variability
# Mean absolute deviation from the median across baseline questions (seed-averaged, unclipped) per axis
# and model, each in units of that model's within-pole spread, and the ratio instruct/base with
# Bonett and Seier's 95 % CI (dots). A ratio below 1 with its CI means the tuned model's default
# answers vary less along that axis. Crosses: the same ratio in the pole unit (half the held-out pole
# separation), which also shrinks when the tuned model merely follows the style instructions more
# strongly; conclusions rest on the dots, and only on axes validated in both models (others marked †).

# %%
variability = result.variability
assert np.isfinite(variability[["ratio", "ci_low", "ci_high"]].to_numpy()).all()
fig, ax = style.figure("two_thirds", 0.25 * len(variability) + 1.3)
y = np.arange(len(variability))
err = np.abs(variability[["ci_low", "ci_high"]].to_numpy().T - variability["ratio"].to_numpy())
ax.errorbar(variability["ratio"], y, xerr=err, fmt="o", capsize=2, label="within-pole spread unit (95 % CI)")
ax.plot(result.variability_poles["ratio"], y, "x", color="grey", label="pole unit")
ax.axvline(1, color="grey", lw=1, ls="--")
ax.set_yticks(y, [axis_label(n, n in result.validated) for n in variability.index])
ax.invert_yaxis()
ax.set_xscale("log")
style.log_ticks_plain(ax.xaxis)
ax.set_xlabel("mean absolute deviation across questions,\ninstruct / base (ratio, log scale)")
style.source_note(fig, pair, ws.profile.name, legend=True)
ws.save_figure(fig, "base_vs_instruct_variability")
variability

# %% [markdown]
# ## Effective dimensionality of the default answers
# Participation ratio (Σλ)²/Σλ² of the questions × axes correlation matrix: from 1 (all axes move
# together) to the number of axes.

# %%
dimensionality = result.dimensionality
assert (
    (dimensionality["participation_ratio"] >= 1 - 1e-9)
    & (dimensionality["participation_ratio"] <= dimensionality["n_axes"] + 1e-9)
).all()
dimensionality

# %% [markdown]
# ## Summary: what changes with instruction tuning

# %%
summary = result.summary
findings = {
    "whose baseline variability is lower after tuning (CI below 1)": result.lower_variability_after_tuning,
    "whose baseline variability is higher after tuning (CI above 1)": result.higher_variability_after_tuning,
    "separable (validated) only after tuning": result.separable_only_after_tuning,
    "separable only in the base model": summary.index[summary["separable"] == "only base"].tolist(),
}
for what, names in findings.items():
    print(f"axes {what}: {', '.join(names) or 'none'}")
if not result.same_family:
    print("Reminder: the two models are of different families, so these are not effects of tuning alone.")
summary

# %% [markdown]
# ## Saved for the paper
# The results section (with the instruct model's), and the numbers and the table the paper reads
# (`paper/generated/<instruct model>/`).

# %%
print(f"results: {ws.save(result)}")
