"""An independent reader of the answers: a judge model rates each axis from the text alone.

`Judge` is the one interface of every backend (`styleprobe.judge_backends`): the prompts of
`data/judge.yaml`, the strict parser, bounded retries of malformed answers, an on-disk cache of every call
(keyed by backend, model, endpoint, settings and messages, never by an API key), and the runners that
apply a judge to tables of answers, skipping the rest once an endpoint keeps failing.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from styleprobe.data import DataError, load_axes
from styleprobe.paths import DATA_DIR
from styleprobe.store import write_json

Form = tuple[tuple[str, tuple], ...]  # the expected JSON object: (key, allowed values) in order
Message = dict[str, str]


class JudgeError(ValueError):
    """The judge is misconfigured (no model, unknown backend or axis); the message is one line."""


class JudgeCallError(RuntimeError):
    """A call to the judge failed (endpoint down, unusable reply); the answer is then missing."""


class MalformedAnswer(ValueError):
    """A judge reply that is not exactly the requested JSON object."""


@dataclass(frozen=True)
class Verdict:
    """One judgement: `value` is the parsed answer, or None when it is missing."""

    value: Any
    status: str  # "ok", "malformed" (after every attempt), "error" (the call failed) or "skipped"
    detail: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class JudgePrompts:
    scale: tuple[int, ...]
    system: str
    rate: str
    compare: str
    retry: str
    rubrics: dict[str, str]


@cache
def load_prompts(path: Path | None = None) -> JudgePrompts:
    """Read and check data/judge.yaml (a rubric for every axis of axes.yaml)."""
    path = Path(path) if path else DATA_DIR / "judge.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        prompts = JudgePrompts(
            scale=tuple(raw["scale"]),
            **{k: raw[k] for k in ("system", "rate", "compare", "retry", "rubrics")},
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise DataError(f"{path}: cannot read the judge prompts ({type(err).__name__}: {err})") from None
    missing = set(load_axes()) - set(prompts.rubrics)
    if missing:
        raise DataError(f"{path}: no rubric for {sorted(missing)}")
    return prompts


def parse_answer(text: str, form: Form) -> dict:
    """The reply as a dict with exactly the keys of `form`, each value one of its allowed values.

    Only a JSON object is accepted, optionally inside one ```json fence; anything else raises
    MalformedAnswer with the reason."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    body = fenced.group(1) if fenced else body
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as err:
        raise MalformedAnswer(f"not valid JSON: {err.msg}") from None
    if not isinstance(obj, dict):
        raise MalformedAnswer("not a JSON object")
    keys = [k for k, _ in form]
    if set(obj) != set(keys):
        raise MalformedAnswer(f"expected exactly the keys {keys}")
    for key, allowed in form:
        value = obj[key]
        if isinstance(value, bool) or value not in allowed or type(value) is not type(allowed[0]):
            raise MalformedAnswer(f"{key} must be one of {list(allowed)}, got {value!r}")
    return {k: obj[k] for k in keys}


class AnswerCache:
    """One JSON file per judge call, named by the hash of everything that determines the answer."""

    def __init__(self, root: Path | None):
        self.root = Path(root) if root else None

    @staticmethod
    def key(request: dict) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, request: dict) -> str | None:
        if self.root is None:
            return None
        path = self._path(self.key(request))
        return json.loads(path.read_text())["answer"] if path.exists() else None

    def put(self, request: dict, answer: str, record: dict) -> None:
        if self.root is not None:
            write_json(self._path(self.key(request)), {**record, "answer": answer})


class Judge(ABC):
    """Rates answers on the style axes and compares two answers, from the text alone."""

    kind: str
    call_errors: tuple[type[Exception], ...] = ()  # failures of a call that make its answer missing

    def __init__(self, model: str, *, cache_dir: Path | None = None, max_attempts: int = 3):
        if max_attempts < 1:
            raise JudgeError(f"max_attempts must be at least 1, got {max_attempts}")
        self.model = model
        self.cache = AnswerCache(cache_dir)
        self.max_attempts = max_attempts
        self.prompts = load_prompts()
        self.specs = load_axes()

    # -- what a backend provides ---------------------------------------------------------------------------
    @abstractmethod
    def _complete(self, messages: list[Message], form: Form) -> str:
        """The judge's raw reply to `messages` (`form` tells the expected JSON object)."""

    @property
    def settings(self) -> dict:
        """Everything besides the messages that changes the reply (part of the cache key)."""
        return {}

    def _endpoint(self) -> str:
        """Where the model is served (hashed into the cache key, never written out)."""
        return ""

    def describe(self) -> dict:
        return {"kind": self.kind, "model": self.model, **self.settings}

    # -- shared protocol ------------------------------------------------------------------------------------
    def ask(self, messages: list[Message], form: Form) -> Verdict:
        """Ask, parse strictly, and on a malformed reply ask again (showing the reason) up to max_attempts
        times; a failed call gives an "error" verdict. Every reply is cached, malformed ones included."""
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            request = {
                "kind": self.kind,
                "model": self.model,
                "endpoint": self._endpoint(),
                "settings": self.settings,
                "messages": messages,
                "form": [[k, list(v)] for k, v in form],
            }
            text = self.cache.get(request)
            if text is None:
                try:
                    text = self._complete(messages, form)
                except self.call_errors as err:
                    return Verdict(None, "error", self._redact(_one_line(err)), attempt)
                self.cache.put(request, text, {"kind": self.kind, "model": self.model, "messages": messages})
            try:
                return Verdict(parse_answer(text, form), "ok", attempts=attempt)
            except MalformedAnswer as err:
                reason = str(err)
            retry = self.prompts.retry.format(reason=reason)
            messages = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": retry}]
        return Verdict(None, "malformed", reason, self.max_attempts)

    def rating_messages(self, question: str, response: str) -> tuple[list[Message], Form]:
        p = self.prompts
        lines = [
            f"- {name} (+2 {s.positive}, -2 {s.negative}): {p.rubrics[name]}"
            for name, s in self.specs.items()
        ]
        template = "{" + ", ".join(f'"{name}": <-2..2>' for name in self.specs) + "}"
        user = p.rate.format(
            question=question, response=response, rubrics="\n".join(lines), template=template
        )
        form = tuple((name, p.scale) for name in self.specs)
        return self._with_system(user), form

    def comparison_messages(self, question: str, a: str, b: str, axis: str) -> tuple[list[Message], Form]:
        if axis not in self.specs:
            raise JudgeError(f"unknown axis {axis!r}; choose from {', '.join(self.specs)}")
        spec = self.specs[axis]
        rubric = self.prompts.rubrics[axis]
        user = self.prompts.compare.format(question=question, a=a, b=b, pole=spec.positive, rubric=rubric)
        return self._with_system(user), (("answer", ("A", "B")),)

    def rate_verdict(self, question: str, response: str) -> Verdict:
        return self.ask(*self.rating_messages(question, response))

    def compare_verdict(self, question: str, a: str, b: str, axis: str) -> Verdict:
        return self.ask(*self.comparison_messages(question, a, b, axis))

    def rate(self, question: str, response: str) -> dict[str, int | None]:
        """-2..+2 per axis (+2: strongly the first pole); None for every axis when the answer is missing."""
        value = self.rate_verdict(question, response).value
        return {name: (value[name] if value else None) for name in self.specs}

    def compare(self, question: str, a: str, b: str, axis: str) -> str | None:
        """ "a" or "b": which answer is more like the axis' first pole; None when the answer is missing."""
        value = self.compare_verdict(question, a, b, axis).value
        return value["answer"].lower() if value else None

    def _with_system(self, user: str) -> list[Message]:
        return [{"role": "system", "content": self.prompts.system}, {"role": "user", "content": user}]

    def _redact(self, text: str) -> str:
        return text


def _one_line(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"[:300]


def _run(calls: list, max_consecutive_errors: int, desc: str, progress: bool) -> list[Verdict]:
    """Call each judgement in turn; after `max_consecutive_errors` failed calls in a row the endpoint is
    taken as down and the rest are skipped (a later run asks them again; cached answers cost nothing)."""
    verdicts, streak = [], 0
    for call in tqdm(calls, desc=desc, disable=not progress):
        if streak >= max_consecutive_errors:
            verdicts.append(Verdict(None, "skipped", f"not asked after {streak} failed calls in a row"))
            continue
        verdict = call()
        streak = streak + 1 if verdict.status == "error" else 0
        verdicts.append(verdict)
    return verdicts


def _status_columns(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "status": [v.status for v in verdicts],
            "detail": [v.detail for v in verdicts],
            "attempts": [v.attempts for v in verdicts],
        }
    )


def rate_responses(
    judge: Judge, answers: pd.DataFrame, *, max_consecutive_errors: int = 3, progress: bool = True
) -> pd.DataFrame:
    """`answers` (columns question, response) with one rating column per axis (float, NaN when missing)
    and the status of each judgement ("ok", "malformed", "error", "skipped") with its detail."""
    calls = [
        lambda q=q, r=r: judge.rate_verdict(q, r)
        for q, r in zip(answers["question"], answers["response"], strict=True)
    ]
    verdicts = _run(calls, max_consecutive_errors, "judge ratings", progress)
    ratings = pd.DataFrame(
        [{n: (v.value[n] if v.value else np.nan) for n in judge.specs} for v in verdicts], dtype=float
    )
    return pd.concat([answers.reset_index(drop=True), ratings, _status_columns(verdicts)], axis=1)


def evaluation_pairs(records: pd.DataFrame) -> pd.DataFrame:
    """Held-out calibration answers as pairs: one row per (axis, evaluation question) with the answers
    under the positive and the negative instruction (pairs with an empty answer are left out)."""
    ev = records[(records["split"] == "evaluation") & ~records["empty"].astype(bool)]
    wide = ev.pivot_table(
        index=["axis", "q_index", "question"], columns="pole", values="response", aggfunc="first"
    )
    wide = wide.rename(columns={1: "positive", -1: "negative"}).dropna(subset=["positive", "negative"])
    pairs = wide[["positive", "negative"]].reset_index().rename_axis(columns=None)
    order = {name: i for i, name in enumerate(dict.fromkeys(records["axis"]))}  # the axes' own order
    by_order = pairs.sort_values(["axis", "q_index"], key=lambda c: c.map(order) if c.name == "axis" else c)
    return by_order.reset_index(drop=True)


def compare_pairs(
    judge: Judge,
    pairs: pd.DataFrame,
    *,
    seed: int = 0,
    max_consecutive_errors: int = 3,
    progress: bool = True,
) -> pd.DataFrame:
    """Ask which of two answers (columns positive, negative) is more like the axis' first pole. The order
    shown is random (seeded, so re-runs hit the cache); `correct` is 1.0, 0.0 or NaN when missing."""
    positive_first = np.random.default_rng(seed).random(len(pairs)) < 0.5
    calls = []
    for row, first in zip(pairs.itertuples(), positive_first, strict=True):
        a, b = (row.positive, row.negative) if first else (row.negative, row.positive)
        calls.append(lambda q=row.question, a=a, b=b, axis=row.axis: judge.compare_verdict(q, a, b, axis))
    verdicts = _run(calls, max_consecutive_errors, "judge comparisons", progress)
    choice = [v.value["answer"].lower() if v.value else None for v in verdicts]
    correct = [
        np.nan if c is None else float((c == "a") == first)
        for c, first in zip(choice, positive_first, strict=True)
    ]
    out = pairs.reset_index(drop=True).assign(positive_first=positive_first, choice=choice, correct=correct)
    return pd.concat([out, _status_columns(verdicts)], axis=1)
