"""The explore engine and its widget app, driven headless on tiny random models."""

from __future__ import annotations

import dataclasses
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from styleprobe.apps.explore import Explorer, Turn, axes_files
from styleprobe.apps.explore_app import ExploreApp, history_html, reply_html, turns_html
from styleprobe.engine.pipeline import Item, reread
from styleprobe.protocol.axes import AxesError
from styleprobe.protocol.spec import Protocol


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    return {"root": root}


@pytest.fixture(scope="module")
def explorer(tiny, dirs):
    return Explorer.open(tiny("qwen2"), profile="smoke", calibrate_missing=True, progress=False, **dirs)


def test_missing_axes_are_a_one_line_error_unless_calibration_is_asked_for(tiny, tmp_path):
    with pytest.raises(AxesError, match=r"no axes for .* run notebook 01"):
        Explorer.open(tiny("qwen2"), profile="smoke", root=tmp_path)


def test_axes_of_another_model_are_refused(tiny, explorer):
    with pytest.raises(AxesError, match="belong to"):
        Explorer.open(tiny("llama"), axes_file=explorer.axes_file, profile="smoke")


def read_scores(explorer: Explorer, item: Item, response_ids, keep_system: bool = False) -> np.ndarray:
    """The normalised projection of given answer tokens in the item's context, computed independently."""
    agg = explorer.aggregation
    layers = agg.absolute_layers(explorer.handle.n_layers)
    states = reread(
        explorer.handle, [item], [response_ids], layers, (agg.decay,), keep_system=keep_system, progress=False
    )[:, 0]
    return explorer.axes.project(agg.combine(states), explorer.handle.model_id)[0]


def test_a_reply_is_scored_as_read_without_its_system_prompt(explorer):
    turn = explorer.ask("How do tides work?", "Answer like a pirate.", max_new_tokens=8)
    assert turn.response_ids and turn.system == "Answer like a pirate."
    item = Item("x", turn.message, turn.system)
    without = read_scores(explorer, item, turn.response_ids)
    np.testing.assert_allclose(turn.scores.to_numpy(), without, atol=1e-5)
    # the system prompt in context would have changed them
    assert not np.allclose(
        read_scores(explorer, item, turn.response_ids, keep_system=True), without, atol=1e-5
    )
    assert np.isfinite(turn.scores).all() and explorer.context == "uninstructed"


def test_axes_calibrated_instructed_read_the_reply_with_its_system_prompt(explorer):

    instructed = dataclasses.replace(explorer.axes, meta={**explorer.axes.meta, "context": "instructed"})
    other = Explorer(explorer.ws, instructed, explorer.axes_file)
    turn = other.ask("How do tides work?", "Answer like a pirate.", max_new_tokens=8)
    item = Item("x", turn.message, turn.system)
    with_system = read_scores(other, item, turn.response_ids, keep_system=True)
    np.testing.assert_allclose(turn.scores.to_numpy(), with_system, atol=1e-5)


def test_a_continued_conversation_reads_the_earlier_turns(explorer):
    explorer.history.clear()
    first = explorer.ask("Name a colour.", max_new_tokens=6)
    second = explorer.ask("And another one?", continue_conversation=True, max_new_tokens=6)
    history = ((first.message, first.response),)
    in_context = read_scores(explorer, Item("x", second.message, None, history), second.response_ids)
    alone = read_scores(explorer, Item("x", second.message), second.response_ids)
    np.testing.assert_allclose(second.scores.to_numpy(), in_context, atol=1e-5)
    assert not np.allclose(in_context, alone, atol=1e-5)
    table = explorer.history_table()
    assert list(table["message"]) == [first.message, second.message]
    assert table[explorer.axes.names].notna().all().all()


def test_empty_messages_are_refused(explorer):
    with pytest.raises(ValueError, match="empty message"):
        explorer.ask("   ")


def test_the_baseline_fingerprint_is_computed_once_under_the_chosen_axes(explorer):
    base = explorer.baseline(progress=False)
    assert list(base.index) == explorer.axes.names and base.notna().all()
    assert explorer.baseline(progress=False) is base
    assert axes_files(explorer.ws)[0] == explorer.axes_file


def test_the_app_callbacks_work_without_a_browser(tiny, dirs):
    def loader(model, axes_file):
        handle = tiny(model) if model in ("qwen2", "llama") else model  # a name or a loaded handle
        return Explorer.open(
            handle, axes_file=axes_file, profile="smoke", calibrate_missing=True, progress=False, **dirs
        )

    app = ExploreApp("qwen2", loader, models=["qwen2", "llama"])
    assert app.chart.layout.display == "none"  # no radar (nor a broken image) before the first reply
    assert app.on_load()
    assert "baseline over 6 questions" in app.status.value
    loaded = app.status.value
    explorer = app._select()
    assert loaded.startswith(
        f"<span style='color:#555'>{explorer.name}: "
    )  # the model's name, not its source
    assert app.axes.value.endswith(".json")

    app.message.value = "What is a prime number?"
    turn = app.on_send()
    assert turn is not None and turn.model in app.reply.value
    assert bytes(app.chart.value).startswith(b"\x89PNG") and app.chart.layout.display is None
    assert "What is a prime number?" in app.table.value
    valid = set(explorer.validated())
    for name in explorer.axes.names:  # an axis that failed held-out validation is marked, in both places
        header = name.replace("_", "_\u200b")  # may wrap at the underscore
        assert (f"{header}\u2020" in app.table.value) == (name not in valid)
        assert (f"{name}\u2020" in loaded) == (name not in valid)

    app.other.value = "llama"
    pair = app.on_compare()
    assert pair is not None and pair[0].model != pair[1].model
    assert [t.message for t in app.history].count("What is a prime number?") == 3

    app.message.value = ""
    assert app.on_send() is None and "empty message" in app.status.value  # shown, not raised
    app.model.value = "no-such-model"
    assert app.on_send() is None and "unknown model" in app.status.value

    app.on_clear()
    assert app.history == [] and app.table.value == app.reply.value == ""
    assert app.chart.value == b"" and app.chart.layout.display == "none"  # the old radar goes too


def test_a_stored_baseline_run_is_reused_rather_than_generated_again(explorer):
    from styleprobe.protocol.fingerprint import baseline, stored_baseline_seeds

    baseline(explorer.ws, seeds=(0, 1), progress=False)
    assert stored_baseline_seeds(explorer.ws) == (0, 1)


def test_switching_the_axis_set_rescores_under_the_new_axes(tiny, explorer, dirs):

    shifted = dataclasses.replace(explorer.axes, centres=explorer.axes.centres + 5 * explorer.axes.scales)
    other = shifted.save(explorer.ws.runs.root / "axes-shifted.json")  # found among the run store's axes

    def loader(model, axes_file):
        handle = tiny("qwen2") if model == "qwen2" else model
        return Explorer.open(handle, axes_file=axes_file, profile="smoke", progress=False, **dirs)

    app = ExploreApp("qwen2", loader, axes_file=explorer.axes_file, models=["qwen2"])
    assert app.on_load()
    assert [v for _, v in app.axes.options] == [str(explorer.axes_file), str(other)]
    assert [label for label, _ in app.axes.options] == [
        explorer.axes_file.name,
        "axes-shifted.json (run store)",
    ]
    app.message.value = "Hello"
    first = app.on_send()
    app.axes.value = str(other)  # the dropdown's observer loads the other axes, not the model again
    assert "axes-shifted.json" in app.status.value
    second = app.on_send()
    assert app.explorer("qwen2", str(other)).handle is app.explorer("qwen2", str(explorer.axes_file)).handle
    assert (second.scores < first.scores).all() or (second.scores == -1).all()  # centres moved up by 5 IQRs


def test_a_reply_with_nothing_to_measure_is_kept_unscored(explorer, monkeypatch):
    import styleprobe.apps.explore

    # what an answer whose think block never closes looks like to the reader
    monkeypatch.setattr(
        styleprobe.apps.explore, "measure_mask", lambda handle, n, ids: [False] * (n + len(ids))
    )
    turn = explorer.ask("Anything?", max_new_tokens=4)
    assert turn.scores.isna().all() and turn in explorer.history


def test_validated_axes_are_those_whose_held_out_accuracy_clears_chance(explorer):
    from styleprobe.protocol.validity import heldout_status

    names = explorer.axes.names
    accuracy = {n: {"pairwise_accuracy": 0.5, "accuracy_ci_low": 0.2} for n in names}
    accuracy[names[0]] = {"pairwise_accuracy": 0.9, "accuracy_ci_low": 0.7}
    status = heldout_status(pd.DataFrame.from_dict(accuracy, orient="index"))
    records = {n: {**accuracy[n], "validation": status[n]} for n in names}  # as calibration records them
    checked = Explorer(
        explorer.ws, dataclasses.replace(explorer.axes, calibration=records), explorer.axes_file
    )
    assert checked.validated() == [names[0]]
    no_record = Explorer(explorer.ws, dataclasses.replace(explorer.axes, calibration={}), explorer.axes_file)
    assert no_record.validated() == []


def a_turn(response: str, finished: bool = True) -> Turn:
    return Turn("m", "q", None, response, (1, 2), finished, pd.Series({"warm_cold": 0.5}))


def test_replies_keep_their_line_breaks_and_render_markdown_with_any_html_escaped():
    shown = reply_html("**Yes.**\nSecond line.\n\n- one\n- two\n\n<script>alert(1)</script> <b>x</b>")
    assert "<strong>Yes.</strong><br" in shown and "<li>two</li>" in shown
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "&lt;b&gt;x&lt;/b&gt;" in shown
    unsafe = reply_html(
        "[click](javascript:alert(1)) ![x](http://example.com/x.png) [ok](https://example.com)"
    )
    assert 'href="javascript' not in unsafe
    assert "<img" not in unsafe and 'href="https://example.com" target="_blank"' in unsafe
    both = turns_html([a_turn("Fine"), a_turn("")])
    assert both.count("<b>m</b>") == 2 and "<i>empty</i>" in both and "(cut at" not in both
    assert "(cut at the token budget)" in turns_html([a_turn("Fi", finished=False)])


def test_the_history_table_fits_every_axis_and_shortens_long_texts(explorer):
    names = explorer.axes.names
    long = a_turn("r")
    long.message = "a long message " * 20
    long.scores = pd.Series(0.25, index=names)
    shown = history_html([long], names, set(names))
    assert "styleprobe-scroll" in shown and "a long message" in shown and long.message not in shown
    assert all(name.replace("_", "_\u200b") in shown for name in names)
    assert shown.count("+0.25") == len(names) and "failed held-out validation" not in shown


def test_the_app_shows_it_is_busy_while_a_reply_is_generated(tiny, dirs):
    def loader(model, axes_file):
        return Explorer.open(tiny("qwen2"), axes_file=axes_file, profile="smoke", progress=False, **dirs)

    app = ExploreApp("qwen2", loader, models=["qwen2"])
    assert app.on_load()
    seen: list[tuple[str, object]] = []
    app.status.observe(lambda change: seen.append(("status", change.new)), names="value")
    app.send.observe(lambda change: seen.append(("disabled", change.new)), names="disabled")
    app.send.observe(lambda change: seen.append(("icon", change.new)), names="icon")
    app.message.value = "Hello"
    assert app.on_send() is not None
    busy = [v for k, v in seen if k == "status" and "is answering" in v]
    assert busy and "fa-spin" in busy[0]
    assert [v for k, v in seen if k == "disabled"] == [True, False]
    assert [v for k, v in seen if k == "icon"] == ["spinner spin", ""]
    assert "fa-spin" not in app.status.value and not app.send.disabled  # done: the status says what it did


def test_after_the_demo_a_reset_app_starts_a_new_conversation(tiny, dirs):
    def loader(model, axes_file):
        return Explorer.open(tiny("qwen2"), axes_file=axes_file, profile="smoke", progress=False, **dirs)

    app = ExploreApp("qwen2", loader, models=["qwen2"])
    app.message.value = "Hello"
    assert app.on_send()
    app.system.value, app.keep.value = (
        "Answer in one short sentence.",
        True,
    )  # as the notebook's demo leaves it
    assert app.on_send()
    app.reset()
    assert app.history == [] and (app.message.value, app.system.value, app.keep.value) == ("", "", False)
    assert app.reply.value == app.table.value == "" and app.chart.layout.display == "none"
    assert "ready" in app.status.value


def test_an_axes_file_from_elsewhere_is_offered_and_chosen(tiny, explorer, dirs, tmp_path):
    elsewhere = explorer.axes.save(tmp_path / "mine" / "my-axes.json")

    def loader(model, axes_file):
        return Explorer.open(tiny("qwen2"), axes_file=axes_file, profile="smoke", progress=False, **dirs)

    app = ExploreApp("qwen2", loader, axes_file=elsewhere, models=["qwen2"])
    assert app.on_load(), app.status.value
    assert app.axes.value == str(elsewhere) and ("my-axes.json (mine/)", str(elsewhere)) in app.axes.options


# --- the app as a person sees it ---------------------------------------------------------------------------

SMOLLM2_AXES = Protocol.load().names  # the 7 axes of the committed SmolLM2 axes


def idle_app(explorer: Explorer | None = None) -> ExploreApp:
    """An app whose loader hands out `explorer` (or nothing: an app that is never loaded)."""
    return ExploreApp("qwen2", lambda model, axes_file: explorer, models=["qwen2"])


def test_the_radar_has_one_readable_size_however_far_the_scores_go():
    import io

    from PIL import Image

    from styleprobe.apps.explore_app import radar_png

    # what SmolLM2 gave in the app: scores far beyond the ±1 scale, for one model and for two
    far = pd.Series([-14.79, 3.2, 13.23, -2.5, 0.4, -5.0, 0.8], index=SMOLLM2_AXES)
    base = pd.Series([-6.17, 1.5, 4.0, -1.2, 0.3, -2.0, 0.5], index=SMOLLM2_AXES)
    near = pd.Series(0.2, index=SMOLLM2_AXES)
    curves = [
        {"m: reply": far, "m: baseline": base},
        {"m: reply": near, "m: baseline": near},
        {"a: reply": far, "a: baseline": base, "b: reply": near, "b: baseline": -base},
    ]
    sizes = {Image.open(io.BytesIO(radar_png(c, "reply vs baseline"))).size for c in curves}
    assert len(sizes) == 1, sizes  # a fixed size, not one that shrinks to fit what is drawn
    ((width, height),) = sizes
    assert min(width, height) >= 400
    chart = idle_app().chart.layout  # shown at that size, not squeezed by the reply beside it
    assert (chart.width, chart.height, chart.flex) == (f"{width}px", f"{height}px", "0 0 auto")


def test_the_radar_of_two_models_far_beyond_the_scale_fits_its_image_with_no_text_overlapping():
    from styleprobe.apps.explore_app import RADAR_PX, radar_figure
    from styleprobe.report import style

    far = pd.Series([-14.79, 3.2, 13.23, -2.5, 0.4, -5.0, 0.8], index=SMOLLM2_AXES)
    curves = {"smollm2-135m-instruct: reply": far, "smollm2-135m-instruct: baseline": far / 2}
    curves |= {"gemma-3-270m: reply": -far, "gemma-3-270m: baseline": far * 0}
    fig = radar_figure(curves, "reply vs baseline (0 = calibration midpoint)")
    width, height = fig.get_size_inches()
    assert tuple(round(v * fig.dpi) for v in (width, height)) == RADAR_PX
    texts = style.drawn_texts(fig)  # every line of text, with its extent in inches
    assert all(size >= style.MIN_FONT_PT for _, size, _ in texts)
    assert all(x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height for _, _, (x0, y0, x1, y1) in texts)
    (ax,) = fig.axes
    disc = ax.get_window_extent()
    assert min(disc.width, disc.height) >= 200  # pixels: the polar disc itself stays large
    boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)


def test_no_part_of_the_app_is_wider_than_its_cell():
    def widgets(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from widgets(child)

    app = idle_app()
    # A width of 100 % plus a widget's 2 px margins on each side made the app 4 px wider than its cell, with
    # a scroll bar under it; only the radar has a width of its own (its size in pixels).
    sized = {id(x): x.layout.width for x in widgets(app.view) if x.layout.width not in (None, "", "auto")}
    assert sized == {id(app.chart): app.chart.layout.width}


def with_validation(explorer: Explorer, valid: set[str]) -> Explorer:
    """The explorer with axes whose calibration recorded `valid` as the axes that passed validation."""
    records = {n: {"validation": "valid" if n in valid else "chance"} for n in explorer.axes.names}
    return Explorer(explorer.ws, dataclasses.replace(explorer.axes, calibration=records), explorer.axes_file)


def test_a_banner_above_the_chat_says_that_the_axes_failed_validation_and_stays(explorer):
    from styleprobe.apps.explore_app import validity_banner

    names = explorer.axes.names
    app = idle_app(with_validation(explorer, set()))
    assert app.on_load(), app.status.value
    children = list(app.view.children)
    assert children.index(app.banner) < children.index(app.message)  # above the chat
    assert "No axis of" in app.banner.value and "passed held-out validation" in app.banner.value
    assert all(f"{n.replace('_', '/')}\u2020" in app.banner.value for n in names)
    app.message.value = "Hello"
    assert app.on_send()
    app.reset()
    assert "ready" in app.status.value and "No axis of" in app.banner.value  # the status changed, not it
    some = validity_banner([with_validation(explorer, {names[0]})])
    assert (
        f"{len(names) - 1} of {len(names)} axes" in some and f"{names[0].replace('_', '/')}\u2020" not in some
    )
    assert validity_banner([with_validation(explorer, set(names))]) == ""  # all passed: no banner


def test_the_app_shows_how_far_the_first_baseline_is_and_how_long_it_has_left(tiny, explorer, tmp_path):
    # a root without a stored baseline: the app generates it
    fresh = Explorer.open(
        tiny("qwen2"), axes_file=explorer.axes_file, profile="smoke", progress=False, root=tmp_path
    )
    app = idle_app(fresh)
    shares, texts, shown, status = [], [], [], []
    app.progress.observe(lambda change: shares.append(change.new), names="value")
    app.progress_text.observe(lambda change: texts.append(change.new), names="value")
    app.progress_box.layout.observe(lambda change: shown.append(change.new), names="display")
    app.status.observe(lambda change: status.append(change.new), names="value")
    assert app.on_load(), app.status.value
    assert any(0 < s < 1 for s in shares) and shares == sorted(shares) and shares[-1] == 1.0
    assert any(re.search(r"\d+%, about \d+ (s|min) left", t) for t in texts)
    assert shown == [None, "none"]  # shown in the app while it runs, then hidden
    assert any(f"{fresh.profile.n_baseline} answers" in s for s in status)  # what it does, while it does it


def test_errors_in_the_app_are_one_line_messages_without_a_class_name(tiny, dirs):
    def loader(model, axes_file):
        if model != "qwen2":
            return Explorer.open(model, profile="smoke", progress=False, **dirs)  # an unknown model: refused
        return Explorer.open(tiny("qwen2"), axes_file=axes_file, profile="smoke", progress=False, **dirs)

    app = ExploreApp("qwen2", loader, models=["qwen2"])
    app.message.value = " "
    errors = [(app.on_send, "empty message: type something")]
    app.other.value = ""
    errors.append((app.on_compare, "name a second model"))
    for click, message in errors:
        assert click() is None and message in app.status.value
        assert not re.search(r"\w+(Error|Exception):", app.status.value), app.status.value
    app.model.value, app.message.value = "no-such-model", "Hello"
    assert app.on_send() is None and "unknown model" in app.status.value
    assert not re.search(r"\w+(Error|Exception):", app.status.value), app.status.value
