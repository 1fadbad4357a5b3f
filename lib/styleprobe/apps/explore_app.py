"""A small ipywidgets app over `Explorer`: type a message, see the reply and its 7-axis radar next to the
model's baseline, keep a history of turns, and ask a second model the same message.

Every callback updates plain widget values (HTML, PNG bytes), so it can be called and checked without a
browser: `app.message.value = "..."; app.on_send()`."""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from pathlib import Path

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd

from styleprobe.apps.cli import KNOWN_ERRORS
from styleprobe.apps.explore import Explorer, Turn, axes_files, history_table
from styleprobe.engine.models import ModelHandle, load_presets
from styleprobe.protocol.validity import MARK, mark
from styleprobe.report.plots import radar

# (model name or an already loaded handle, axes file or None for the model's default) -> Explorer
Loader = Callable[[str | ModelHandle, Path | None], Explorer]
EXPECTED = (*KNOWN_ERRORS, ValueError)  # the command line's one-line errors, and bad input: shown, not raised


def default_loader(**options) -> Loader:
    """`Explorer.open` with fixed options (profile, device, dtype, root, calibrate_missing)."""
    return lambda model, axes_file: Explorer.open(model, axes_file=axes_file, **options)


def radar_png(curves: dict[str, pd.Series], title: str) -> bytes:
    ax = radar({k: v.fillna(0.0) for k, v in curves.items()}, title=title)
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", bbox_inches="tight", dpi=90)
    plt.close(ax.figure)
    return buf.getvalue()


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
        self.status = w.HTML()
        self.reply = w.HTML()
        self.chart = w.Image(format="png")
        self.table = w.HTML()
        self.load.on_click(self.on_load)
        self.send.on_click(self.on_send)
        self.compare.on_click(self.on_compare)
        self.clear.on_click(self.on_clear)
        self.axes.observe(self.on_axes, names="value")
        self.view = w.VBox(
            [
                w.HBox([self.model, self.axes, self.load]),
                self.system,
                self.message,
                w.HBox([self.keep, self.send, self.clear]),
                w.HBox([self.other, self.compare]),
                self.status,
                w.HBox([self.chart, self.reply]),
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
            self._set_status(f"loading {model} …")
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
        files = axes_files(e.ws) or [e.axes_file]
        self._explorers[(model, str(e.axes_file))] = e
        self.axes.unobserve(self.on_axes, names="value")
        self.axes.options = [(f.name if f.parent == e.axes_file.parent else str(f), str(f)) for f in files]
        self.axes.value = str(e.axes_file)
        self.axes.observe(self.on_axes, names="value")
        self._loaded = model
        return e

    @property
    def history(self) -> list[Turn]:
        """Every turn of every loaded model, in the order asked."""
        unique = {id(e): e for e in self._explorers.values()}.values()
        return sorted((t for e in unique for t in e.history), key=lambda t: t.index)

    def _set_status(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "#555"
        self.status.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    def _guard(self, action: Callable[[], str]) -> bool:
        """Run a callback body; expected errors become a red status line instead of a traceback."""
        try:
            self._set_status(action())
            return True
        except EXPECTED as err:
            self._set_status(f"{type(err).__name__}: {err}", error=True)
            return False

    def _show(self, turns: list[Turn], explorers: list[Explorer]) -> None:
        parts = []
        for t in turns:
            note = "" if t.finished else " (cut at the token budget)"
            parts.append(
                f"<b>{html.escape(t.model)}</b>{note}:<br>{html.escape(t.response) or '<i>empty</i>'}"
            )
        self.reply.value = "<br><br>".join(parts)
        curves = {}
        for t, e in zip(turns, explorers, strict=True):
            curves[f"{t.model}: reply"] = t.scores
            curves[f"{t.model}: baseline"] = e.baseline(progress=False)
        self.chart.value = radar_png(curves, "reply vs baseline (0 = calibration midpoint)")
        names, valid = explorers[0].axes.names, set(explorers[0].validated())
        table = history_table(self.history, names).round(2)
        table = table.rename(columns={n: mark(n, n in valid) for n in names})
        note = "" if valid >= set(names) else f"<p>{MARK} failed held-out validation: not interpreted</p>"
        self.table.value = table.to_html(index=False) + note

    # -- callbacks ----------------------------------------------------------------------------------------
    def on_load(self, _=None) -> bool:
        def body() -> str:
            e = self._select()
            valid = set(e.validated())
            base = ", ".join(f"{mark(k, k in valid)} {v:+.2f}" for k, v in e.baseline().items())
            return (
                f"{e.handle.model_id}: {len(e.axes.names)} axes from {e.axes_file.name}; baseline over "
                f"{e.profile.n_baseline} questions ({e.profile.name} profile): {base}"
                + (f" ({MARK} failed held-out validation)" if valid < set(e.axes.names) else "")
            )

        return self._guard(body)

    def on_axes(self, _=None) -> bool:
        return self._guard(lambda: f"axes {self._select().axes_file.name}")

    def on_send(self, _=None) -> Turn | None:
        turns: list[Turn] = []

        def body() -> str:
            e = self._select()
            turns.append(e.ask(self.message.value, self.system.value, continue_conversation=self.keep.value))
            self._show(turns, [e])
            return f"turn {len(e.history)} of {e.name}"

        return turns[0] if self._guard(body) else None

    def on_compare(self, _=None) -> tuple[Turn, Turn] | None:
        turns: list[Turn] = []

        def body() -> str:
            if not self.other.value.strip():
                raise ValueError("name a second model to compare with")
            pair = [self._select(), self.explorer(self.other.value)]
            if pair[0] is pair[1]:
                raise ValueError("the second model is the same as the first")
            turns.extend(e.ask(self.message.value, self.system.value) for e in pair)
            self._show(turns, pair)
            return f"{pair[0].name} vs {pair[1].name}, each on its own axes"

        return (turns[0], turns[1]) if self._guard(body) else None

    def on_clear(self, _=None) -> None:
        for e in self._explorers.values():
            e.history.clear()
        self.table.value = self.reply.value = ""
        self._set_status("history cleared")
