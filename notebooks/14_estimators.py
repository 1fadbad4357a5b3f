# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14 · Estimators and readings: which axis direction holds on new answers?
#
# The study estimates an axis as the difference of the two poles' trimmed means, read at the last 4 blocks
# with decay weighting. Is that what gets the most style out of the hidden states? Here each estimator is
# compared at the study's reading and at a reading chosen per axis, scored on answers that chose nothing,
# and a learning curve shows how many calibration answers an axis needs. Run notebooks 01 and 07 first:
# the answers of calibration sets A, B and C come from their run store, nothing is generated.
#
# The axis direction can be estimated in several ways from the same answers: the study's difference of
# trimmed means, the plain mean difference, per-dimension z-scored (diagonal whitening), Ledoit-Wolf
# shrinkage LDA (full whitening) and a grouped-CV logistic fit. Each is scored at the study's reading and
# at a reading (block and pooling) chosen on calibration folds, then the nested choice of reading and
# estimator; all on set A's evaluation answers, which chose nothing, with 95 % intervals. Whitening helps
# when the style lies in a low-variance direction under a few high-variance dimensions; the comparison
# shows whether it does for this model, and how much comes from the reading instead.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"
revision = None
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs)
device = None
dtype = None
model_args = {}  # passed to from_pretrained, e.g. {"attn_implementation": "sdpa"}
sizes = {}  # profile sizes to override, e.g. {"n_baseline": 10, "calibration_tokens": 64}
context = "uninstructed"  # "instructed": read answers with the style instruction in context (the original)
batch_size = None
root = None  # folder for runs/, axes/, figures/, results/ (None: the repository's)

# %%
from matplotlib.ticker import MaxNLocator

from styleprobe.analyses import estimator_comparison
from styleprobe.report import style
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
compared = estimator_comparison.run(ws, context=context, batch_size=batch_size)
means = compared.means()
numbers = compared.paper()
print(
    f"{ws.describe()}\nmean held-out accuracy: study {numbers['study_accuracy']:.3f}, "
    f"nested choice of reading and estimator {numbers['nested_accuracy']:.3f}"
)
assert compared.table["pairwise_accuracy"].dropna().between(0, 1).all()
print(f"results: {ws.save(compared)}")
means.round(3)

# %% [markdown]
# Learning curve: held-out accuracy (set A's evaluation answers) against calibration answers per pole,
# drawn from the calibration questions of sets A, B and C pooled (the study's reading and estimator
# against the nested choice, refitted on every draw).

# %%
curve = compared.curve_means()
fig, ax = style.figure("two_thirds", 2.4)
for method in curve.columns:
    ax.plot(curve.index, curve[method], marker="o", label=method)
ax.set(xlabel="calibration answers per pole", ylabel="mean held-out accuracy")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
style.source_note(fig, ws.slug, ws.profile.name, legend=True, ncol=2)
ws.save_figure(fig, "estimator_learning_curve")
curve.round(3)
