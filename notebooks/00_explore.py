# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Explore: talk to a model and watch its style
#
# A small app: pick a model and an axis set, type a message (optionally under a system prompt) and see the
# reply with its 7-axis projection as a radar beside the model's baseline fingerprint (its default answers
# to the baseline questions). Turns are kept in a history table; *continue the conversation* sends the
# earlier turns as context. *Ask both* sends the same message to a second model; each reply is projected on
# its own model's axes, which the calibration median and IQR make comparable.
#
# Replies are read the way the axes were calibrated: question + answer, the system prompt dropped (unless the
# axes were read with the instruction in context). One reply is one noisy sample: the baseline radar
# averages many answers, a single reply does not. A model without axes is calibrated first
# (`calibrate_missing`), which takes minutes on a CPU.
#
# It runs on the embedded SmolLM2 on a CPU and on any hub model on a GPU. The cells after the app drive its
# callbacks directly, so the notebook also runs headless (papermill, nbval); the last one resets the app, so
# after *Run All* it starts clean: no history, no system prompt, a new conversation.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"  # preset, local directory, .gguf file, hub id or random:<arch>
compare_with = ""  # a second model for "ask both" (empty: none)
axes_file = None  # default: axes/<model>.json, else the run store's axes*.json
profile = None  # "quick" (CPU default), "paper" (GPU default) or "smoke" (tiny CI runs); sets the baseline
device = None  # default: cuda when available
dtype = None
calibrate_missing = True  # calibrate a model that has no axes yet (minutes on a CPU)
message = "I have a job interview tomorrow and I am nervous. Any advice?"
system = "Answer in one short sentence."  # the headless demo's second turn
root = None  # folder for runs/ and axes/ (None: the repository's)

# %%
from IPython.display import display

from styleprobe.apps.explore_app import ExploreApp, default_loader

try:  # Colab draws ipywidgets 8 only with its custom widget manager
    from google.colab import output

    output.enable_custom_widget_manager()
except ImportError:
    pass

loader = default_loader(
    profile=profile,
    device=device,
    dtype=dtype,
    root=root,
    calibrate_missing=calibrate_missing,
)
app = ExploreApp(model, loader, axes_file=axes_file, compare_with=compare_with)
app.message.value = message
display(app.view)

# %% [markdown]
# ## The same app, driven from code
# Each cell calls one callback, as a click would, and prints what the app now shows. Load the model (and
# compute its baseline fingerprint once; it is stored in the run store and reused):

# %%
assert app.on_load(), app.status.value
explorer = app.explorer(model, app.axes.value)
print(explorer.handle.model_id, "| axes:", explorer.axes_file)
explorer.baseline().round(2)

# %% [markdown]
# Send the message with no system prompt, then the same message under the system prompt, continuing the
# conversation:

# %%
first = app.on_send()
assert first is not None, app.status.value
print(first.response)
first.scores.round(2)

# %%
app.system.value, app.keep.value = system, True
second = app.on_send()
assert second is not None, app.status.value
print(second.response)
(second.scores - first.scores).round(2).rename("second - first")

# %% [markdown]
# The history, as the table under the app shows it:

# %%
explorer.history_table().round(2)

# %% [markdown]
# ## Two models on the same message
# Only when `compare_with` names a second model.

# %%
if compare_with:
    app.system.value = ""
    pair = app.on_compare()
    assert pair is not None, app.status.value
    for turn in pair:
        print(f"{turn.model}: {turn.response[:200]!r}")
else:
    print("no second model (set compare_with)")

# %% [markdown]
# ## Back to the app
# The demo's turns, system prompt and conversation are cleared (the loaded models and their baselines are
# kept), so the first message typed into the app above starts a new conversation.

# %%
app.reset()
assert not app.history and not app.keep.value and not app.system.value, app.status.value
