"""An independent reader of the answers: a judge model rates each axis from the text alone.

`Judge` is the one interface of every backend (`styleprobe.analyses.judge.backends`): the prompts of the
protocol's judge.yaml, the strict parser, bounded retries of malformed or incomplete answers, an on-disk cache
of the answers (keyed by backend, model, endpoint, settings and the question's messages, never by an API
key), and the runners that apply a judge to tables of answers, skipping the rest once an endpoint keeps
failing.

The cache holds only what parsed: a complete answer (asked never again), or the keys of an incomplete
rating that had a valid value (a later run asks only for the others). A malformed reply is not kept, so a
later run asks again.
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

from styleprobe.engine.store import write_json
from styleprobe.errors import StyleprobeError
from styleprobe.protocol.spec import DataError, Protocol

Form = tuple[tuple[str, tuple], ...]  # the expected JSON object: (key, allowed values) in order
Message = dict[str, str]


class JudgeError(StyleprobeError, ValueError):
    """The judge is misconfigured (no model, unknown backend or axis); the message is one line."""


class JudgeCallError(RuntimeError):
    """A call to the judge failed (endpoint down, unusable reply); the answer is then missing."""


class MalformedAnswer(ValueError):
    """A judge reply that is not exactly the requested JSON object."""


@dataclass(frozen=True)
class Verdict:
    """One judgement. `status` and `value`:

    - "ok": every key of the form has a valid value (`value` holds them all);
    - "partial": after `max_attempts` asks some keys still have no valid value; `value` holds the others;
    - "malformed": after `max_attempts` asks no key has a valid value; `value` is None;
    - "error": a call failed (endpoint down, unusable reply); `value` holds the keys that parsed before the
      failure, or None;
    - "skipped": not asked (the endpoint had failed too often in a row); `value` is None.

    `detail` says what was wrong; `attempts` counts the judge calls this judgement made (0: from the
    cache)."""

    value: Any
    status: str
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
def load_prompts(path: Path, axes: tuple[str, ...]) -> JudgePrompts:
    """Read and check a judge.yaml (a rubric for each of `axes`)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        prompts = JudgePrompts(
            scale=tuple(raw["scale"]),
            **{k: raw[k] for k in ("system", "rate", "compare", "retry", "rubrics")},
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise DataError(f"{path}: cannot read the judge prompts ({type(err).__name__}: {err})") from None
    missing = [a for a in axes if a not in prompts.rubrics]
    if missing:
        raise DataError(f"{path}: no rubric for {missing}")
    return prompts


def read_answer(text: str, form: Form, needed: list[str] | None = None) -> tuple[dict, str]:
    """The keys of `form` that have a valid value in the reply, and what is wrong with it ("" if nothing).

    Only a JSON object is read, optionally inside one ```json fence. The problems reported are: not JSON or
    not an object (then no key is read), keys of `needed` (default: all keys of `form`) that are missing or
    hold a value outside the allowed ones, and keys outside `form`."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    body = fenced.group(1) if fenced else body
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as err:
        return {}, f"not valid JSON: {err.msg}"
    if not isinstance(obj, dict):
        return {}, "not a JSON object"
    keys = [k for k, _ in form]
    needed = keys if needed is None else needed
    values, problems, missing = {}, [], []
    for key, allowed in form:
        if key not in obj:
            missing += [key] if key in needed else []
            continue
        value = obj[key]
        if isinstance(value, bool) or value not in allowed or type(value) is not type(allowed[0]):
            if key in needed:
                problems.append(f"{key} must be one of {list(allowed)}, got {value!r}")
        else:
            values[key] = value
    if missing:
        problems.insert(0, f"missing keys {missing}")
    extra = [k for k in obj if k not in keys]
    if extra:
        problems.append(f"unexpected keys {extra}")
    if problems and (missing or extra):
        problems.append(f"expected exactly the keys {keys}")
    return values, "; ".join(problems)


def parse_answer(text: str, form: Form) -> dict:
    """The reply as a dict with exactly the keys of `form`, each value one of its allowed values; anything
    else raises MalformedAnswer with the reason (see `read_answer`)."""
    values, problem = read_answer(text, form)
    if problem:
        raise MalformedAnswer(problem)
    return {k: values[k] for k, _ in form}


class AnswerCache:
    """One JSON file per judgement, named by the hash of everything that determines the answer (the
    request of its first ask). `answer` is the parsed answer as a JSON object: complete, or (`complete`
    false) only the keys that had a valid value."""

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

    def __init__(
        self, model: str, *, protocol: Protocol, cache_dir: Path | None = None, max_attempts: int = 3
    ):
        """`protocol` gives the axes and the prompts (its judge.yaml)."""
        if max_attempts < 1:
            raise JudgeError(f"max_attempts must be at least 1, got {max_attempts}")
        self.model = model
        self.cache = AnswerCache(cache_dir)
        self.max_attempts = max_attempts
        self.prompts = load_prompts(protocol.file("judge.yaml"), tuple(protocol.names))
        self.specs = protocol.axes

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
        """Ask, parse strictly, and keep the keys that have a valid value. While some keys have none, ask
        again (showing the reason, and a form of the keys still needed) up to `max_attempts` calls in all;
        a failed call gives an "error" verdict (see `Verdict` for the statuses). The first valid value of a
        key stays; keys outside the form are reported in the retry prompt, and ignored once every key has a
        valid value.

        Cached under the first ask's request: a complete answer, which is then never asked again, or the
        valid keys of an incomplete one, so that a later run asks only for the others (continuing the
        conversation with the keys it has). A reply with no valid key is not cached: a later run asks
        again."""
        request = {
            "kind": self.kind,
            "model": self.model,
            "endpoint": self._endpoint(),
            "settings": self.settings,
            "messages": messages,
            "form": [[k, list(v)] for k, v in form],
        }
        keys = [k for k, _ in form]
        kept: dict = {}
        cached = self.cache.get(request)
        if cached is not None:
            kept, _ = read_answer(cached, form)  # an old cache may hold a malformed reply: keep what is valid
            if len(kept) == len(keys):
                return Verdict({k: kept[k] for k in keys}, "ok")
        ask = messages
        if kept:
            missing = [k for k in keys if k not in kept]
            ask = [*messages, *self._retry(json.dumps(kept), f"missing keys {missing}")]
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            needed = tuple((k, allowed) for k, allowed in form if k not in kept)
            try:
                text = self._complete(ask, needed)
            except self.call_errors as err:
                self._keep(request, messages, kept)
                return Verdict(dict(kept) or None, "error", self._redact(_one_line(err)), attempt)
            values, reason = read_answer(text, form, [k for k, _ in needed])
            kept.update({k: v for k, v in values.items() if k not in kept})  # the first valid value stays
            if len(kept) == len(keys):
                value = {k: kept[k] for k in keys}
                self._keep(request, messages, value)
                return Verdict(value, "ok", attempts=attempt)
            ask = [*ask, *self._retry(text, reason)]
        self._keep(request, messages, kept)
        if not kept:
            return Verdict(None, "malformed", reason, self.max_attempts)
        detail = f"no valid value for {[k for k in keys if k not in kept]} ({reason})"
        return Verdict(dict(kept), "partial", detail, self.max_attempts)

    def _retry(self, reply: str, reason: str) -> list[Message]:
        retry = self.prompts.retry.format(reason=reason)
        return [{"role": "assistant", "content": reply}, {"role": "user", "content": retry}]

    def _keep(self, request: dict, messages: list[Message], value: dict) -> None:
        """Cache the valid keys of an answer (nothing when there is none)."""
        if value:
            record = {"kind": self.kind, "model": self.model, "messages": messages}
            record["complete"] = len(value) == len(request["form"])
            self.cache.put(request, json.dumps(value), record)

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
        """-2..+2 per axis (+2: strongly the first pole); None for each axis without a valid answer."""
        value = self.rate_verdict(question, response).value or {}
        return {name: value.get(name) for name in self.specs}

    def compare(self, question: str, a: str, b: str, axis: str) -> str | None:
        """ "a" or "b": which answer is more like the axis' first pole; None when the answer is missing."""
        value = self.compare_verdict(question, a, b, axis).value or {}
        return value["answer"].lower() if "answer" in value else None

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
    """`answers` (columns question, response) with one rating column per axis (float, NaN for each axis
    without a valid answer) and the status of each judgement ("ok", "partial", "malformed", "error",
    "skipped"; see `Verdict`) with its detail and the judge calls it made (`attempts`, 0 from the cache).
    Only "ok" rows are complete; "partial" rows (and "error" rows that failed after a partial reply) hold
    the axes that were read."""
    calls = [
        lambda q=q, r=r: judge.rate_verdict(q, r)
        for q, r in zip(answers["question"], answers["response"], strict=True)
    ]
    verdicts = _run(calls, max_consecutive_errors, "judge ratings", progress)
    ratings = pd.DataFrame(
        [{n: (v.value or {}).get(n, np.nan) for n in judge.specs} for v in verdicts], dtype=float
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
    judge: Judge, pairs: pd.DataFrame, *, max_consecutive_errors: int = 3, progress: bool = True
) -> pd.DataFrame:
    """Ask which of two answers (columns positive, negative) is more like the axis' first pole, showing each
    pair in both orders (positive first, then negative first; the messages, hence the cache keys, differ by
    the order). One row per showing: the pair's columns, `positive_first`, the `choice` ("a", "b" or None
    when missing), `chose_first` and `correct` (1.0, 0.0 or NaN when missing)."""
    shown = pd.concat(
        [pairs.reset_index(drop=True).assign(positive_first=first) for first in (True, False)],
        ignore_index=True,
    )
    calls = []
    for row in shown.itertuples():
        a, b = (row.positive, row.negative) if row.positive_first else (row.negative, row.positive)
        calls.append(lambda q=row.question, a=a, b=b, axis=row.axis: judge.compare_verdict(q, a, b, axis))
    verdicts = _run(calls, max_consecutive_errors, "judge comparisons", progress)
    choice = pd.Series([v.value["answer"].lower() if v.status == "ok" else None for v in verdicts])
    chose_first = (choice == "a").astype(float).where(choice.notna())
    correct = (chose_first == shown["positive_first"]).astype(float).where(choice.notna())
    out = shown.assign(choice=choice, chose_first=chose_first, correct=correct)
    return pd.concat([out, _status_columns(verdicts)], axis=1)
