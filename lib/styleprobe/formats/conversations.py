"""Reading the conversations that `styleprobe project` scores: one JSON object per line of a JSONL file, in
either of two formats. The styleprobe format has a `response` (a non-blank string, required), and optionally
a `question` (a string, default ""), a `system` prompt (a string or null) and a `history` of earlier
[user, assistant] pairs of strings. The OpenAI chat format has `messages`, a list of {"role", "content"}
objects with string content: an optional first `system` message, then user and assistant turns in
alternation, ending with the assistant message whose content is the response; the user message just before
it is the question and the earlier turns form the history. Every line is validated on its own: a bad line
becomes a :class:`BadLine` (its 1-based number and a one-line reason), every good line a
:class:`Conversation` whose parsed object (`row`, other keys included) is copied to the output by
:func:`output_line`. The file is read as bytes and split on newlines only; a UTF-8 BOM at its start is
ignored, blank lines are skipped, and a line that is not UTF-8, not strict JSON (no NaN or Infinity, no
duplicate keys) or holds a lone surrogate escape (which cannot be written back as UTF-8) is a bad line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOM = b"\xef\xbb\xbf"
ROLES = ("system", "user", "assistant")
SIMPLE_KEYS = ("response", "question", "system", "history")  # the styleprobe format's keys


@dataclass(frozen=True)
class Conversation:
    """One valid line: what is read through the model, and the object as given."""

    line: int  # 1-based line number in the file
    question: str
    system: str | None
    history: tuple[tuple[str, str], ...]
    response: str
    row: dict[str, Any] = field(hash=False)  # the parsed JSON object as given, copied to the output


@dataclass(frozen=True)
class BadLine:
    """One refused line and why, in one line of text."""

    line: int
    reason: str


class _Invalid(ValueError):
    """The reason a line is refused."""


def _kind(value: object) -> str:
    """The type of a parsed JSON value, as named in reasons."""
    return "null" if value is None else type(value).__name__


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Invalid(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> float:
    raise _Invalid(f"line is not valid JSON: {name} is not allowed")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999, which Python's json reads as inf
        raise _Invalid(f"number {text[:30]} is out of range")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # past Python's limit on integer digits
        raise _Invalid(f"integer of {len(text)} digits is out of range") from None


def _check_encodable(value: object) -> None:
    """Refuse lone surrogates (from escapes such as "\\ud800") anywhere in a value, keys included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Invalid("string contains a lone surrogate (invalid \\u escape)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _optional_str(row: dict[str, Any], key: str, default: str) -> str:
    value = row.get(key, default)
    if not isinstance(value, str):
        raise _Invalid(f"`{key}` must be a string, got {_kind(value)}")
    return value


def _from_simple(row: dict[str, Any]) -> tuple[str, str | None, tuple[tuple[str, str], ...], str]:
    if "response" not in row:
        raise _Invalid("missing `response` (or `messages` in the chat format)")
    response = row["response"]
    if not isinstance(response, str):
        raise _Invalid(f"`response` must be a string, got {_kind(response)}")
    if not response.strip():
        raise _Invalid("`response` is empty")
    question = _optional_str(row, "question", "")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise _Invalid(f"`system` must be a string or null, got {_kind(system)}")
    history = row.get("history", [])
    if not isinstance(history, list):
        raise _Invalid(f"`history` must be a list of [user, assistant] pairs, got {_kind(history)}")
    pairs = []
    for i, pair in enumerate(history):
        if not isinstance(pair, list) or len(pair) != 2:
            got = f"a list of {len(pair)}" if isinstance(pair, list) else _kind(pair)
            raise _Invalid(f"`history[{i}]` must be a [user, assistant] pair, got {got}")
        for j, turn in enumerate(pair):
            if not isinstance(turn, str):
                raise _Invalid(f"`history[{i}][{j}]` must be a string, got {_kind(turn)}")
        pairs.append((pair[0], pair[1]))
    return question, system, tuple(pairs), response


def _from_messages(row: dict[str, Any]) -> tuple[str, str | None, tuple[tuple[str, str], ...], str]:
    both = [key for key in SIMPLE_KEYS if key in row]
    if both:
        raise _Invalid(f"line has both formats: `messages` and `{both[0]}`")
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        got = "an empty list" if messages == [] else _kind(messages)
        raise _Invalid(f"`messages` must be a non-empty list of messages, got {got}")
    system = None
    turns: list[str] = []  # contents of the user and assistant messages, alternating from a user message
    for i, message in enumerate(messages):
        where = f"`messages[{i}]`"
        if not isinstance(message, dict):
            raise _Invalid(f"{where} must be an object with `role` and `content`, got {_kind(message)}")
        for key in ("role", "content"):
            if key not in message:
                raise _Invalid(f"{where} has no `{key}`")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise _Invalid(f"{where} has unknown role {role!r} (expected system, user or assistant)")
        if not isinstance(content, str):
            raise _Invalid(f"`messages[{i}].content` must be a string, got {_kind(content)}")
        if role == "system":
            if i != 0:
                raise _Invalid(f"{where}: a system message is only allowed as the first message")
            system = content
            continue
        expected = "user" if len(turns) % 2 == 0 else "assistant"
        if role != expected:
            if role == "assistant" and not turns:
                raise _Invalid(f"{where}: assistant message before any user message")
            raise _Invalid(f"{where}: two {role} messages in a row")
        turns.append(content)
    if not turns or len(turns) % 2:
        raise _Invalid("conversation must end with an assistant message")
    response = turns[-1]
    if not response.strip():
        raise _Invalid("the final assistant message is empty")
    history = tuple(zip(turns[:-2:2], turns[1:-2:2], strict=True))
    return turns[-2], system, history, response


def parse_line(text: str, line: int) -> Conversation | BadLine:
    """Validate one decoded line (without its newline); `line` is its 1-based number, for the result."""
    try:
        try:
            row = json.loads(
                text,
                object_pairs_hook=_no_duplicates,
                parse_constant=_no_constant,
                parse_float=_finite,
                parse_int=_int,
            )
        except json.JSONDecodeError as err:
            raise _Invalid(f"line is not valid JSON: {err.msg} at column {err.colno}") from None
        except RecursionError:
            raise _Invalid("line is not valid JSON: nested too deeply") from None
        except _Invalid:
            raise
        except ValueError as err:  # not expected: the hooks above raise _Invalid
            raise _Invalid(f"line is not valid JSON: {err}".splitlines()[0]) from None
        if not isinstance(row, dict):
            raise _Invalid(f"line must be a JSON object, got {_kind(row)}")
        _check_encodable(row)
        parse = _from_messages if "messages" in row else _from_simple
        question, system, history, response = parse(row)
    except _Invalid as err:
        return BadLine(line, str(err))
    return Conversation(line, question, system, history, response, row)


def read_conversations(path: Path) -> tuple[list[Conversation], list[BadLine]]:
    """The valid conversations of a JSONL file and the refused lines, both in file order. Reading errors
    (OSError, IsADirectoryError) propagate."""
    data = Path(path).read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    good: list[Conversation] = []
    bad: list[BadLine] = []
    # Split on b"\n" only: str.splitlines would also split inside JSON strings at U+2028, U+0085, \x1c, ...
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as err:
            where = f"byte 0x{raw[err.start]:02x} at offset {err.start}"
            bad.append(BadLine(number, f"line is not valid UTF-8 ({where})"))
            continue
        if not text.strip():
            continue
        result = parse_line(text, number)
        (good if isinstance(result, Conversation) else bad).append(result)
    return good, bad


def output_line(row: dict[str, Any], projection: dict[str, float | None]) -> str:
    """One JSON line (no newline): `row` plus a `projection` object (replacing any already there), each value
    rounded to 4 decimals, NaN, infinities and None written as null."""
    values = {
        name: None if v is None or not math.isfinite(float(v)) else round(float(v), 4)
        for name, v in projection.items()
    }
    return json.dumps({**row, "projection": values}, ensure_ascii=False, allow_nan=False)
