"""The external judge: strict parsing, retries, caching, the HTTP backend against a local chat-completions
server (good answers, rate limits, server errors, timeouts, malformed replies), the local backend on a tiny
model, the statistics, and that an API key is never written anywhere."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from chat_server import AXES, ChatServer, quoted_answer
from waiting import WAIT

from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.analyses.judge import analysis
from styleprobe.analyses.judge import stats as judge_stats
from styleprobe.analyses.judge.backends import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_MODEL,
    LocalJudge,
    OpenAIJudge,
    make_judge,
)
from styleprobe.analyses.judge.core import (
    AnswerCache,
    Judge,
    JudgeCallError,
    JudgeError,
    MalformedAnswer,
    Verdict,
    compare_pairs,
    evaluation_pairs,
    parse_answer,
    rate_responses,
    read_answer,
)
from styleprobe.paths import data_dir
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.spec import DataError, Protocol
from styleprobe.protocol.validity import mark
from styleprobe.report import paper
from styleprobe.report.results import update_results
from styleprobe.workspace import Workspace

KEY = "sk-test-5f2b9c1e7d"  # a fake key: it must never reach a file
RATING_FORM = tuple((a, (-2, -1, 0, 1, 2)) for a in AXES)
PROTOCOL = Protocol.load()


def remote(server: ChatServer, tmp_path: Path, **kwargs) -> OpenAIJudge:
    """A judge of the test server; its timeout is generous (a busy machine answers slowly), except where a
    test times out on purpose."""
    options = {"api_key": KEY, "timeout": WAIT, "max_retries": 2, "cache_dir": tmp_path / "cache", **kwargs}
    return OpenAIJudge("test-judge", base_url=server.base_url, protocol=PROTOCOL, **options)


def answers(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "q_index": range(n),
            "question": [f"question {i}?" for i in range(n)],
            "response": ["x" * i for i in range(n)],
        }
    )


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


# -- parsing -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        json.dumps(dict.fromkeys(AXES, 2)),
        "```json\n" + json.dumps(dict.fromkeys(AXES, -1)) + "\n```",
        "  " + json.dumps(dict.fromkeys(AXES, 0)) + "\n",
    ],
)
def test_parse_accepts_the_requested_object(text):
    assert set(parse_answer(text, RATING_FORM)) == set(AXES)


@pytest.mark.parametrize(
    "change",
    [
        {"warm_cold": 3},
        {"warm_cold": 1.0},
        {"warm_cold": True},
        {"warm_cold": "1"},
        {"warm_cold": None},
        {"extra": 1},
    ],
)
def test_parse_rejects_values_and_keys_outside_the_form(change):
    with pytest.raises(MalformedAnswer):
        parse_answer(json.dumps({**dict.fromkeys(AXES, 1), **change}), RATING_FORM)


@pytest.mark.parametrize("text", ['{"warm_cold": 1}', "[1, 2]", "sure! {}", '{"warm_cold": 1', ""])
def test_parse_rejects_other_replies(text):
    with pytest.raises(MalformedAnswer):
        parse_answer(text, RATING_FORM)


# -- the HTTP backend ----------------------------------------------------------------------------------------
def test_endpoint_sees_only_the_text_and_answers_are_parsed(server, tmp_path):
    judge = remote(server, tmp_path)
    assert judge.rate("How do tides work?", "The moon pulls the sea.") == dict.fromkeys(AXES, 1)
    assert judge.compare("How do tides work?", "Short.", "Long and kind.", "warm_cold") == "a"
    rate_request = server.requests[0]
    body, headers = rate_request["body"], {k.lower(): v for k, v in rate_request["headers"].items()}
    assert rate_request["path"] == "/v1/chat/completions" and body["model"] == "test-judge"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["response_format"] == {"type": "json_object"} and body["temperature"] == 0
    assert quoted_answer(body) == "The moon pulls the sea."
    text = json.dumps(body["messages"]).lower()
    assert "projection" not in text and "hidden" not in text and "instruction" not in text
    assert "Which answer is more warm?" in server.requests[1]["body"]["messages"][-1]["content"]


def test_rate_limit_backs_off_as_the_server_asks(server, tmp_path):
    server.script.extend(
        [("status", 429, {"retry-after-ms": "400"}), ("status", 429, {"retry-after-ms": "10"})]
    )
    start = time.monotonic()
    verdict = remote(server, tmp_path).rate_verdict("q?", "r")
    assert verdict.status == "ok" and len(server.requests) == 3
    assert time.monotonic() - start >= 0.4


def test_server_errors_are_retried_then_recorded_as_missing(server, tmp_path):
    server.default = ("status", 500, {"retry-after-ms": "5"})
    judge = remote(server, tmp_path, max_retries=2)
    verdict = judge.rate_verdict("q?", "r")
    assert verdict.status == "error" and "500" in verdict.detail
    assert len(server.requests) == 3  # the first try and two retries
    assert judge.rate("q?", "r") == dict.fromkeys(AXES)  # missing, and not cached: asked again
    assert len(server.requests) == 6


def test_slow_endpoint_times_out_and_is_retried(server, tmp_path):
    server.script.append("stall")  # a request that never gets its reply: the client's timeout ends it
    assert remote(server, tmp_path, timeout=3.0).rate_verdict("q?", "r").status == "ok"
    assert len(server.requests) == 2
    server.default = "stall"
    verdict = remote(server, tmp_path, timeout=3.0, max_retries=1).rate_verdict("another q?", "r")
    assert verdict.status == "error" and "Timeout" in verdict.detail


def test_malformed_reply_is_asked_again_with_the_reason_then_missing(server, tmp_path):
    server.script.extend([("content", '{"warm_cold": 1'), ("content", "no idea")])
    verdict = remote(server, tmp_path).rate_verdict("q?", "r")
    assert verdict.status == "ok" and verdict.attempts == 3
    retry = server.requests[1]["body"]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"warm_cold": 1'}
    assert "not valid JSON" in retry[-1]["content"]
    server.default = ("content", json.dumps({"answer": "C"}))
    bad = remote(server, tmp_path).compare_verdict("q?", "a", "b", "formal_casual")
    assert bad.status == "malformed" and bad.value is None and bad.attempts == 3
    assert len(server.requests) == 6


def test_a_reply_that_is_not_json_is_an_error_not_a_crash(server, tmp_path):
    server.script.append("garbage")
    verdict = remote(server, tmp_path).rate_verdict("q?", "r")
    assert verdict.status == "error" and "not JSON" in verdict.detail


def test_failing_endpoint_gives_partial_results_and_a_rerun_fills_them(server, tmp_path):
    server.script.extend(["ok", "ok"])
    server.default = ("status", 503, {"retry-after-ms": "1"})
    judge = remote(server, tmp_path, max_retries=0)
    first = rate_responses(judge, answers(6), max_consecutive_errors=2, progress=False)
    assert list(first["status"]) == ["ok", "ok", "error", "error", "skipped", "skipped"]
    assert first.loc[:1, list(AXES)].notna().all().all() and first.loc[2:, list(AXES)].isna().all().all()
    assert len(server.requests) == 4 and "not asked" in first.loc[4, "detail"]
    server.default = "ok"
    second = rate_responses(judge, answers(6), progress=False)
    assert (second["status"] == "ok").all()
    assert len(server.requests) == 8  # the two cached answers cost nothing


def test_answers_are_cached_by_inputs_not_by_key(server, tmp_path):
    remote(server, tmp_path).rate("q?", "r")
    assert len(server.requests) == 1
    again = remote(server, tmp_path, api_key="sk-another-key-000")
    assert again.rate("q?", "r") == dict.fromkeys(AXES, 1) and len(server.requests) == 1
    remote(server, tmp_path, temperature=0.5).rate("q?", "r")
    other = OpenAIJudge(
        "other-model", base_url=server.base_url, cache_dir=tmp_path / "cache", protocol=PROTOCOL
    )
    other.rate("q?", "r")
    assert len(server.requests) == 3


def test_endpoint_settings_come_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_MODEL, "env-model")
    judge = make_judge("openai", protocol=PROTOCOL)
    assert judge.rate("q?", "r")["warm_cold"] == 1
    headers = {k.lower(): v for k, v in server.requests[0]["headers"].items()}
    assert server.requests[0]["body"]["model"] == "env-model" and headers["authorization"] == f"Bearer {KEY}"
    monkeypatch.delenv(ENV_MODEL)
    with pytest.raises(JudgeError, match=ENV_MODEL):
        make_judge("openai", protocol=PROTOCOL)
    with pytest.raises(JudgeError, match="backend"):
        make_judge("telepathy", protocol=PROTOCOL)


def test_api_key_is_written_nowhere(server, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_API_KEY, KEY)
    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_MODEL, "env-model")
    # an endpoint that echoes the credentials it got in its error message (some providers show part of them)
    server.script.append(("status", 401, {}))
    server.script.append(("content", "not json at all"))
    judge = make_judge(
        "openai", protocol=PROTOCOL, cache_dir=tmp_path / "runs" / "judge-cache", max_retries=0
    )
    rated = rate_responses(judge, answers(3), progress=False)
    assert rated.loc[0, "status"] == "error" and KEY not in rated.loc[0, "detail"]
    pairs = pd.DataFrame(
        {"axis": ["warm_cold"], "q_index": [0], "question": ["q?"], "positive": ["p"], "negative": ["n"]}
    )
    compared = compare_pairs(judge, pairs, progress=False)
    update_results(
        "m", "judge", {"judge": judge.describe(), "ratings": rated, "pairs": compared}, tmp_path / "results"
    )
    assert KEY not in repr(judge) and KEY not in json.dumps(judge.describe())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 4  # the results file and cached answers
    assert not [p for p in files if KEY in p.read_text(errors="replace")]


def test_notebook_parameters_hold_no_secret():
    import jupytext

    notebook = jupytext.read(Path(__file__).parents[1] / "notebooks" / "05_judge.py")
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line]
    secret = re.compile(r"(^|_)(key|api|secret|password|token)($|_)")
    assert "judge" in names and not [n for n in names if secret.search(n)]


# -- the local backend ---------------------------------------------------------------------------------------
def test_local_judge_rates_every_axis_and_compares(tiny, tmp_path):
    judge = LocalJudge(tiny("qwen2"), protocol=PROTOCOL, cache_dir=tmp_path / "cache")
    rating = judge.rate("Why is the sky blue?", "Because of Rayleigh scattering.")
    assert set(rating) == set(AXES) and all(v in (-2, -1, 0, 1, 2) for v in rating.values())
    assert judge.compare("Why?", "Because.", "I'd love to explain!", "warm_cold") in ("a", "b")
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2


def test_local_choice_is_the_most_likely_value(tiny):
    handle = tiny("qwen2")
    judge = LocalJudge(handle, protocol=PROTOCOL)
    form = (("warm_cold", (-1, 0, 1)), ("answer", ("A", "B")))
    prompt = judge._prompt(judge.comparison_messages("q?", "one", "two", "warm_cold")[0])
    prompt_ids = handle.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    judge._fill(prompt_ids[: len(prompt_ids) // 2], form)  # the next call re-uses half of this one's cache
    filled = json.loads(judge._fill(prompt_ids, form))

    def tokens(text):
        return handle.tokenizer(text, add_special_tokens=False)["input_ids"]

    def best(prefix_text, allowed):  # full forward passes, no cache: the reference
        scores = []
        for value in allowed:
            head, tail = tokens(prefix_text), tokens(" " + json.dumps(value))
            with torch.no_grad():
                logits = handle.model(torch.tensor([prompt_ids + head + tail])).logits[0].log_softmax(-1)
            start = len(prompt_ids) + len(head)
            scores.append(sum(float(logits[start + j - 1, t]) for j, t in enumerate(tail)))
        return allowed[int(np.argmax(scores))]

    first = best('{"warm_cold":', form[0][1])
    assert filled["warm_cold"] == first
    assert filled["answer"] == best(f'{{"warm_cold": {first}, "answer":', form[1][1])


def test_local_generation_is_parsed_strictly_and_a_malformed_reply_is_not_cached(tiny, tmp_path):
    judge = LocalJudge(
        tiny("qwen2"),
        scoring="generate",
        max_new_tokens=6,
        max_attempts=2,
        cache_dir=tmp_path,
        protocol=PROTOCOL,
    )
    verdict = judge.compare_verdict("q?", "a", "b", "warm_cold")  # 6 random tokens are not the JSON object
    assert verdict.status == "malformed" and verdict.attempts == 2
    assert not list(tmp_path.rglob("*.json"))  # nothing parsed, nothing kept: a later run asks again
    calls = []
    judge._complete = lambda messages, form: calls.append(form) or '{"answer": "B"}'
    assert judge.compare_verdict("q?", "a", "b", "warm_cold") == Verdict({"answer": "B"}, "ok", attempts=1)
    assert len(calls) == 1 and len(list(tmp_path.rglob("*.json"))) == 1
    judge._complete = None  # a complete answer comes from the cache: no call
    assert judge.compare("q?", "a", "b", "warm_cold") == "b"


# -- runners and statistics ----------------------------------------------------------------------------------
class KeywordJudge(Judge):
    """Picks the answer containing POS; rates warm_cold by the answer's length class, the rest 0."""

    kind = "keyword"

    def __init__(self, protocol=PROTOCOL):
        super().__init__("keyword", protocol=protocol)

    def _complete(self, messages, form):
        user = messages[-1]["content"]
        if form[0][0] == "answer":
            a = user.split("Answer A:")[1].split("Answer B:")[0]
            return json.dumps({"answer": "A" if "POS" in a else "B"})
        response = user.split("The chatbot's answer:\n<<<\n")[1].split("\n>>>")[0]
        return json.dumps({**dict.fromkeys(AXES, 0), "warm_cold": min(len(response) // 3, 4) - 2})


class ScriptedJudge(Judge):
    """Replies with the next of `replies` (any further call fails the test) and records each call's
    messages and the keys of its form."""

    kind = "scripted"
    call_errors = (JudgeCallError,)

    def __init__(self, replies, cache_dir=None, max_attempts=3):
        super().__init__("scripted", protocol=PROTOCOL, cache_dir=cache_dir, max_attempts=max_attempts)
        self.replies, self.calls = list(replies), []

    def _complete(self, messages, form):
        self.calls.append((messages, [k for k, _ in form]))
        assert self.replies, "the judge was asked once more than expected"
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def rating(**values) -> str:
    return json.dumps({a: values.get(a, 1) for a in AXES if values.get(a, 1) is not None})


def test_read_answer_keeps_the_valid_keys_and_says_what_is_wrong():
    values, problem = read_answer(rating(warm_cold=3, formal_casual=None), RATING_FORM)
    assert set(values) == set(AXES) - {"warm_cold", "formal_casual"}
    assert problem.startswith("missing keys ['formal_casual']; warm_cold must be one of")
    assert read_answer("no idea", RATING_FORM) == ({}, "not valid JSON: Expecting value")
    values, problem = read_answer('{"warm_cold": 2}', RATING_FORM, needed=["warm_cold"])
    assert values == {"warm_cold": 2} and problem == ""


def test_a_malformed_reply_is_not_cached_and_a_later_run_asks_again(tmp_path):
    first = ScriptedJudge(["no idea", '{"warm_cold": 7}'], cache_dir=tmp_path, max_attempts=2)
    verdict = first.rate_verdict("q?", "r")
    assert verdict.status == "malformed" and verdict.value is None and verdict.attempts == 2
    assert not list(tmp_path.rglob("*.json"))
    second = ScriptedJudge([rating()], cache_dir=tmp_path)
    assert second.rate_verdict("q?", "r") == Verdict(dict.fromkeys(AXES, 1), "ok", attempts=1)
    assert len(second.calls) == 1 and second.calls[0][0] == first.calls[0][0]  # the question, asked afresh
    third = ScriptedJudge([], cache_dir=tmp_path)  # complete: from the cache, no call
    assert third.rate_verdict("q?", "r") == Verdict(dict.fromkeys(AXES, 1), "ok", attempts=0)
    assert third.calls == []


def test_a_malformed_reply_in_an_older_cache_is_asked_again(tmp_path):
    judge = ScriptedJudge([rating(warm_cold=-2)], cache_dir=tmp_path)
    messages, form = judge.rating_messages("q?", "r")
    request = {
        "kind": "scripted",
        "model": "scripted",
        "endpoint": "",
        "settings": {},
        "messages": messages,
        "form": [[k, list(v)] for k, v in form],
    }
    AnswerCache(tmp_path).put(request, "sure! {", {})  # what older versions kept
    assert judge.rate("q?", "r")["warm_cold"] == -2 and len(judge.calls) == 1


def test_an_incomplete_rating_keeps_its_axes_and_asks_only_for_the_rest(tmp_path):
    first = ScriptedJudge(
        [rating(warm_cold=3, formal_casual=None, verbose_concise=-2), "no idea"],
        cache_dir=tmp_path,
        max_attempts=2,
    )
    table = rate_responses(first, answers(1), progress=False)
    assert table.loc[0, "status"] == "partial" and table.loc[0, "attempts"] == 2
    assert table.loc[0, list(AXES)].isna().tolist() == [a in ("warm_cold", "formal_casual") for a in AXES]
    assert table.loc[0, "verbose_concise"] == -2
    assert table.loc[0, "detail"].startswith(
        "no valid value for ['warm_cold', 'formal_casual'] (not valid JSON"
    )
    retry_messages, retry_keys = first.calls[1]
    assert retry_keys == ["warm_cold", "formal_casual"]  # the second ask is for the missing axes only
    assert "missing keys ['formal_casual']; warm_cold must be one of" in retry_messages[-1]["content"]
    # the next run: the kept axes come from the cache, only the two others are asked
    second = ScriptedJudge(['{"warm_cold": -1, "formal_casual": 2}'], cache_dir=tmp_path)
    again = rate_responses(second, answers(1), progress=False)
    assert again.loc[0, "status"] == "ok" and again.loc[0, "attempts"] == 1
    assert again.loc[0, list(AXES)].tolist() == [
        {"warm_cold": -1, "formal_casual": 2, "verbose_concise": -2}.get(a, 1) for a in AXES
    ]
    ((messages, keys),) = second.calls
    assert keys == ["warm_cold", "formal_casual"] and len(messages) == 4
    assert json.loads(messages[2]["content"]) == {
        a: v for a, v in again.loc[0, list(AXES)].items() if a not in ("warm_cold", "formal_casual")
    }
    assert "missing keys ['warm_cold', 'formal_casual']" in messages[3]["content"]
    third = ScriptedJudge([], cache_dir=tmp_path)  # complete now: nothing is asked
    assert rate_responses(third, answers(1), progress=False).loc[0, "attempts"] == 0 and third.calls == []


def test_a_failed_call_after_an_incomplete_reply_keeps_what_was_read(tmp_path):
    first = ScriptedJudge([rating(warm_cold=None), JudgeCallError("endpoint down")], cache_dir=tmp_path)
    verdict = first.rate_verdict("q?", "r")
    assert verdict.status == "error" and verdict.value == {a: 1 for a in AXES if a != "warm_cold"}
    second = ScriptedJudge(['{"warm_cold": 0}'], cache_dir=tmp_path)
    assert second.rate("q?", "r") == {**dict.fromkeys(AXES, 1), "warm_cold": 0}
    assert [keys for _, keys in second.calls] == [["warm_cold"]]


def test_rate_gives_none_only_for_the_axes_without_a_valid_value():
    judge = ScriptedJudge([rating(warm_cold=None), rating(warm_cold="1")], max_attempts=2)
    assert judge.rate("q?", "r") == {**dict.fromkeys(AXES, 1), "warm_cold": None}


def test_within_one_ask_a_later_reply_fills_the_missing_axes_and_the_first_values_stay():
    judge = ScriptedJudge([rating(warm_cold=None, formal_casual=-1), rating(warm_cold=2, formal_casual=0)])
    verdict = judge.rate_verdict("q?", "r")
    assert verdict.status == "ok" and verdict.attempts == 2
    assert verdict.value == {**dict.fromkeys(AXES, 1), "warm_cold": 2, "formal_casual": -1}
    assert judge.calls[1][1] == ["warm_cold"]


def evaluation_records(n_questions: int = 10) -> pd.DataFrame:
    """Held-out and calibration answers of two axes; the positive answers contain POS (the answer to the
    last evaluation question under the positive instruction is empty)."""
    return pd.DataFrame(
        [
            {
                "axis": ax,
                "q_index": q,
                "question": f"q{q}",
                "pole": pole,
                "split": split,
                "empty": empty,
                "response": ("POS " if pole == 1 else "neg ") + f"{ax}{q}",
            }
            for ax in ("warm_cold", "formal_casual")
            for q in range(n_questions)
            for pole in (1, -1)
            for split, empty in (("evaluation", q == n_questions - 1 and pole == 1), ("calibration", False))
        ]
    )


def test_compare_pairs_shows_both_orders_and_a_content_judge_is_valid():
    pairs = evaluation_pairs(evaluation_records())
    assert len(pairs) == 18 and (pairs["positive"].str.startswith("POS")).all()
    assert list(pairs["axis"].drop_duplicates()) == ["warm_cold", "formal_casual"]
    compared = compare_pairs(KeywordJudge(), pairs, progress=False)
    assert (
        len(compared) == 36 and compared.groupby(["axis", "q_index"])["positive_first"].nunique().eq(2).all()
    )
    assert (compared["correct"] == 1.0).all()
    assert (compared["chose_first"] == compared["positive_first"].astype(float)).all()
    table = judge_stats.compliance(compared)
    assert table.loc["all", "accuracy"] == 1 and table.loc["all", "n_consistent"] == 18
    assert table.loc["all", "chose_first"] == 0.5 and table.loc["all", "first_both"] == 0
    assert not table["by_position"].any() and table.loc["all", "p"] < 0.001
    assert table.loc["warm_cold", "ci_low"] < 1 and table.loc["warm_cold", "n_pairs"] == 9
    summary = analysis.compliance_summary(table)
    assert summary["compliance"]["valid"] and summary["compliance"]["n"] == 18
    text = summary["compliance_text"]
    assert "same answer in both orders on 18" in text and "share of 1.00" in text and "invalid" not in text


def test_a_judge_that_always_picks_the_first_answer_is_flagged(server, tmp_path):
    """The chat server's judge answers "A" to every comparison: by position, whatever the texts."""
    pairs = evaluation_pairs(evaluation_records(6))
    judge = remote(server, tmp_path)
    compared = compare_pairs(judge, pairs, progress=False)
    assert len(server.requests) == 2 * len(pairs)  # both orders are asked: the cache keys differ
    shown = [quoted_pair(r["body"]) for r in server.requests]
    assert {(a.startswith("POS"), b.startswith("POS")) for a, b in shown} == {(True, False), (False, True)}
    table = judge_stats.compliance(compared)
    overall = table.loc["all"]
    assert overall["chose_first"] == 1 and overall["first_both"] == len(pairs) == overall["n_pairs"]
    assert overall["n_consistent"] == 0 and np.isnan(overall["accuracy"])
    assert overall["by_position"] and overall["position_p"] < 0.05
    summary = analysis.compliance_summary(table)
    assert not summary["compliance"]["valid"]
    assert f"first-shown answer in both orders on {len(pairs)} pairs" in summary["compliance_text"]
    assert "answers by position, so its compliance check is invalid" in summary["compliance_text"]
    compare_pairs(judge, pairs, progress=False)  # both orders come from the cache
    assert len(server.requests) == 2 * len(pairs)


def quoted_pair(body: dict) -> tuple[str, str]:
    """Answers A and B quoted in a comparison prompt."""
    blocks = re.findall(r"<<<\n(.*?)\n>>>", body["messages"][1]["content"], flags=re.DOTALL)
    return blocks[1], blocks[2]


def test_the_position_rule_is_mcnemars_exact_test_on_the_order_dependent_pairs():
    n = 20
    content = np.ones(n, bool), np.zeros(n, bool)  # positive picked in both orders
    assert judge_stats.position_test(*content) == {"first_both": 0, "second_both": 0, "position_p": 1.0}
    assert not judge_stats.answers_by_position(*content)
    first = np.r_[np.ones(6, bool), np.zeros(n - 6, bool)]
    mixed = np.ones(n, bool), first  # 6 pairs picked first in both orders, the rest by content
    result = judge_stats.position_test(*mixed)
    assert result["first_both"] == 6 and result["position_p"] == pytest.approx(2 * 0.5**6)
    assert judge_stats.answers_by_position(*mixed)
    balanced = np.r_[np.ones(5, bool), np.zeros(5, bool)], np.r_[np.ones(5, bool), np.zeros(5, bool)]
    assert not judge_stats.answers_by_position(*balanced)  # as often first as second: no position preference
    assert judge_stats.answers_by_position(np.ones(6, bool), np.ones(6, bool), alpha=0.05)
    assert not judge_stats.answers_by_position(np.ones(5, bool), np.ones(5, bool), alpha=0.05)  # p = 0.0625


def test_compliance_counts_a_pair_only_when_both_orders_were_answered():
    compared = pd.DataFrame(
        {
            "axis": ["warm_cold"] * 6,
            "q_index": [0, 0, 1, 1, 2, 2],
            "positive_first": [True, False] * 3,
            "chose_first": [1.0, 0.0, 1.0, np.nan, 0.0, 1.0],
        }
    )
    row = judge_stats.compliance(compared).loc["warm_cold"]
    assert (row["n_pairs"], row["n_missing"], row["n_consistent"]) == (2, 1, 2)
    assert row["accuracy"] == 0.5 and row["chose_first"] == 0.5  # pair 0 right, pair 2 wrong


def bonett_wright(rho: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    half = z * np.sqrt((1 + rho**2 / 2) / (n - 3))
    return np.tanh(np.arctanh(rho) - half), np.tanh(np.arctanh(rho) + half)


def test_undefined_resamples_are_never_counted_as_rho_zero():
    """17 of 20 ratings equal: 3.9 % of bootstrap resamples of the answers have constant ratings. Counted as
    rho = 0 they made the lower end of the interval exactly 0."""
    projection = np.arange(20) / 20
    rating = np.r_[np.zeros(3), np.ones(17)]
    row = judge_stats.correlation(projection, rating)
    assert row["ci_low"] > 0.15
    rho = scipy.stats.spearmanr(projection, rating).statistic
    assert row["rho"] == pytest.approx(rho) and row["undefined"] == ""
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(bonett_wright(rho, 20))


def test_the_share_of_undefined_resamples_is_exact():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.4])
    y = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    draws = list(itertools.product(range(5), repeat=5))
    brute = np.mean([np.ptp(x[list(d)]) == 0 or np.ptp(y[list(d)]) == 0 for d in draws])
    assert judge_stats.undefined_share(x, y) == pytest.approx(brute)
    units = np.array([0, 0, 1, 2, 2])  # answers 0 and 2 hold two pairs each
    members = [np.flatnonzero(units == u) for u in range(3)]
    resamples = [np.concatenate([members[u] for u in d]) for d in itertools.product(range(3), repeat=3)]
    brute = np.mean([np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0 for i in resamples])
    assert brute > 0 and judge_stats.undefined_share(x, y, units) == pytest.approx(brute)


def test_the_pooled_bootstrap_gives_undefined_resamples_no_value(monkeypatch):
    long = judge_stats.long_ratings(
        pd.DataFrame({"q_index": range(4), "warm_cold": [1.0, 1.0, 1.0, 2.0]}),
        pd.DataFrame({"warm_cold": [0.1, 0.2, 0.3, 0.4]}),
        ["warm_cold"],
    )
    seen = {}

    def bootstrap(statistic, data, **kwargs):
        seen["constant"] = statistic(np.array([0, 1, 2, 0]))  # a resample without the answer rated 2
        seen["varied"] = statistic(np.array([0, 1, 3, 3]))
        return -0.5, 0.9

    monkeypatch.setattr(judge_stats.stats, "bootstrap_ci", bootstrap)
    out = judge_stats.pooled(long)
    assert np.isnan(seen["constant"]) and np.isfinite(seen["varied"])
    assert out["p_undefined"] == pytest.approx(
        judge_stats.undefined_share([0.1, 0.2, 0.3, 0.4], [1, 1, 1, 2])
    )
    assert out["p_undefined"] == pytest.approx(0.75**4 + 0.25**4)  # only constant ratings occur


def test_an_undefined_rho_says_why():
    proj = pd.DataFrame({a: [0.1, 0.5, 0.2, 0.4] for a in AXES})
    ratings = pd.DataFrame({a: [1.0, 1.0, 1.0, 1.0] for a in AXES}).assign(q_index=range(4))
    ratings["formal_casual"] = [1.0, 2.0, 1.0, 2.0]
    proj["formal_casual"] = 0.3
    ratings["verbose_concise"] = [1.0, 2.0, np.nan, np.nan]
    table = judge_stats.agreement(judge_stats.long_ratings(ratings, proj, AXES))
    assert table["rho"].isna().all() and not table["agrees"].any()
    assert table.loc["warm_cold", "undefined"] == "constant ratings"
    assert table.loc["formal_casual", "undefined"] == "constant projections"
    assert table.loc["verbose_concise", "undefined"] == "fewer than 4 rated answers"
    summary = analysis.agreement_summary(table)
    assert summary["n_defined_axes"] == 0 and np.isnan(summary["mean_rho"])
    assert "warm/cold: constant ratings" in summary["agreement_text"]
    constant = judge_stats.long_ratings(ratings.assign(**dict.fromkeys(AXES, 1.0)), proj, AXES)
    assert np.isnan(judge_stats.pooled(constant)["rho"])


def agreement_table(rho: dict, valid: dict | None = None, n: int = 12) -> pd.DataFrame:
    """An agreement table with the given per-axis rho (NaN: undefined, constant ratings)."""
    table = pd.DataFrame({"rho": rho, "n": n}).rename_axis("axis")
    table["undefined"] = np.where(table["rho"].isna(), "constant ratings", "")
    table["valid"] = [True if valid is None else valid[a] for a in table.index]
    table["agrees"] = False
    table.loc[table["valid"], "agrees"] = judge_stats.agreeing(table.loc[table["valid"], "rho"], n)
    return table


def test_no_mean_agreement_over_fewer_than_the_minimum_of_defined_axes():
    """The committed run: rho defined on one axis of seven, and its value reported as the mean."""
    one = agreement_table({a: 0.6 if a == "warm_cold" else np.nan for a in AXES})
    summary = analysis.agreement_summary(one)
    assert summary["n_defined_axes"] == 1 and np.isnan(summary["mean_rho"])
    assert summary["min_defined_axes"] == judge_stats.MIN_DEFINED_AXES
    assert (
        f"defined on 1 of them, fewer than {judge_stats.MIN_DEFINED_AXES}, so no mean"
        in summary["agreement_text"]
    )
    rho = dict(zip(AXES, [0.9, 0.5, 0.4, 0.1, np.nan, np.nan, np.nan], strict=True))
    enough = analysis.agreement_summary(agreement_table(rho))
    assert enough["mean_rho"] == pytest.approx(0.475) and enough["n_defined_axes"] == 4
    assert "their mean is 0.47" in enough["agreement_text"]
    assert judge_stats.mean_agreement([0.9, 0.5, 0.4]) != judge_stats.mean_agreement([0.9, 0.5, 0.4], 3)


def judge_result(agreement: pd.DataFrame, compliance: pd.DataFrame, pooled: dict) -> analysis.JudgeResult:
    """A JudgeResult around the given tables (the other fields do not enter its paper numbers)."""
    return analysis.JudgeResult(
        judge={"kind": "openai", "model": "m"},
        self_judged=False,
        profile="quick",
        seed=0,
        n_responses=12,
        status={"ok": 12},
        dead_axes=dict.fromkeys(AXES, False),
        dead_source="dead_zones",
        validation={a: "valid" if v else "chance" for a, v in agreement["valid"].items()},
        ratings=[],
        agreement=agreement,
        axes_context="uninstructed",
        agreement_other_context=None,
        other_context="instructed",
        compliance=compliance,
        compliance_pairs=[],
        pooled={"models": ["m"], **pooled},
        leave_one_model_out=pd.DataFrame(),
    )


def test_the_paper_gives_no_mean_rho_over_one_defined_axis():
    one = agreement_table({a: 0.6 if a == "warm_cold" else np.nan for a in AXES})
    compared = pd.DataFrame(
        {"axis": "warm_cold", "q_index": [0, 0], "positive_first": [True, False], "chose_first": [1.0, 0.0]}
    )
    pooled = {"n_pairs": 12, "n_answers": 12, "rho": 0.6, "undefined": ""}
    pooled |= {"ci_low": 0.1, "ci_high": 0.8, "p_undefined": 0.02}
    numbers = judge_result(one, judge_stats.compliance(compared), pooled).paper()
    assert np.isnan(numbers["mean_rho"]) and numbers["n_defined_axes"] == 1
    assert numbers["pooled"]["p_undefined"] == 0.02 and "2.0% of resamples" in numbers["pooled_text"]


def test_the_pooled_sentence_says_what_its_numbers_say():
    base = {"models": ["m1", "m2"], "n_pairs": 40, "n_answers": 8, "undefined": ""}
    full = analysis.pooled_summary(base | {"rho": 0.41, "ci_low": 0.05, "ci_high": 0.7, "p_undefined": 0.125})
    assert full["pooled"] == {
        "rho": 0.41, "ci_low": 0.05, "ci_high": 0.7, "p_undefined": 0.125, "n_pairs": 40, "n_answers": 8
    }  # fmt: skip
    assert "validated axes of 2 models (40 rated answer-axis pairs from 8 answers)" in full["pooled_text"]
    assert "rho is 0.41 (95 % CI 0.05 to 0.70" in full["pooled_text"] and "12.5% of" in full["pooled_text"]
    flat = base | {"rho": None, "ci_low": None, "ci_high": None, "p_undefined": None}
    undefined = analysis.pooled_summary(flat | {"undefined": "constant ratings"})
    assert undefined["pooled_text"].endswith("rho is undefined (constant ratings).")
    assert np.isnan(undefined["pooled"]["rho"])
    no_interval = analysis.pooled_summary(flat | {"rho": 0.18, "p_undefined": 0.3436})
    assert no_interval["pooled_text"].endswith(
        "rho is 0.18; no bootstrap interval can be computed (34.4% of resamples have constant ratings or "
        "projections, where rho is undefined)."
    )
    none = analysis.pooled_summary(flat | {"n_pairs": 0, "n_answers": 0})
    assert none["pooled_text"] == "No validated axis has a rated answer, so no correlation is pooled."


def test_axes_that_failed_validation_carry_no_conclusion():
    rho = dict(zip(AXES, [0.95, 0.9, 0.85, 0.8, 0.1, 0.2, 0.3], strict=True))
    valid = {a: a not in ("warm_cold", "verbose_concise") for a in AXES}
    table = agreement_table(rho, valid)
    summary = analysis.agreement_summary(table)
    assert summary["n_valid_axes"] == 5 and summary["mean_rho"] == pytest.approx(
        np.mean([0.85, 0.8, 0.1, 0.2, 0.3])
    )
    assert summary["agreeing_axes"] == "confident/cautious, proactive/reluctant"
    assert "warm/cold" not in summary["agreement_text"] and "verbose/concise" not in summary["agreement_text"]
    assert "5 of the 7 axes passed held-out validation; Spearman's rho" in summary["agreement_text"]
    assert "on confident/cautious, proactive/reluctant." in summary["agreement_text"]
    none = analysis.agreement_summary(agreement_table(rho, dict.fromkeys(AXES, False)))
    assert np.isnan(none["mean_rho"]) and none["agreeing_axes"] == "none"
    assert none["agreement_text"].startswith("None of the 7 axes passed held-out validation")


def test_the_agreement_rule_is_bonferroni_over_the_defined_axes():
    rho, n = 0.75, 12
    alone = judge_stats.agreeing([rho], [n])
    among_seven = judge_stats.agreeing([rho, *[np.nan] * 6], [n] * 7)  # undefined axes are not counted
    assert alone[0] and among_seven[0] and bonett_wright(rho, n)[0] > 0
    crowded = judge_stats.agreeing([rho] + [0.0] * 6, [n] * 7)  # seven tests: a wider interval each
    assert not crowded[0] and bonett_wright(rho, n, scipy.stats.norm.ppf(1 - 0.025 / 7))[0] < 0
    assert not judge_stats.agreeing([-0.99, np.nan], [n, n]).any()


def test_agreement_flags_and_pooling():
    rng = np.random.default_rng(0)
    frames = []
    for model, sign in (("m1", 1), ("m2", 1), ("m3", -1)):
        n = 12
        proj = pd.DataFrame({a: rng.uniform(-1, 1, n) for a in AXES})
        proj.loc[0, "warm_cold"] = 1.0  # clipped
        ratings = pd.DataFrame({a: np.round(sign * 2 * proj[a]) for a in AXES}).assign(q_index=range(n))
        ratings.loc[1, "formal_casual"] = np.nan  # missing
        dead = {"verbose_concise": True}
        frames.append(judge_stats.long_ratings(ratings, proj, AXES, dead=dead).assign(model=model))
    table = judge_stats.agreement(frames[0])
    assert (
        (table["rho"] > 0.8).all()
        and (table["ci_high"] <= 1).all()
        and (table["ci_low"] <= table["rho"]).all()
    )
    assert table.loc["warm_cold", "n_clipped"] == 1 and table.loc["formal_casual", "n_missing"] == 1
    assert table.loc["formal_casual", "n"] == 11 and table["dead"].sum() == 1
    assert list(table.index[~table["valid"]]) == ["verbose_concise"]  # a dead zone is not valid
    assert table["agrees"].sum() == 6 and not table.loc["verbose_concise", "agrees"]
    everything = pd.concat(frames, ignore_index=True)
    pooled = judge_stats.pooled(everything, n_boot=200)
    assert pooled["n_answers"] == 36 and pooled["n_pairs"] == 3 * 12 * 6 - 3  # the dead axis is left out
    assert pooled["ci_low"] <= pooled["rho"] <= pooled["ci_high"] and pooled["p_undefined"] == 0
    loo = judge_stats.leave_one_model_out(everything, n_boot=100)
    assert loo["rho"].idxmax() == "m3" and loo.loc["m3", "rho"] > pooled["rho"]
    assert judge_stats.leave_one_model_out(frames[0].assign(model="m1")).empty


def test_runner_over_a_judge_matches_direct_calls():
    judge = KeywordJudge()
    rated = rate_responses(judge, answers(8), progress=False)
    assert list(rated["warm_cold"]) == [
        judge.rate(q, r)["warm_cold"] for q, r in zip(rated["question"], rated["response"], strict=True)
    ]
    assert rated["warm_cold"].is_monotonic_increasing and (rated["status"] == "ok").all()


def test_dead_axes_are_the_dead_zones_of_notebook_08():
    table = pd.DataFrame(
        {"severity": [0.8, 0.1], "dead": [True, False]}, index=["warm_cold", "formal_casual"]
    )
    zones = DeadZonesResult(table, pd.DataFrame(), {}, {})
    flags = judge_stats.dead_axes(zones, list(AXES))
    assert list(flags) == list(AXES) and [a for a, d in flags.items() if d] == ["warm_cold"]
    assert judge_stats.dead_axes(DeadZonesResult.from_dict(zones.to_dict()), list(AXES)) == flags


def test_the_protocol_gives_the_judge_its_axes_and_rubrics(tmp_path):
    for path in data_dir().iterdir():
        if path.is_file():
            (tmp_path / path.name).write_bytes(path.read_bytes())
    prompts = (tmp_path / "judge.yaml").read_text(encoding="utf-8")
    (tmp_path / "judge.yaml").write_text(
        prompts.replace("  warm_cold:", "  warm_and_cold:", 1), encoding="utf-8"
    )
    with pytest.raises(DataError, match="no rubric for \\['warm_cold'\\]"):
        KeywordJudge(protocol=Protocol.load(tmp_path))


def _numbers(result) -> dict[str, str]:
    return {k: paper.format_value(v) for k, v in paper.flatten(result.paper()).items()}


def test_run_rates_compares_flags_pools_and_saves(tmp_path, cache, monkeypatch):
    """Notebook 05's analysis on a tiny model judging its own answers: a first run with only this model
    and its own reading context, then one with the other context's axes and another model's ratings."""
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "ws"))
    ws = Workspace.open("random:qwen2", profile="smoke", root=tmp_path)
    axes = calibrate(ws, progress=False).axes
    separated = (
        "warm_cold",
        "verbose_concise",
        "formal_casual",
    )  # held-out validation, as notebook 01 saves it
    for name in AXES:
        low = 0.9 if name in separated else 0.3
        axes.calibration[name] |= {"pairwise_accuracy": low + 0.05, "accuracy_ci_low": low}
    axes.save(ws.axes_file)
    dead = pd.DataFrame({"dead": [name == "formal_casual" for name in AXES]}, index=list(AXES))
    update_results(
        ws.slug, "dead_zones", DeadZonesResult(dead, pd.DataFrame(), {}, {}).to_dict(), ws.results_dir
    )
    reader = analysis.open_judge(ws)
    options = {"seeds": [0, 1], "n_pairs": 2, "n_boot": 20, "progress": False}
    first = analysis.run(ws, reader, **options)
    assert first.self_judged and first.judge == {
        "kind": "local",
        "model": "random-qwen2",
        "scoring": "logprob",
    }
    assert first.n_responses == ws.profile.n_baseline and first.status == {"ok": first.n_responses}
    assert first.dead_axes == {name: name == "formal_casual" for name in AXES}
    ratings = pd.DataFrame(first.ratings)
    assert len(ratings) == first.n_responses * len(AXES) and ratings["rating"].between(-2, 2).all()
    assert ratings.loc[ratings["dead"], "axis"].unique().tolist() == ["formal_casual"]
    assert list(first.agreement.index) == list(AXES) and (first.agreement["n"] == first.n_responses).all()
    assert (first.axes_context, first.other_context, first.agreement_other_context) == (
        "uninstructed",
        "instructed",
        None,
    )
    assert first.compliance.loc["all", "n_pairs"] == 2 * len(AXES) and len(first.compliance_pairs) == 4 * len(
        AXES
    )
    assert first.validation == {
        a: {"formal_casual": "dead"}.get(a, "valid" if a in separated else "chance") for a in AXES
    }
    valid = ["warm_cold", "verbose_concise"]
    assert ratings.groupby("axis")["valid"].all().to_dict() == {a: a in valid for a in AXES}
    assert first.pooled["models"] == [ws.slug] and first.pooled["n_pairs"] == first.n_responses * len(valid)
    assert first.leave_one_model_out.empty
    assert list(ws.runs.judge_cache().rglob("*.json"))  # every judgement is cached in the run store
    numbers = _numbers(first)
    assert set(numbers) == {
        "judge", "judge_kind", "self_judged", "n_responses", "n_axes", "n_valid_axes", "n_defined_axes",
        "min_defined_axes", "mean_rho", "n_agreeing", "agreeing_axes", "agreement_text", "pooled_text",
        "pooled/rho", "pooled/ci_low", "pooled/ci_high", "pooled/p_undefined", "pooled/n_pairs",
        "pooled/n_answers", "compliance/accuracy", "compliance/ci_low", "compliance/ci_high", "compliance/p",
        "compliance/n", "compliance/n_pairs", "compliance/valid", "chose_first", "position/first_both",
        "position/second_both", "position/p", "compliance_text",
    }  # fmt: skip
    assert numbers["n_valid_axes"] == str(len(valid)) and numbers["min_defined_axes"] == "4"

    update_results("other-model", "judge", first.to_dict(), ws.results_dir)
    calibrate(ws, context="instructed", progress=False).axes.save(ws.runs.axes("instructed"))
    second = analysis.run(ws, reader, **options)
    assert second.ratings == first.ratings and second.status == first.status  # from the cache
    assert list(second.agreement_other_context.index) == list(AXES)
    assert second.pooled["models"] == [ws.slug, "other-model"]
    assert second.pooled["n_pairs"] == 2 * first.pooled["n_pairs"] and list(
        second.leave_one_model_out.index
    ) == [
        ws.slug,
        "other-model",
    ]
    ws.save(second)
    loaded = analysis.JudgeResult.load(ws)
    assert _numbers(loaded) == _numbers(second) and loaded.compliance_pairs == second.compliance_pairs
    table = (ws.paper_dir / ws.slug / "judge_table.tex").read_text()
    assert "Spearman rho" in table and "pairs accuracy" in table and "warm/cold" in table
    marked = second.paper_tables()["judge_table"].frame.index
    assert list(marked) == [mark(a, a in valid) for a in AXES]


@pytest.mark.slow
def test_notebook_with_a_remote_judge_writes_no_key(server, tmp_path, monkeypatch):
    """Notebooks 01 and 05 under papermill with the HTTP judge: the key is in no file they leave."""
    from styleprobe.apps.reproduce import execute

    monkeypatch.setenv(ENV_API_KEY, KEY)
    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_MODEL, "env-model")
    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path / "cache"))
    params = {"model": "random:qwen2", "profile": "smoke", "seeds": [0], "n_boot": 50, "root": str(tmp_path)}
    execute("01_calibration", tmp_path / "nb" / "01.ipynb", params, progress=False)
    no_dead_zone = pd.DataFrame({"dead": [False] * len(AXES)}, index=list(AXES))
    zones = DeadZonesResult(no_dead_zone, pd.DataFrame(), {}, {})  # notebook 08's, which needs 07
    update_results("random-qwen2", "dead_zones", zones.to_dict(), tmp_path / "results")
    out = execute("05_judge", tmp_path / "nb" / "05.ipynb", {**params, "judge": "openai"}, progress=False)
    results = json.loads((tmp_path / "results" / "random-qwen2.json").read_text())["judge"]
    assert results["judge"]["kind"] == "openai" and results["status"] == {"ok": 6}
    assert server.requests and KEY not in out.read_text()
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaked
