# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · External judge: does an independent reader of the text agree with the projections?
#
# The projections come from the model's hidden states. Here a judge model reads only the **question and
# the answer text** (never the projections, the axes or how the answer was produced) and rates each of the
# 7 axes from −2 to +2 with a one-line rubric per axis (`data/judge.yaml`). We then ask:
#
# 1. **Ratings vs projections**: per axis, Spearman's ρ between the judge's ratings and the projections of
#    the model's default answers (notebook 02's seed 0), with p and a Bonett–Wright 95 % interval; pooled
#    over every validated axis and every model that has judge results, with leave-one-model-out values.
# 2. **Pairwise compliance**: shown the two held-out calibration answers to one question, written under
#    opposite instructions, **in both orders**, does the judge pick the one written under the positive
#    pole, and does it answer by content or by position?
#
# Only axes that pass held-out validation (their held-out pairwise accuracy's interval lies above 0.6, the
# least useful accuracy; `styleprobe.protocol.validity`) and are not dead zones (notebook 08) carry a
# conclusion: the others are marked † and left out of the mean, the agreement rule, the pooled correlation
# and the generated sentences, since their projections are mostly noise. Answers whose projection is
# clipped at ±1 (only under the IQR normalisations, which clip) are flagged: clipping ties the extremes.
# Run notebooks 01, 02, 07 and 08 first.
#
# The judge is either a local transformers model (`judge = "local"`: by default the model under study
# itself, scoring the JSON answer by log-probability) or any OpenAI-compatible endpoint
# (`judge = "openai"`: set `STYLEPROBE_JUDGE_BASE_URL`, `STYLEPROBE_JUDGE_MODEL` and
# `STYLEPROBE_JUDGE_API_KEY` or `OPENAI_API_KEY` in the environment; the key is never a parameter and is
# never written anywhere). Every judge call is cached in the model's run store, so re-running costs
# nothing and an interrupted run resumes.
#
# **Which judge makes this a validation.** With the defaults the model under study judges its own answers.
# For SmolLM2-135M that is a test of the plumbing (prompts, parsing, caching, statistics), not a validation:
# a 135M model cannot read style reliably, and a model rating itself is not independent. A validation
# needs a strong judge of another family: a ≥7B instruct model (`judge_model="Qwen/Qwen2.5-7B-Instruct"` on
# a GPU) or a hosted model through `judge = "openai"`.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
seeds = [0, 1, 2, 3, 4]  # notebook 02's baseline stage, reused; the judge reads the first seed's answers
seed = 0  # the calibration seed of notebook 01 (its held-out answers are the compliance pairs)
batch_size = None
judge = "local"  # "local" (transformers model) or "openai" (endpoint, model and key from the environment)
judge_model = (
    None  # local: preset, hub id or directory (None: the model under study); openai: overrides the env
)
judge_scoring = "logprob"  # local judge: "logprob" (choose each value by likelihood) or "generate"
max_attempts = 3  # asks per judgement when the reply is malformed; then the rating is missing
n_responses = 8  # baseline answers to rate
n_pairs = None  # held-out pairs per axis for the compliance check (None: all)
n_boot = 1000  # bootstrap resamples
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import numpy as np
import pandas as pd

from styleprobe.analyses.judge import analysis
from styleprobe.analyses.judge import stats as judge_stats
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
reader = analysis.open_judge(ws, judge, judge_model, scoring=judge_scoring, max_attempts=max_attempts)
print(f"judge: {reader.describe()}")

# %% [markdown]
# ## The judge's ratings
# The first `n_responses` non-empty default answers (no system prompt) of the first seed are projected onto
# the axes of notebook 01 (normalised as the axes say, clipped to [−1, 1] only by the IQR normalisations)
# and rated, one call per answer. A judgement's status is `ok`, `malformed` (still not the requested JSON
# after `max_attempts` asks), `error` (the endpoint failed after its own retries with backoff), `skipped`
# (not asked after several failed calls in a row), or `partial` (some axes still missing after
# `max_attempts`: the axes that were answered are kept).
# A missing rating is NaN; a later run asks again only for what is missing.
#
# The held-out pairs of the compliance check (below) are judged in the same run.

# %%
result = analysis.run(
    ws,
    reader,
    seeds=seeds,
    seed=seed,
    n_responses=n_responses,
    n_pairs=n_pairs,
    n_boot=n_boot,
    batch_size=batch_size,
)
names = ws.protocol.names
long = pd.DataFrame(result.ratings)
if result.self_judged:
    print("the model under study judges its own answers")
print(f"{result.n_responses} answers rated; judgements:", result.status)
long.pivot(index="q_index", columns="axis", values="rating")[names]

# %%
assert sum(result.status.values()) == result.n_responses and len(long) == result.n_responses * len(names)
assert long["rating"].dropna().between(-2, 2).all()
assert not ws.axes().clips or long["projection"].abs().le(1).all()
if set(result.status) == {"ok"}:
    assert long["rating"].notna().all()

# %% [markdown]
# ## Flags: validation, dead zones and clipped projections
# The validation status of each axis comes from its own held-out evaluation (saved with the axes by
# notebook 01): `valid`, `chance` (the accuracy's 95 % interval includes 0.5), `weak` (above chance but
# not above 0.6), or `dead` (a dead zone of notebook 08's severity table).

# %%
flags = long.groupby("axis", sort=False).agg(clipped=("clipped", "sum"), dead=("dead", "any"))
flags["validation"] = pd.Series(result.validation)
valid = {name: status == "valid" for name, status in result.validation.items()}
assert flags["dead"].to_dict() == {name: result.validation[name] == "dead" for name in names}
print(f"validated axes: {[a for a in names if valid[a]] or 'none'}")
flags.T

# %% [markdown]
# ## Agreement per axis
# Spearman's ρ between rating and projection over the rated answers, its p-value and the Bonett–Wright
# interval (Fisher z with variance (1 + ρ²/2)/(n − 3)). It is not a bootstrap: a judge's ratings are few and
# heavily tied, so many resamples have constant ratings and no ρ, and an interval over the others covers
# far less than 95 %. A ρ that is undefined says why in `undefined` (constant ratings, constant
# projections, fewer than 4 rated answers). `agrees` is the agreement rule (`judge.stats.agreeing`): the
# interval of ρ lies above 0 at the family-wise 5 % level, Bonferroni over the validated axes with a defined
# ρ; it is never claimed on an axis that failed validation. The mean ρ is given only over at least
# `MIN_DEFINED_AXES` validated axes with a defined ρ. `rho_unclipped` leaves out answers clipped at ±1.

# %%
agreement = result.agreement
summary = analysis.agreement_summary(agreement)
assert list(agreement.index) == names
assert agreement["rho"].dropna().between(-1, 1).all()
assert (agreement["n"] + agreement["n_missing"] == result.n_responses).all()
assert (agreement["rho"].isna() == (agreement["undefined"] != "")).all()
assert not agreement.loc[~agreement["valid"], "agrees"].any()
if summary["n_defined_axes"] < judge_stats.MIN_DEFINED_AXES:
    assert np.isnan(summary["mean_rho"])
print(summary["agreement_text"])
agreement

# %%
fig, panels = style.panels(len(names), sharex=True, sharey=True, panel_height=1.7)
jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(long))
for ax_, name in zip(panels, names, strict=True):
    part = long["axis"] == name
    for clipped, marker, text in ((False, "o", "answer"), (True, "x", "answer clipped at ±1")):
        sel = (part & (long["clipped"] == clipped)).to_numpy()
        ax_.scatter(
            long["projection"][sel], long["rating"][sel] + jitter[sel], s=10, marker=marker, label=text
        )
    rho = agreement.loc[name, "rho"]
    reason = agreement.loc[name, "undefined"].replace(" and ", " and\n")
    value = f"ρ = {rho:.2f}" if np.isfinite(rho) else f"ρ undefined:\n{reason}"
    ax_.set_title(f"{axis_label(name, valid[name])}\n({result.validation[name]}) {value}")
    ax_.set_xlim(-1.1, 1.1)
fig.supxlabel(style.label("projection"))
fig.supylabel("judge rating (−2 to +2, jittered)")
style.source_note(fig, f"{ws.slug}, judged by {reader.describe()['model']}", ws.profile.name, legend=True)
ws.save_figure(fig, "judge_ratings")

# %% [markdown]
# ## Which reading context agrees better with the judge?
# Notebook 07 stores the axes of the other reading context in the run store (read with the instruction
# when the model's axes read the answers without it, the default, and the other way round). The same
# answers are projected onto both axis sets and the agreement is shown side by side.

# %%
context, other = result.axes_context, result.other_context
if result.agreement_other_context is not None:
    both = {context: agreement["rho"], other: result.agreement_other_context["rho"]}
    both = pd.concat(both, axis=1).round(3)
    both.index = [mark(n, v) for n, v in result.agreement_other_context["valid"].items()]
    print(both.to_string(), "\n† failed held-out validation in the", other, "context")
else:
    print(f"no {other} axes in the run store (notebook 07 writes them): only the {context} axes are compared")

# %% [markdown]
# ## Pairwise compliance on the held-out calibration pairs
# For each held-out evaluation question of each axis, the judge sees the answer written under the positive
# instruction and the one under the negative instruction **twice, once in each order**, and is asked which
# is more like the positive pole. A judge that reads the texts picks the same answer in both orders; one
# that answers by position picks the first-shown (or the second-shown) both times.
#
# - `accuracy`: among the pairs answered the same in both orders (`n_consistent`), the share where the
#   judge picked the positive answer (0.5 is chance; Wilson CI, two-sided exact binomial p).
# - `chose_first`: the share of showings where the judge picked the first-shown answer.
# - The position rule (`judge.stats.answers_by_position`): among the pairs whose pick changes with the
#   order, the first-shown answer wins in both orders (`first_both`) more or less often than the
#   second-shown (`second_both`), by the exact McNemar test at the 5 % level (`position_p`). When the "all"
#   row is `by_position`, the compliance check is **invalid**. The texts, not the axes, are judged here, so
#   every axis is pooled; the axes that failed validation are marked †.

# %%
compliance, compared = result.compliance, pd.DataFrame(result.compliance_pairs)
print("comparisons:", compared["status"].value_counts().to_dict())
assert set(compared["status"]) <= {"ok", "malformed", "error", "skipped"}
assert compared.groupby(["axis", "q_index"])["positive_first"].nunique().eq(2).all()  # both orders
overall = compliance.loc["all"]
assert overall["n_pairs"] + overall["n_missing"] == len(compared) // 2
assert overall["n_consistent"] + overall["first_both"] + overall["second_both"] == overall["n_pairs"]
assert compliance.loc[compliance["n_consistent"] > 0, "accuracy"].between(0, 1).all()
checked = analysis.compliance_summary(compliance)
assert checked["compliance"]["valid"] == (not overall["by_position"] and overall["n_pairs"] > 0)
print(checked["compliance_text"])
compliance.rename(index=lambda n: n if n == "all" else mark(n, valid[n]))

# %% [markdown]
# ## Pooled over axes and models
# Every model with a judge result under the root is pooled (this model from this run), over the validated
# axes of each. The CI is the project's bootstrap (`styleprobe.stats.bootstrap_ci`) over whole answers,
# since the ratings of one answer are not independent (so no p-value, which would treat them as
# independent). `p_undefined` is the exact share of resamples whose ratings or projections are constant,
# so that ρ is undefined: they are never counted as a value. Leaving each model out in turn shows whether
# one model carries the pooled value.

# %%
pooled, loo = result.pooled, result.leave_one_model_out
print(analysis.pooled_summary(pooled)["pooled_text"])
judges = {slug: r.judge for slug, r in ws.every_model(analysis.JudgeResult).items()} | {ws.slug: result.judge}
if len({str(judges[m]) for m in pooled["models"]}) > 1:
    print("note: the models were rated by different judges:", judges)
assert (np.isnan(pooled["rho"]) and pooled["undefined"]) or -1 <= pooled["rho"] <= 1
if pooled["models"] == [ws.slug]:
    rated = long[long["valid"]]
    assert pooled["n_pairs"] == rated[["rating", "projection"]].notna().all(axis=1).sum()
assert len(loo) == (len(pooled["models"]) if len(pooled["models"]) > 1 else 0)
loo

# %%
fig, (a, b) = style.figure("full", 3.4, ncols=2)
x = np.arange(len(names))
yerr = np.abs(agreement[["ci_low", "ci_high"]].to_numpy().T - agreement["rho"].to_numpy())
a.bar(x, agreement["rho"], yerr=np.nan_to_num(yerr), color=["C0" if valid[n] else "0.7" for n in names])
for i in np.flatnonzero(agreement["rho"].isna().to_numpy()):
    reason = agreement["undefined"].iloc[i].replace(" and ", " and\n")
    a.text(
        i, -0.95, f"ρ undefined:\n{reason}", ha="center", va="bottom", rotation=90, fontsize=style.SMALL_PT
    )
a.axhline(0, color="k", lw=0.8)
a.set_ylim(-1, 1)
a.set_ylabel("Spearman ρ (95 % CI)")
pooled_rho = f"{pooled['rho']:.2f}" if np.isfinite(pooled["rho"]) else f"undefined ({pooled['undefined']})"
a.set_title(f"judge rating vs projection, per axis\n(grey †: not validated)\npooled ρ = {pooled_rho}")
comp = compliance.drop(index="all").reindex(names)
cerr = np.abs(comp[["ci_low", "ci_high"]].to_numpy().T - comp["accuracy"].to_numpy())
b.bar(x, comp["accuracy"], yerr=np.nan_to_num(cerr))
for i in np.flatnonzero(comp["accuracy"].isna().to_numpy()):
    b.text(
        i,
        0.02,
        "no pair judged\nalike both ways",
        ha="center",
        va="bottom",
        rotation=90,
        fontsize=style.SMALL_PT,
    )
b.axhline(0.5, color="k", lw=0.8, ls="--")
b.set_ylim(0, 1)
b.set_ylabel("positive answer picked\n(share of pairs, Wilson CI)")
verdict = "invalid: answers by position" if overall["by_position"] else f"all axes: {overall['accuracy']:.2f}"
b.set_title(f"pairwise compliance, pairs judged alike\nin both orders (0.5 = chance)\n{verdict}")
for ax_ in (a, b):
    ax_.set_xticks(x, [axis_label(n, valid[n]) for n in names], rotation=45, ha="right")
    ax_.set_xlim(-0.6, len(names) - 0.4)
style.source_note(fig, f"{ws.slug}, judged by {reader.describe()['model']}", ws.profile.name)
ws.save_figure(fig, "judge_agreement")

# %% [markdown]
# ## Saving
# The result goes to `results/<model>.json` (section `judge`), with the numbers and the table the paper
# reads.

# %%
print(f"results: {ws.save(result)}")
