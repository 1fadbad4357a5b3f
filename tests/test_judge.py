"""The external judge: strict parsing, retries, caching, the HTTP backend against a local chat-completions
server (good answers, rate limits, server errors, timeouts, malformed replies), the local backend on a tiny
model, the statistics, and that an API key is never written anywhere."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from chat_server import AXES, ChatServer, quoted_answer

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
from styleprobe.report import paper
from styleprobe.report.results import update_results
from styleprobe.workspace import Workspace

KEY = "sk-test-5f2b9c1e7d"  # a fake key: it must never reach a file
RATING_FORM = tuple((a, (-2, -1, 0, 1, 2)) for a in AXES)
PROTOCOL = Protocol.load()


def remote(server: ChatServer, tmp_path: Path, **kwargs) -> OpenAIJudge:
    options = {"api_key": KEY, "timeout": 2.0, "max_retries": 2, "cache_dir": tmp_path / "cache", **kwargs}
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
    server.script.append(("slow", 1.5))
    assert remote(server, tmp_path, timeout=0.3).rate_verdict("q?", "r").status == "ok"
    assert len(server.requests) == 2
    server.default = ("slow", 1.5)
    verdict = remote(server, tmp_path, timeout=0.3, max_retries=1).rate_verdict("another q?", "r")
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


def test_compare_pairs_shows_random_order_and_scores_the_pick():
    records = pd.DataFrame(
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
            for q in range(10)
            for pole in (1, -1)
            for split, empty in (("evaluation", q == 9 and pole == 1), ("calibration", False))
        ]
    )
    pairs = evaluation_pairs(records)
    assert len(pairs) == 18 and (pairs["positive"].str.startswith("POS")).all()
    assert list(pairs["axis"].drop_duplicates()) == ["warm_cold", "formal_casual"]
    compared = compare_pairs(KeywordJudge(), pairs, seed=1, progress=False)
    assert compared["positive_first"].any() and not compared["positive_first"].all()
    assert (compared["correct"] == 1.0).all()
    table = judge_stats.compliance(compared)
    assert table.loc["all", "accuracy"] == 1 and table.loc["all", "n"] == 18
    assert table.loc["all", "chose_first"] == pytest.approx(compared["positive_first"].mean())
    assert table.loc["warm_cold", "ci_low"] < 1 and table.loc["all", "p"] < 0.001


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
    table = judge_stats.agreement(frames[0], n_boot=200)
    assert (
        (table["rho"] > 0.8).all()
        and (table["ci_high"] <= 1).all()
        and (table["ci_low"] <= table["rho"]).all()
    )
    assert table.loc["warm_cold", "n_clipped"] == 1 and table.loc["formal_casual", "n_missing"] == 1
    assert table.loc["formal_casual", "n"] == 11 and table["dead"].sum() == 1
    everything = pd.concat(frames, ignore_index=True)
    pooled = judge_stats.pooled(everything, n_boot=200)
    assert pooled["n_answers"] == 36 and pooled["n_pairs"] == 3 * 12 * 7 - 3
    assert pooled["ci_low"] <= pooled["rho"] <= pooled["ci_high"]
    loo = judge_stats.leave_one_model_out(everything, n_boot=100)
    assert loo["rho"].idxmax() == "m3" and loo.loc["m3", "rho"] > pooled["rho"]
    assert judge_stats.leave_one_model_out(frames[0].assign(model="m1")).empty


def test_agreement_is_nan_not_an_error_for_constant_or_tiny_input():
    proj = pd.DataFrame({a: [0.1, 0.5] for a in AXES})
    ratings = pd.DataFrame({a: [1.0, 1.0] for a in AXES}).assign(q_index=[0, 1])
    table = judge_stats.agreement(judge_stats.long_ratings(ratings, proj, AXES), n_boot=50)
    assert table["rho"].isna().all() and (table["n"] == 2).all()
    assert np.isnan(judge_stats.pooled(judge_stats.long_ratings(ratings, proj, AXES))["rho"])


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
    calibrate(ws, progress=False).axes.save(ws.axes_file)
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
    assert first.compliance.loc["all", "n"] == 2 * len(AXES) == len(first.compliance_pairs)
    assert first.pooled["models"] == [ws.slug] and first.pooled["n_pairs"] == len(ratings)
    assert first.leave_one_model_out.empty
    assert list(ws.runs.judge_cache().rglob("*.json"))  # every judgement is cached in the run store
    assert set(_numbers(first)) == {
        "judge", "judge_kind", "self_judged", "n_responses", "mean_rho", "pooled/rho", "pooled/ci_low",
        "pooled/ci_high", "pooled/p", "pooled/n_pairs", "compliance/accuracy", "compliance/ci_low",
        "compliance/ci_high", "compliance/n", "chose_first",
    }  # fmt: skip

    update_results("other-model", "judge", first.to_dict(), ws.results_dir)
    calibrate(ws, context="instructed", progress=False).axes.save(ws.runs.axes("instructed"))
    second = analysis.run(ws, reader, **options)
    assert second.ratings == first.ratings and second.status == first.status  # from the cache
    assert list(second.agreement_other_context.index) == list(AXES)
    assert second.pooled["models"] == [ws.slug, "other-model"]
    assert second.pooled["n_pairs"] == 2 * len(ratings) and list(second.leave_one_model_out.index) == [
        ws.slug,
        "other-model",
    ]
    ws.save(second)
    loaded = analysis.JudgeResult.load(ws)
    assert _numbers(loaded) == _numbers(second) and loaded.compliance_pairs == second.compliance_pairs
    table = (ws.paper_dir / ws.slug / "judge_table.tex").read_text()
    assert "Spearman rho" in table and "pairs accuracy" in table and "formal/casual" in table


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
