# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · Statistics check: do the intervals cover, and do the rules hold their level?
#
# Synthetic data only, no model: at the sample sizes of the `quick` and `paper` profiles, we draw many data
# sets with a known truth and measure
# - the **coverage** of every 95 % interval the project reports: the share of data sets whose interval
#   contains the true value (bound: at least 0.93);
# - the **false-positive rate** of every pass/flag rule: the share of data sets drawn under the rule's null
#   on which it fires (bound: its nominal level plus two simulation standard errors).
#
# Each interval and rule is the library's own function, called as the analyses call it; the `setting`
# column says what was drawn. `mc_se` is the Monte-Carlo standard error of each measured share.

# %% tags=["parameters"]
profiles = ["quick", "paper"]  # the profiles whose sample sizes are checked
seeds = [0, 1, 2, 3, 4]  # notebook 02's baseline seeds: the raters of its retest ICC
benchmark_seeds = [0, 1, 2]  # notebook 07's benchmark seeds: the raters of the benchmark ICC
n_responses = 8  # notebook 05's rated answers per axis
n_sims = 1000  # simulated data sets per check
seed = 0
jobs = 2  # processes the checks run in
root = None  # folder holding results/ (None: the repository's)

# %%
import time

import pandas as pd

from styleprobe.analyses import statistics_check
from styleprobe.workspace import Workspace

ws = Workspace.cross_model(root=root)
design = statistics_check.Design.of(
    ws.protocol,
    retest_seeds=len(seeds),
    benchmark_seeds=len(benchmark_seeds),
    judge_answers=n_responses,
)
start = time.perf_counter()
result = statistics_check.run(design, profiles, n_sims=n_sims, seed=seed, jobs=jobs)
print(f"{len(result.table)} checks of {n_sims} simulations in {time.perf_counter() - start:.0f} s; {design}")

# %% [markdown]
# ## Coverage of the 95 % intervals

# %%
table = result.table.round(3)
pd.set_option("display.max_colwidth", 90)
columns = ["check", "profile", "n", "measured", "mc_se", "bound", "holds", "n_undefined", "setting"]
table.loc[table["kind"] == statistics_check.COVERAGE, columns]

# %% [markdown]
# ## False-positive rates of the pass/flag rules

# %%
columns = ["check", "profile", "n", "nominal", "measured", "mc_se", "bound", "holds", "setting"]
table.loc[table["kind"] == statistics_check.FALSE_POSITIVE, columns]

# %% [markdown]
# ## Saved for the paper
# The results (`results/cross_model.json`), and the numbers and the table of the paper's method section
# (`paper/generated/cross_model/`).

# %%
print(f"results: {ws.save(result)}")

# %% [markdown]
# ## Every bound holds

# %%
missed = [
    f"{r.check} ({r.profile}, n = {r.n}): {r.measured:.3f} vs bound {r.bound:.3f}"
    for r in result.failing.itertuples()
]
assert not missed, f"{len(missed)} bounds not met: " + "; ".join(missed)
