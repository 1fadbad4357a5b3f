"""The reader of `styleprobe project` input: every line validated on its own, in either format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from styleprobe.formats.conversations import (
    BadLine,
    Conversation,
    output_line,
    parse_line,
    read_conversations,
)

GOOD = json.dumps({"question": "What is rain?", "response": "Water falling from clouds."})
HI = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]


def _chat(*messages: tuple[str, object]) -> str:
    return json.dumps({"messages": [{"role": role, "content": content} for role, content in messages]})


def _write(path: Path, *lines: bytes | str) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode("utf-8") for x in lines) + b"\n")
    return path


BAD = [
    # the styleprobe format
    pytest.param(
        '{"response": "ok", "history": "hi"}',
        "`history` must be a list of [user, assistant] pairs, got str",
        id="history-str",
    ),
    pytest.param('{"response": "ok", "history": {"u": "a"}}', "pairs, got dict", id="history-dict"),
    pytest.param('{"response": "ok", "history": null}', "pairs, got null", id="history-null"),
    pytest.param(
        '{"response": "ok", "history": [["hi"]]}',
        "`history[0]` must be a [user, assistant] pair",
        id="history-short-pair",
    ),
    pytest.param(
        '{"response": "ok", "history": [["a", "b", "c"]]}', "got a list of 3", id="history-long-pair"
    ),
    pytest.param(
        '{"response": "ok", "history": ["ab"]}',
        "`history[0]` must be a [user, assistant] pair, got str",
        id="history-pair-str",
    ),
    pytest.param(
        '{"response": "ok", "history": [["a", 5]]}',
        "`history[0][1]` must be a string, got int",
        id="history-int-turn",
    ),
    pytest.param(
        '{"question": 5, "response": "ok"}', "`question` must be a string, got int", id="question-int"
    ),
    pytest.param(
        '{"question": null, "response": "ok"}', "`question` must be a string, got null", id="question-null"
    ),
    pytest.param('{"response": 5}', "`response` must be a string, got int", id="response-int"),
    pytest.param('{"response": " \\n\\t"}', "`response` is empty", id="response-blank"),
    pytest.param('{"question": "x"}', "missing `response`", id="response-missing"),
    pytest.param(
        '{"system": ["be nice"], "response": "ok"}',
        "`system` must be a string or null, got list",
        id="system-list",
    ),
    pytest.param('{"system": true, "response": "ok"}', "got bool", id="system-bool"),
    # bytes, JSON and strings
    pytest.param(b'{"response": "caf\xe9"}', "line is not valid UTF-8", id="not-utf8"),
    pytest.param("{not json", "line is not valid JSON", id="not-json"),
    pytest.param('{"response": "ok", "score": NaN}', "NaN is not allowed", id="nan"),
    pytest.param('{"response": "ok", "score": 1e999}', "out of range", id="overflow"),
    pytest.param('{"response": "ok", "n": ' + "9" * 5000 + "}", "integer of 5000 digits", id="big-int"),
    pytest.param('{"response": "ok", "response": ""}', "duplicate key 'response'", id="duplicate-key"),
    pytest.param('["ok"]', "line must be a JSON object, got list", id="list"),
    pytest.param('"ok"', "line must be a JSON object, got str", id="string"),
    pytest.param("null", "line must be a JSON object, got null", id="null"),
    pytest.param('{"response": "ok \\ud800"}', "lone surrogate", id="surrogate-response"),
    pytest.param(
        '{"response": "ok", "meta": {"note": ["\\udfff"]}}', "lone surrogate", id="surrogate-copied"
    ),
    pytest.param('{"response": "ok", "\\ud83d": 1}', "lone surrogate", id="surrogate-key"),
    pytest.param(_chat(("user", "hi"), ("assistant", "ok \ud800")), "lone surrogate", id="surrogate-chat"),
    # the chat format
    pytest.param(
        _chat(("user", "hi"), ("assistant", "yo"), ("user", "and?")),
        "must end with an assistant",
        id="ends-with-user",
    ),
    pytest.param(_chat(("system", "be nice")), "must end with an assistant message", id="only-system"),
    pytest.param(
        _chat(("user", "hi"), ("tool", "42"), ("assistant", "ok")), "unknown role 'tool'", id="unknown-role"
    ),
    pytest.param(
        _chat(("user", "hi"), ("user", "again"), ("assistant", "ok")),
        "two user messages in a row",
        id="two-users",
    ),
    pytest.param(
        _chat(("user", "hi"), ("assistant", "a"), ("assistant", "b")),
        "two assistant messages",
        id="two-assistants",
    ),
    pytest.param(
        _chat(("system", "s"), ("assistant", "hello"), ("user", "hi"), ("assistant", "ok")),
        "assistant message before any user",
        id="assistant-first",
    ),
    pytest.param(
        _chat(("user", [{"type": "text", "text": "hi"}]), ("assistant", "ok")),
        "`messages[0].content` must be a string, got list",
        id="content-list",
    ),
    pytest.param(
        _chat(("user", "hi"), ("assistant", None)),
        "`messages[1].content` must be a string, got null",
        id="content-null",
    ),
    pytest.param(
        _chat(("user", "hi"), ("assistant", "  ")), "final assistant message is empty", id="empty-response"
    ),
    pytest.param(
        _chat(("user", "hi"), ("system", "s"), ("assistant", "ok")),
        "only allowed as the first message",
        id="system-late",
    ),
    pytest.param(
        _chat(("system", "a"), ("system", "b"), ("user", "hi"), ("assistant", "ok")),
        "only allowed as the first",
        id="two-systems",
    ),
    pytest.param(
        '{"messages": [{"content": "hi"}, {"role": "assistant", "content": "ok"}]}',
        "`messages[0]` has no `role`",
        id="no-role",
    ),
    pytest.param('{"messages": ["hi", "ok"]}', "`messages[0]` must be an object", id="message-str"),
    pytest.param('{"messages": {"role": "user"}}', "`messages` must be a non-empty list", id="messages-dict"),
    pytest.param('{"messages": []}', "got an empty list", id="messages-empty"),
    pytest.param(json.dumps({"messages": HI, "response": "b"}), "both formats", id="both-formats"),
    pytest.param(json.dumps({"messages": HI, "question": "q"}), "both formats", id="both-formats-question"),
]


@pytest.mark.parametrize(("text", "reason"), BAD)
def test_a_bad_line_is_refused_alone(tmp_path, text, reason):
    path = _write(tmp_path / "in.jsonl", GOOD, text, "", GOOD)
    good, bad = read_conversations(path)
    assert [c.line for c in good] == [1, 4]
    assert len(bad) == 1 and bad[0].line == 2, bad
    assert reason in bad[0].reason and "\n" not in bad[0].reason
    if isinstance(text, str):  # the same verdict from parse_line, at the number given
        assert parse_line(text, 7) == BadLine(7, bad[0].reason)


def test_good_lines_of_both_formats(tmp_path):
    full = {
        "id": "a-1",
        "question": "And tomorrow?",
        "system": "Be brief.",
        "history": [["Weather today?", "Sunny."], ["Warm?", "Yes, 25 °C."]],
        "response": "Rain.",
        "meta": {"source": "log", "score": 0.5},  # other keys: kept, copied to the output
    }
    bare = {"response": "Hi.", "system": None}
    chat = {
        "messages": [{"role": "user", "content": "What is rain?"}, {"role": "assistant", "content": "Water."}]
    }
    turns = [("Hi.", "Hello."), ("Weather?", "Sunny."), ("Tomorrow?", "Rain.")]
    messages = [{"role": r, "content": t} for u, a in turns for r, t in (("user", u), ("assistant", a))]
    long_chat = {"id": 7, "messages": [{"role": "system", "content": "You are terse."}, *messages]}
    lines = [json.dumps(row, ensure_ascii=False) for row in (full, bare, chat, long_chat)]
    good, bad = read_conversations(_write(tmp_path / "in.jsonl", *lines))
    assert bad == []
    full_history = (("Weather today?", "Sunny."), ("Warm?", "Yes, 25 °C."))
    assert good == [
        Conversation(1, "And tomorrow?", "Be brief.", full_history, "Rain.", full),
        Conversation(2, "", None, (), "Hi.", bare),
        Conversation(3, "What is rain?", None, (), "Water.", chat),
        Conversation(4, "Tomorrow?", "You are terse.", tuple(turns[:2]), "Rain.", long_chat),
    ]
    assert all(type(pair) is tuple for c in good for pair in c.history)
    assert [parse_line(line, n) for n, line in enumerate(lines, start=1)] == good


def test_a_bom_on_line_one_is_ignored(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + GOOD.encode() + b"\r\n" + _chat(("user", "a"), ("assistant", "b")).encode()
    )
    good, bad = read_conversations(path)
    assert bad == [] and [(c.line, c.question) for c in good] == [(1, "What is rain?"), (2, "a")]


def test_one_non_utf8_line_among_good_ones(tmp_path):
    path = _write(
        tmp_path / "in.jsonl",
        GOOD,
        "",
        b'{"response": "\xff\xfe broken"}',
        '{"response": "caf\u00e9 \U0001f600"}',
        "   ",
        GOOD,
    )
    good, bad = read_conversations(path)
    assert [c.line for c in good] == [1, 4, 6] and good[1].response == "caf\u00e9 \U0001f600"
    assert len(bad) == 1 and bad[0].line == 3 and "not valid UTF-8" in bad[0].reason


def test_lines_are_split_on_newlines_only(tmp_path):
    # json.dumps(ensure_ascii=False) writes U+2028, U+0085 and \x1c raw; str.splitlines would cut there
    text = json.dumps({"response": "one\u2028two\x85three\x1cfour"}, ensure_ascii=False)
    good, bad = read_conversations(_write(tmp_path / "in.jsonl", text, GOOD))
    assert (
        bad == [] and [c.line for c in good] == [1, 2] and good[0].response == "one\u2028two\x85three\x1cfour"
    )


def test_a_lone_surrogate_is_refused_but_a_pair_is_read():
    assert isinstance(parse_line('{"response": "\\ud800"}', 1), BadLine)
    conv = parse_line('{"response": "smile \\ud83d\\ude00"}', 1)
    assert isinstance(conv, Conversation) and conv.response == "smile \U0001f600"
    output_line(conv.row, {}).encode("utf-8")  # writable as UTF-8


def test_output_line_writes_nan_as_null_and_rounds():
    row = {"question": "Qu'est-ce que la pluie ?", "response": "De l'eau \u2014 \U0001f327", "id": 3}
    text = output_line(
        row, {"warm_cold": 0.123456, "a": float("nan"), "b": float("inf"), "c": None, "d": -1.0}
    )
    assert "\n" not in text and "NaN" not in text and "Infinity" not in text

    def refuse(name: str) -> float:
        raise AssertionError(f"invalid JSON token {name}")

    out = json.loads(text, parse_constant=refuse)
    assert out == {**row, "projection": {"warm_cold": 0.1235, "a": None, "b": None, "c": None, "d": -1.0}}
    assert "\U0001f327" in text  # not escaped (ensure_ascii=False)
    assert math.isclose(json.loads(output_line(row, {"x": 1 / 3}))["projection"]["x"], 0.3333)
