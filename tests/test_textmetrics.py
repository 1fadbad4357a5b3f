"""Hand-checked counts and effect sizes for styleprobe.analyses.textmetrics, the axes' text metrics from
the protocol, and notebook 08's text validation."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml
from saved_validity import save_validity

from styleprobe.analyses import textmetrics as tm
from styleprobe.paths import data_dir
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.spec import DataError, Protocol
from styleprobe.report.results import update_results
from styleprobe.workspace import Workspace

LEX = {"irritation": ["just", "as I said"], "warmth": ["happy to", "happy", "glad"]}
METRICS = {"warm_cold": "warmth"}


def test_protocol_lexicon_loads_and_every_axis_has_a_text_metric():
    protocol = Protocol.load()
    lexicon = tm.protocol_lexicon(protocol)
    assert {
        "hedging",
        "certainty",
        "warmth",
        "empathy",
        "formal",
        "casual",
        "irritation",
        "proactive",
    } <= set(lexicon)
    assert all(20 <= len(v) <= 60 for v in lexicon.values())
    metrics = tm.axis_metrics(protocol)
    assert list(metrics) == protocol.names
    assert metrics["verbose_concise"] == "n_words" and metrics["formal_casual"] == "formality"
    assert set(metrics.values()) <= set(tm.text_metrics("Hello there.", lexicon))


def _protocol_copy(tmp_path, edit) -> Protocol:
    """The package's data folder copied to tmp_path, with axes.yaml's entries changed by `edit`."""
    for path in data_dir().iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    raw = yaml.safe_load((tmp_path / "axes.yaml").read_text(encoding="utf-8"))
    edit(raw["axes"])
    (tmp_path / "axes.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return Protocol.load(tmp_path)


def test_axis_metrics_come_from_the_protocol_and_are_optional(tmp_path):
    def edit(entries):
        entries[0]["text_metric"] = "exclamations"
        del entries[1]["text_metric"]

    metrics = tm.axis_metrics(_protocol_copy(tmp_path, edit))
    assert metrics["warm_cold"] == "exclamations" and "verbose_concise" not in metrics and len(metrics) == 6


def test_a_text_metric_that_is_not_a_string_raises(tmp_path):
    def edit(entries):
        entries[2]["text_metric"] = ["warmth"]

    with pytest.raises(DataError, match=r"axes\[2\] \(confident_cautious\)\.text_metric must be a non-empty"):
        _protocol_copy(tmp_path, edit)  # refused when the protocol loads


def test_word_boundaries_phrases_and_case():
    assert tm.count_matches("Justice is just.", ["just"]) == 1  # not inside "justice"
    assert tm.count_matches("JUST do it, just  now", ["just"]) == 2  # case-insensitive
    assert tm.count_matches("As I said,\nas  i SAID.", ["as I said"]) == 2  # phrase, any whitespace
    assert (
        tm.count_matches("I'm happy to help, happy days", ["happy to", "happy"]) == 2
    )  # overlap counts once
    assert tm.count_matches("It\u2019s fine", ["it's fine"]) == 1  # curly apostrophe
    assert tm.count_matches("Don't over-think it", ["don"]) == 0  # not part of a contraction
    assert tm.count_matches("Next, open it. Next time", ["next,"]) == 1


def test_text_metrics_hand_counts():
    # 10 words, 2 sentences; "just" x2 (not "justice"), "happy to" x1, "glad" x1; 1 contraction; 1 "?", 1 "!"
    text = "I'm glad and happy to help justice! Just ask, just?"
    m = tm.text_metrics(text, LEX)
    assert m["n_words"] == 10
    assert m["n_sentences"] == 2
    assert m["mean_sentence_words"] == 5
    assert m["irritation"] == pytest.approx(20.0)  # 2 per 10 words -> 20 per 100
    assert m["warmth"] == pytest.approx(20.0)
    assert m["contractions"] == pytest.approx(10.0)
    assert m["question_marks"] == pytest.approx(10.0)
    assert m["exclamations"] == pytest.approx(10.0)
    assert "formality" not in m  # ingredients missing from this lexicon


def test_contractions_and_derived_metrics():
    lexicon = {
        "formal": ["therefore"],
        "casual": ["stuff"],
        "certainty": ["definitely"],
        "hedging": ["maybe"],
    }
    m = tm.text_metrics("Therefore it's definitely stuff. Ann's cat won't go now, maybe", lexicon)
    assert m["n_words"] == 10
    assert m["contractions"] == pytest.approx(20.0)  # it's, won't; not the possessive Ann's
    assert m["formality"] == pytest.approx(10.0 - 10.0 - 20.0)
    assert m["certainty_minus_hedging"] == pytest.approx(0.0)


@pytest.mark.parametrize("text", ["", "   ", "?!", "..."])
def test_empty_text_gives_zeros(text):
    m = tm.text_metrics(text, LEX)
    assert m["n_words"] == 0
    assert all(v == 0.0 and not math.isnan(v) for v in m.values())


def test_metrics_frame_one_row_per_text():
    frame = tm.metrics_frame(["a b", "", "c"], LEX)
    assert list(frame["n_words"]) == [2, 0, 1]
    assert list(frame.columns[:6]) == list(tm.BASE_METRICS)


def test_pole_effect_sizes_sign():
    warm = [
        "I'm so glad you asked, happy to help!",
        "What a wonderful idea, glad to help.",
        "Lovely, thanks!",
    ]
    cold = ["The value is 4.", "Use the second option.", "It is stored in the table."]
    frame = pd.DataFrame(
        {
            "axis": "warm_cold",
            "pole": [1, 1, 1, -1, -1, -1],
            "text": warm + cold,
            "n_tokens": [10, 12, 11, 9, 8, 10],
        }
    )
    out = tm.pole_effect_sizes(frame, METRICS, LEX).set_index("axis")
    assert out.loc["warm_cold", "metric"] == "warmth"
    assert out.loc["warm_cold", "d"] > 1
    assert out.loc["warm_cold", "d_n_tokens"] > 0
    swapped = tm.pole_effect_sizes(frame.assign(pole=-frame["pole"]), METRICS, LEX).set_index("axis")
    assert swapped.loc["warm_cold", "d"] == pytest.approx(-out.loc["warm_cold", "d"])
    assert "d_n_tokens" not in tm.pole_effect_sizes(frame.drop(columns="n_tokens"), METRICS, LEX)
    by_length = tm.pole_effect_sizes(frame, {"warm_cold": "n_words"}, LEX).set_index("axis")
    assert by_length.loc["warm_cold", "metric"] == "n_words" and by_length.loc["warm_cold", "d"] > 0


def test_pole_effect_sizes_rejects_bad_frames():
    four = {"pole": [1, 1, -1, -1], "text": ["x"] * 4}
    with pytest.raises(ValueError, match="no text metric"):
        tm.pole_effect_sizes(pd.DataFrame({"axis": ["nope"] * 4, **four}), METRICS, LEX)
    with pytest.raises(ValueError, match="unknown text metric 'kindness'"):
        tm.pole_effect_sizes(
            pd.DataFrame({"axis": ["warm_cold"] * 4, **four}), {"warm_cold": "kindness"}, LEX
        )
    with pytest.raises(ValueError, match="2 texts per pole"):
        three = {"axis": ["warm_cold"] * 3, "pole": [1, 1, -1], "text": ["x"] * 3}
        tm.pole_effect_sizes(pd.DataFrame(three), METRICS, LEX)


def test_accuracy_vs_text_effect():
    """Spearman's rho and p over the keys both mappings share with finite values, as scipy gives them."""
    acc = {"m/a": 0.6, "m/b": 0.7, "m/c": 0.9, "m/d": 0.95, "m/e": 0.8, "only/acc": 0.5, "m/nan": np.nan}
    eff = {"m/a": 0.1, "m/b": 0.5, "m/c": 1.2, "m/d": 0.3, "m/e": 2.0, "only/eff": 3.0, "m/nan": -9.0}
    rho, p = tm.accuracy_vs_text_effect(acc, eff)
    shared = ["m/a", "m/b", "m/c", "m/d", "m/e"]
    expected = scipy.stats.spearmanr([acc[k] for k in shared], [eff[k] for k in shared])
    assert (rho, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert rho == pytest.approx(0.3)  # 1 - 6 * 14 / (5 * 24): the NaN and unshared keys left out
    with pytest.raises(ValueError, match=">= 3"):
        tm.accuracy_vs_text_effect({"m/a": 0.6, "m/b": float("nan")}, eff)


@pytest.mark.parametrize(
    "content",
    [
        "categories: [a, b]\n",
        "words:\n  hedging: [might]\n",
        "categories:\n  hedging: []\n",
        "categories:\n  hedging: [might, 3]\n",
        "categories:\n  hedging: [might, Might]\n",
        "categories:\n  n_words: [might]\n",
        "categories: {hedging: [might\n",
    ],
)
def test_malformed_lexicon_raises_one_line(tmp_path, content):
    path = tmp_path / "lexicon.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        tm.load_lexicon(path)
    assert isinstance(err.value, DataError)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_run_measures_this_model_and_pools_every_model(tmp_path, cache, monkeypatch):
    """Notebook 08's text validation on a tiny model, alone and beside another model's saved result."""
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "ws"))
    ws = Workspace.open("random:qwen2", profile="smoke", root=tmp_path)
    calibration = calibrate(ws, progress=False)
    calibration.axes.save(ws.axes_file)
    # every axis passes held-out validation but warm/cold; formal/casual is classed dead by notebook 08
    passed = {n: (0.9, 0.7) for n in ws.protocol.names} | {"warm_cold": (0.6, 0.4)}
    save_validity(ws, passed)
    alone = tm.run(ws, dead=["formal_casual"])
    assert "warm_cold" not in alone.validated and "formal_casual" not in alone.validated
    assert len(alone.validated) == len(ws.protocol.names) - 2
    effects = alone.effects
    assert list(effects.index) == ws.protocol.names
    assert effects["metric"].to_dict() == tm.axis_metrics(ws.protocol)
    assert effects["accuracy"].to_dict() == calibration.evaluation["pairwise_accuracy"].to_dict()
    per_pole = ws.profile.n_calibration + ws.profile.n_evaluation
    assert (effects[["n_pos", "n_neg"]] == per_pole).all().all()
    assert alone.n_pairs == effects[["accuracy", "d"]].notna().all(axis=1).sum()

    other = effects.assign(d=np.linspace(-1, 1, 7), accuracy=np.linspace(0.4, 0.9, 7))
    saved = tm.TextValidationResult(other, validated=[], spearman_rho=np.nan, spearman_p=np.nan, n_pairs=7)
    update_results("other-model", saved.name, saved.to_dict(), ws.results_dir)
    pooled = tm.run(ws, dead=["formal_casual"])
    assert pooled.n_pairs == alone.n_pairs + 7 == len(tm.pooled_effects(ws, pooled.effects))
    assert pooled.spearman_rho > 0.5 and 0 <= pooled.spearman_p <= 1
    numbers = pooled.paper()
    assert numbers["text_n_pairs"] == pooled.n_pairs and numbers["text_p"] == f"{pooled.spearman_p:.2g}"
    keyed = tm.pooled_effects(ws, pooled.effects)
    expected = scipy.stats.spearmanr(keyed["accuracy"], keyed["d"])
    assert (pooled.spearman_rho, pooled.spearman_p) == pytest.approx((expected.statistic, expected.pvalue))
    np.testing.assert_equal(numbers["verbose_text_d"], effects.loc["verbose_concise", "d"])
    ws.save(pooled)
    table = (ws.paper_dir / ws.slug / "text_effects_table.tex").read_text()
    assert "probe acc." in table and "warmth" in table
    assert r"warm/cold\textdagger{}" in table and r"formal/casual\textdagger{}" in table
    assert r"verbose/concise\textdagger{}" not in table and table.rstrip().endswith(r"\spmarked")
