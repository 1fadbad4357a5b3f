"""A small ipywidgets app over `Explorer`: type a message, see the reply and its 7-axis radar next to the
model's baseline, keep a history of turns, and ask a second model the same message.

Every callback updates plain widget values (HTML, PNG bytes, layout), so it can be called and checked
without a browser: `app.message.value = "..."; app.on_send()`."""

from __future__ import annotations

import html
import io
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token

from styleprobe.apps.cli import KNOWN_ERRORS, one_line
from styleprobe.apps.explore import Explorer, Turn, axes_files, axes_label, history_table
from styleprobe.engine.models import ModelHandle, load_presets
from styleprobe.protocol.validity import MARK, mark
from styleprobe.report import style
from styleprobe.report.plots import axis_labels, radar

# (model name or an already loaded handle, axes file or None for the model's default) -> Explorer
Loader = Callable[[str | ModelHandle, Path | None], Explorer]
EXPECTED = (*KNOWN_ERRORS, ValueError)  # the command line's one-line errors, and bad input: shown, not raised
HIDDEN = "none"  # a widget layout's display value that takes it off the page
BUSY_ICON = "spinner spin"  # the clicked button's icon while the app works (Font Awesome, turning)
SPINNER = "<i class='fa fa-spinner fa-spin'></i> "
TEXT_WIDTH = 48  # characters of a message or system prompt shown in the history table
BANNER = "background:#fff4e5; border-left:4px solid #e65100; padding:4px 10px; line-height:1.4"
ESTIMATE_AFTER = 0.02  # the share done after the first step before the time left is estimated from the pace
RADAR_PX, RADAR_DPI = (480, 510), 120  # the radar's size on screen, at 7 pt and more (`style`): 4 x 4.25 in

# Replies are model output, rendered as markdown: any HTML in them is escaped (html=False), images are not
# fetched, links pass markdown-it's URL check (no javascript: or data:) and open in a new tab, and a single
# newline is a line break.
MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("table").disable("image")


def _link_in_new_tab(self: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


MARKDOWN.add_render_rule("link_open", _link_in_new_tab)
# the HTML widget's own line height (one widget row) is too tall for text; wide tables and code scroll
STYLE = """<style>
.styleprobe-text {line-height: 1.45; overflow-wrap: anywhere}
.styleprobe-text pre {white-space: pre-wrap}
.styleprobe-scroll {overflow-x: auto; max-width: 100%}
.styleprobe-history {border-collapse: collapse; line-height: 1.3; font-size: 0.95em}
.styleprobe-history th, .styleprobe-history td {padding: 2px 6px; text-align: right; vertical-align: bottom}
.styleprobe-history td:nth-child(-n+3), .styleprobe-history th:nth-child(-n+3) {text-align: left}
</style>"""


def default_loader(**options) -> Loader:
    """`Explorer.open` with fixed options (profile, device, dtype, root, calibrate_missing)."""
    return lambda model, axes_file: Explorer.open(model, axes_file=axes_file, **options)


def radar_figure(curves: dict[str, pd.Series], title: str) -> plt.Figure:
    """The radar at `RADAR_PX` pixels, whatever the scores: a value beyond ±1 is drawn at the edge, marked
    (`radar`), and an axis without a value as missing, not as 0."""
    inches = (RADAR_PX[0] / RADAR_DPI, RADAR_PX[1] / RADAR_DPI)
    with style.context():
        fig, ax = plt.subplots(
            figsize=inches, dpi=RADAR_DPI, layout="constrained", subplot_kw={"projection": "polar"}
        )
        radar(dict(curves), ax=ax, title=title)
    return fig


def radar_png(curves: dict[str, pd.Series], title: str) -> bytes:
    fig = radar_figure(curves, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=RADAR_DPI)  # not "tight": the size stays fixed
    plt.close(fig)
    return buf.getvalue()


def reply_html(text: str) -> str:
    """A reply as safe HTML: its markdown rendered, its line breaks kept, any HTML in it shown as text."""
    return MARKDOWN.render(text)


def turns_html(turns: list[Turn]) -> str:
    parts = []
    for t in turns:
        note = "" if t.finished else " (cut at the token budget)"
        body = reply_html(t.response) if t.response.strip() else "<p><i>empty</i></p>"
        parts.append(f"<div><b>{html.escape(t.model)}</b>{note}:{body}</div>")
    return f"{STYLE}<div class='styleprobe-text'>{''.join(parts)}</div>"


def history_html(turns: list[Turn], names: list[str], valid: set[str]) -> str:
    """The history table: short texts, signed scores, axis names that may wrap at their underscore (so that
    every axis fits), and a horizontal scroll bar rather than a cut when it is still too wide."""
    table = history_table(turns, names)
    for column in ("message", "system"):
        table[column] = table[column].map(lambda s: textwrap.shorten(s, TEXT_WIDTH, placeholder=" …"))
    table = table.rename(columns={n: mark(n, n in valid).replace("_", "_\u200b") for n in names})
    body = table.to_html(
        index=False, border=0, classes="styleprobe-history", na_rep="–", float_format="{:+.2f}".format
    )
    note = "" if valid >= set(names) else f"<p>{MARK} failed held-out validation: not interpreted</p>"
    return f"{STYLE}<div class='styleprobe-scroll'><b>History</b>{body}</div>{note}"


def validity_banner(explorers: list[Explorer]) -> str:
    """A warning for each explorer whose axes did not all pass held-out validation (`Explorer.validated`);
    empty when every axis passed."""
    lines = []
    for e in explorers:
        valid = set(e.validated())
        failed = [n for n in e.axes.names if n not in valid]
        if not failed:
            continue
        source = f"{html.escape(e.name)} ({html.escape(e.axes_file.name)})"
        if len(failed) == len(e.axes.names):
            head = f"No axis of {source} passed held-out validation"
        else:
            head = f"{len(failed)} of {len(e.axes.names)} axes of {source} failed held-out validation"
        listed = ", ".join(axis_labels(failed, valid))
        lines.append(f"<b>{head}</b>: {listed}. Their scores are shown, not interpreted.")
    return f"<div style='{BANNER}'>{'<br>'.join(lines)}</div>" if lines else ""


def duration(seconds: float) -> str:
    """A wait as a person reads it: '40 s', '3 min'."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class ExploreApp:
    def __init__(
        self,
        model: str,
        loader: Loader,
        *,
        axes_file: str | Path | None = None,
        compare_with: str = "",
        models: list[str] | None = None,
    ):
        """`loader` opens an `Explorer` (see `default_loader`); `axes_file` picks the first model's axes."""
        self._load = loader
        self._first = (model.strip(), str(axes_file) if axes_file else None)
        self._explorers: dict[tuple[str, str | None], Explorer] = {}
        self._loaded = ""  # the main model whose axes the dropdown lists
        names = models if models is not None else list(load_presets())
        self.model = w.Combobox(value=model, options=names, description="model", ensure_option=False)
        self.axes = w.Dropdown(description="axes", options=[])
        self.load = w.Button(description="load", tooltip="load the model and its axes")
        self.system = w.Text(description="system", placeholder="optional system prompt")
        self.message = w.Textarea(description="message", placeholder="type a message")
        self.keep = w.Checkbox(description="continue the conversation", value=False)
        self.send = w.Button(description="send", button_style="primary")
        self.other = w.Combobox(
            value=compare_with, options=names, description="2nd model", ensure_option=False
        )
        self.compare = w.Button(description="ask both", tooltip="the same message to both models")
        self.clear = w.Button(description="clear history")
        self.banner = w.HTML()  # stays while the loaded axes have any that failed validation
        self.status = w.HTML()
        self.progress = w.FloatProgress(min=0.0, max=1.0, description="baseline")
        self.progress_text = w.HTML()
        self.progress_box = w.HBox([self.progress, self.progress_text], layout=w.Layout(display=HIDDEN))
        self.reply = w.HTML(layout=w.Layout(flex="1 1 20em", min_width="12em"))
        # the radar at its own size (the reply beside it does not squeeze it), shown with the first reply
        width, height = RADAR_PX
        size = w.Layout(display=HIDDEN, flex="0 0 auto", width=f"{width}px", height=f"{height}px")
        self.chart = w.Image(format="png", layout=size)
        self.table = w.HTML()
        self.load.on_click(self.on_load)
        self.send.on_click(self.on_send)
        self.compare.on_click(self.on_compare)
        self.clear.on_click(self.on_clear)
        self.axes.observe(self.on_axes, names="value")
        # Nothing is wider than the cell, so the app has no horizontal scroll bar: no width of 100 % (a
        # widget's margins would add 4 px), the reply wraps under the radar in a narrow cell, a wide table
        # scrolls by itself.
        self.view = w.VBox(
            [
                w.HBox([self.model, self.axes, self.load]),
                self.banner,
                self.system,
                self.message,
                w.HBox([self.keep, self.send, self.clear]),
                w.HBox([self.other, self.compare]),
                self.status,
                self.progress_box,
                w.HBox([self.chart, self.reply], layout=w.Layout(flex_flow="row wrap")),
                self.table,
            ]
        )

    # -- state --------------------------------------------------------------------------------------------
    def explorer(self, model: str, axes_file: str | None = None) -> Explorer:
        """The explorer of a model with an axis file (None: its default), loaded on first use; a model
        already loaded with other axes is not loaded again."""
        model = model.strip()
        if not model:
            raise ValueError("no model given")
        key = (model, axes_file)
        if key not in self._explorers:
            self._set_status(f"loading {model} …", busy=True)
            loaded = next((e for (m, _), e in self._explorers.items() if m == model), None)
            source = loaded.handle if loaded else model
            self._explorers[key] = self._load(source, Path(axes_file) if axes_file else None)
        return self._explorers[key]

    def _select(self) -> Explorer:
        """The main model's explorer; a newly typed model is loaded and its axis files listed."""
        model = self.model.value.strip()
        if model == self._loaded:
            return self.explorer(model, self.axes.value or None)
        e = self.explorer(model, self._first[1] if model == self._first[0] else None)
        files = axes_files(e.ws)
        chosen = next((f for f in files if f.resolve() == e.axes_file.resolve()), e.axes_file)
        if chosen not in files:  # an axes file given from elsewhere
            files.append(chosen)
        self._explorers[(model, str(chosen))] = e
        self.axes.unobserve(self.on_axes, names="value")
        self.axes.options = [(axes_label(f, e.ws), str(f)) for f in files]
        self.axes.value = str(chosen)
        self.axes.observe(self.on_axes, names="value")
        self._loaded = model
        return e

    def _loaded_explorers(self) -> list[Explorer]:
        return list({id(e): e for e in self._explorers.values()}.values())

    @property
    def history(self) -> list[Turn]:
        """Every turn of every loaded model, in the order asked."""
        return sorted((t for e in self._loaded_explorers() for t in e.history), key=lambda t: t.index)

    def _set_status(self, text: str, error: bool = False, busy: bool = False) -> None:
        colour = "#b00020" if error else "#555"
        spinner = SPINNER if busy else ""
        self.status.value = f"<span style='color:{colour}'>{spinner}{html.escape(text)}</span>"

    @contextmanager
    def _busy(self, button: w.Button | None) -> Iterator[None]:
        """While a callback works: every button disabled, the clicked one's icon turning."""
        buttons = [self.load, self.send, self.compare, self.clear]
        for b in buttons:
            b.disabled = True
        if button is not None:
            button.icon = BUSY_ICON
        try:
            yield
        finally:
            for b in buttons:
                b.disabled = False
            if button is not None:
                button.icon = ""

    def _guard(self, action: Callable[[], str], button: w.Button | None = None) -> bool:
        """Run a callback body, busy; expected errors become a red status line instead of a traceback."""
        try:
            with self._busy(button):
                self._set_status(action())
            return True
        except EXPECTED as err:
            self._set_status(one_line(err), error=True)  # a one-line message, without the class name
            return False

    def _baseline(self, e: Explorer) -> pd.Series:
        """The explorer's baseline fingerprint; while it is computed (once), the progress bar says how far
        it is and about how long it has left."""
        if e.baseline_ready:
            return e.baseline(progress=False)
        answers, tokens = e.baseline_size
        slow = ", minutes on a CPU" if e.handle.device.type == "cpu" else ""
        self._set_status(
            f"computing the baseline fingerprint of {e.name} (once): {answers} answers of up to {tokens} "
            f"tokens{slow} …",
            busy=True,
        )
        first_step: list[tuple[float, float]] = []  # (time, share): the pace leaves out the prompts' reading

        def show(share: float) -> None:
            self.progress.value = share
            now = time.monotonic()
            if share > 0 and not first_step:
                first_step.append((now, share))
            since, done = first_step[0] if first_step else (now, share)
            if share - done < ESTIMATE_AFTER:
                left = "estimating the time left …"
            else:
                left = f"about {duration((now - since) / (share - done) * (1 - share))} left"
            self.progress_text.value = f"{share:.0%}, {left}"

        show(0.0)
        self.progress_box.layout.display = None
        try:
            return e.baseline(progress=False, on_progress=show)
        finally:
            self.progress_box.layout.display = HIDDEN

    def _show(self, turns: list[Turn], explorers: list[Explorer]) -> None:
        curves = {}
        for t, e in zip(turns, explorers, strict=True):
            curves[f"{t.model}: reply"] = t.scores
            curves[f"{t.model}: baseline"] = self._baseline(e)
        self.banner.value = validity_banner(explorers)
        self.reply.value = turns_html(turns)
        self.chart.value = radar_png(curves, "reply vs baseline (0 = calibration midpoint)")
        self.chart.layout.display = None
        names = explorers[0].axes.names
        self.table.value = history_html(self.history, names, set(explorers[0].validated()))

    def _show_nothing(self) -> None:
        self.reply.value = self.table.value = ""
        self.chart.value = b""
        self.chart.layout.display = HIDDEN

    # -- callbacks ----------------------------------------------------------------------------------------
    def on_load(self, _=None) -> bool:
        def body() -> str:
            e = self._select()
            self.banner.value = validity_banner([e])
            valid = set(e.validated())
            base = ", ".join(f"{mark(k, k in valid)} {v:+.2f}" for k, v in self._baseline(e).items())
            return (
                f"{e.name}: {len(e.axes.names)} axes from {e.axes_file.name}; baseline over "
                f"{e.profile.n_baseline} questions ({e.profile.name} profile): {base}"
                + (f" ({MARK} failed held-out validation)" if valid < set(e.axes.names) else "")
            )

        return self._guard(body, self.load)

    def on_axes(self, _=None) -> bool:
        def body() -> str:
            e = self._select()
            self.banner.value = validity_banner([e])
            return f"axes {e.axes_file.name}"

        return self._guard(body)

    def on_send(self, _=None) -> Turn | None:
        turns: list[Turn] = []

        def body() -> str:
            e = self._select()
            self._set_status(f"{e.name} is answering …", busy=True)
            turns.append(e.ask(self.message.value, self.system.value, continue_conversation=self.keep.value))
            self._show(turns, [e])
            return f"turn {len(e.history)} of {e.name}"

        return turns[0] if self._guard(body, self.send) else None

    def on_compare(self, _=None) -> tuple[Turn, Turn] | None:
        turns: list[Turn] = []

        def body() -> str:
            if not self.other.value.strip():
                raise ValueError("name a second model to compare with")
            pair = [self._select(), self.explorer(self.other.value)]
            if pair[0] is pair[1]:
                raise ValueError("the second model is the same as the first")
            for e in pair:
                self._set_status(f"{e.name} is answering …", busy=True)
                turns.append(e.ask(self.message.value, self.system.value))
            self._show(turns, pair)
            return f"{pair[0].name} vs {pair[1].name}, each on its own axes"

        return (turns[0], turns[1]) if self._guard(body, self.compare) else None

    def on_clear(self, _=None) -> None:
        """Forget every turn (the next message starts a new conversation) and what the app shows of them."""
        for e in self._loaded_explorers():
            e.history.clear()
        self._show_nothing()
        self._set_status("history cleared")

    def reset(self) -> None:
        """The app as a person should find it, with the loaded models kept: no turns, reply or radar, an empty
        message and system prompt, a new conversation."""
        self.on_clear()
        self.message.value = self.system.value = ""
        self.keep.value = False
        self._set_status("ready: type a message")
