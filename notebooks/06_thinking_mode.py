# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
# t 95 % CI over questions, and the same shift had the think tokens been measured too (the original
# study read every generated token), to show what excluding them changes. Axes that fail validation
# (held-out accuracy of notebook 01, or classed dead by notebook 08 when it has run) are shown with a † and
# not interpreted.

# %% tags=["parameters"]
model = "qwen3-8b"  # a model with a thinking switch: preset, local directory, hub id or random:qwen3
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
thinking_tokens = 4096  # budget of the answers with thinking on: think block and visible answer together
seeds = None  # None: the profile's seeds
batch_size = None
read_batch_size = 8  # answers per teacher-forced pass when re-reading with the think block included
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
import numpy as np
import pandas as pd

from styleprobe.analyses import thinking
from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.engine.chat import build_prompt
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.validity import mark, valid_axes
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
dead = DeadZonesResult.load(ws).dead_axes() if ws.has(DeadZonesResult) else []
validated = valid_axes(CalibrationResult.load(ws).evaluation, dead)
marked = {n: mark(n, n in validated) for n in ws.protocol.names}  # † failed validation
print(f"validated axes: {', '.join(validated) or 'none'}")

# %% [markdown]
# ## The two prompts
# The same question with thinking off and on: only the end of the prompt differs.

# %%
question = ws.protocol.questions.baseline[0]
prompts = {mode: build_prompt(ws.model, question, thinking=mode == "on") for mode in ("off", "on")}
print(ws.describe())
for mode, text in prompts.items():
    print(f"===== thinking {mode} =====\n{text}")
assert prompts["off"] != prompts["on"]

# %%
answers = thinking.answer_both_ways(ws, seeds=seeds, thinking_tokens=thinking_tokens, batch_size=batch_size)
records = answers.on_records
status = thinking.answer_status(ws.model, records)
think_len = records["n_tokens"] - records["n_measured"]
print(
    f"tokens per thinking-on answer: median {records['n_tokens'].median():.0f}, of which think block "
    f"median {think_len.median():.0f}; visible answer median {records['n_measured'].median():.0f}"
)

# %% [markdown]
# An example: one thinking-on answer with its think block, as generated (special tokens shown).

# %%
example = records[status == "visible"].iloc[0] if (status == "visible").any() else records.iloc[0]
print(ws.model.tokenizer.decode(example["response_ids"])[:2000])

# %% [markdown]
# ## Per-axis shift: visible answer after thinking − answer without thinking
# Projections are averaged over seeds per question (answers without a visible answer left out), then the
# per-question difference is averaged; the CI resamples questions. The counterfactual reads the same
# answers (those with a visible answer) with their think tokens measured too.

# %%
result = thinking.run(ws, answers, read_batch_size=read_batch_size)
counts = result.status_counts
print(
    f"thinking on: {result.n_answers} answers; {result.n_without_visible_answer} never reached a visible "
    f"answer and are left out ({counts['unclosed']} ran out of budget or ended inside the think block, "
    f"{counts['empty after think']} said nothing after it)"
)
shift = {
    "visible": result.shift_visible,
    "included": result.shift_included,
    "think tokens' effect": result.think_tokens_effect,
}
table = pd.concat(shift, axis=1)
table.rename(index=marked)

# %%
assert counts.sum() == result.n_answers == len(result.seeds) * ws.profile.n_baseline
assert result.n_without_visible_answer == counts[["unclosed", "empty after think", "empty"]].sum()
for frame in shift.values():
    ok = frame.dropna()
    assert ((ok["ci_low"] <= ok["shift"] + 1e-9) & (ok["shift"] <= ok["ci_high"] + 1e-9)).all()
    assert np.isfinite(ok["shift"]).all()  # crossfit projections are not clipped
assert result.shift_visible["shift"].notna().any(), "no question had a visible answer"

# %%
names = ws.protocol.names
fig, ax = style.figure("two_thirds", 0.3 * len(names) + 1.3)
y = np.arange(len(names))
for offset, (label, frame) in zip(
    (-0.15, 0.15),
    [("visible answer only", shift["visible"]), ("think tokens included", shift["included"])],
    strict=True,
):
    err = np.abs(frame[["ci_low", "ci_high"]].to_numpy().T - frame["shift"].to_numpy())
    ax.errorbar(frame["shift"], y + offset, xerr=err, fmt="o", capsize=2, label=label)
ax.axvline(0, color="grey", lw=1)
ax.set_yticks(y, [axis_label(n, n in validated) for n in names])
ax.invert_yaxis()
ax.set_xlabel("shift vs thinking off (normalised units, 95 % CI)")
style.source_note(fig, ws.slug, ws.profile.name, legend=True)
ws.save_figure(fig, "thinking_shift")

# %% [markdown]
# ## Saved for the paper
# The results section, and the numbers and the table the paper reads (`paper/generated/<model>/`).

# %%
print(f"results: {ws.save(result)}")
