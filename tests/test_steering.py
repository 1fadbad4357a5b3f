import numpy as np
import pandas as pd
import pytest
import torch
from reloading import assert_paper_survives_reload
from saved_validity import save_validity

from styleprobe import paths, stats
from styleprobe.analyses import steering
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import Aggregation, TokenSequence, extract
from styleprobe.engine.generation import tokenize_prompts
from styleprobe.engine.pipeline import Item
from styleprobe.protocol.axes import fit_axes
from styleprobe.protocol.profiles import get_profile
from styleprobe.protocol.spec import Protocol
from styleprobe.protocol.validity import MARK
from styleprobe.report.results import update_results
from styleprobe.workspace import Workspace


def _states(handle, layer):
    ids = tokenize_prompts(handle, ["Hello there, how are you?"])[0]
    return extract(handle, [TokenSequence(ids, [True] * len(ids))], [layer], (1.0,))[0, 0, 0]


def test_steering_adds_the_vector_and_is_removed_even_on_error(tiny):
    handle = tiny("qwen2")
    layer = handle.n_layers - 1
    vector = np.random.default_rng(0).normal(size=handle.hidden_size).astype(np.float32)
    plain = _states(handle, layer)
    with steering.steer(handle, vector, [layer], 2.0):
        steered = _states(handle, layer)
    np.testing.assert_allclose(steered - plain, 2.0 * vector, atol=1e-4)  # read after the steered block
    with pytest.raises(RuntimeError), steering.steer(handle, vector, [layer], 5.0):
        raise RuntimeError("boom")
    np.testing.assert_allclose(_states(handle, layer), plain, atol=1e-6)  # hooks gone


def test_repetition_counts_repeated_word_trigrams():
    assert steering.repetition("one two three four five") == 0.0
    assert steering.repetition("la la la la la la") == pytest.approx(1 - 1 / 4)
    assert steering.repetition("hi") == 0.0


def test_perplexity_does_not_depend_on_the_batch(tiny):
    handle = tiny("qwen2")
    items = [Item("a", "Why is the sky blue?"), Item("b", "Hi"), Item("c", "Name three rivers, please.")]
    answers = handle.tokenizer(["Because of light.", "Hello!", ""], add_special_tokens=False)["input_ids"]
    together = steering.perplexity(handle, items, answers, batch_size=3)
    alone = np.array(
        [steering.perplexity(handle, [it], [a])[0] for it, a in zip(items, answers, strict=True)]
    )
    np.testing.assert_allclose(together[:2], alone[:2], rtol=1e-4)
    assert np.isnan(together[2]) and together[0] > 1
    with torch.inference_mode():  # exp(mean NLL) by hand for the first answer
        prompt = tokenize_prompts(handle, [build_prompt(handle, items[0].question, None, ())])[0]
        ids = torch.tensor([prompt + answers[0]])
        logp = torch.log_softmax(handle.model(input_ids=ids).logits.float(), -1)[0]
        n = len(prompt)
        nll = -torch.stack([logp[n - 1 + k, t] for k, t in enumerate(answers[0])]).mean()
    assert together[0] == pytest.approx(float(torch.exp(nll)), rel=1e-4)


def test_steerability_is_the_slope_over_the_usable_alphas():
    rows = []
    for alpha in (-2.0, -1.0, 0.0, 1.0, 2.0):
        for _ in range(4):
            rows.append({"axis": "warm_cold", "alpha": alpha, "shift": 0.3 * alpha, "degraded": alpha == 2.0})
            rows.append({"axis": "formal_casual", "alpha": alpha, "shift": 0.0, "degraded": False})
    table = steering.steerability(pd.DataFrame(rows))
    assert table.loc["warm_cold", "steerability"] == pytest.approx(0.3)
    assert (
        table.loc["warm_cold", "usable_max_alpha"] == 1.0 and table.loc["warm_cold", "degraded_share"] == 0.2
    )
    assert table.loc["formal_casual", "steerability"] == pytest.approx(0.0, abs=1e-12)


def test_degradation_flags_high_perplexity_or_repetition():
    frame = pd.DataFrame(
        {"alpha": [0, 0, 1, 1, 1], "perplexity": [10, 12, 30, 11, 11], "repetition": [0, 0, 0, 0.6, 0.1]}
    )
    assert steering.degradation(frame).tolist() == [False, False, True, True, False]


def test_run_sweeps_every_axis_and_relates_dead_zones_to_steerability(tiny, tmp_path):
    handle = tiny("qwen2")
    profile = get_profile("smoke", n_benchmark=2, baseline_tokens=4)
    ws = Workspace(handle, profile, Protocol.load(), "random-qwen2", paths.folders(tmp_path))
    rng = np.random.default_rng(0)
    names = ["warm_cold", "formal_casual"]
    states = {
        n: (rng.normal(1, 1, (8, handle.hidden_size)), rng.normal(-1, 1, (8, handle.hidden_size)))
        for n in names
    }
    layers = Aggregation().absolute_layers(handle.n_layers)
    poles = {n: tuple(n.split("_")) for n in names}
    fit_axes(
        states, poles, model_id=handle.model_id, layers=layers, aggregation=Aggregation().to_dict()
    ).save(ws.axes_file)
    severity = {"warm_cold": 0.9, "formal_casual": 0.1}
    accuracy = {"warm_cold": (0.55, 0.4), "formal_casual": (0.9, 0.7)}  # warm/cold fails validation
    for slug in ("other", ws.slug):
        save_validity(ws, accuracy, dead=["warm_cold"], severity=severity, slug=slug)
    other = pd.DataFrame({"steerability": [0.0, 0.5]}, index=names)  # high severity, low steerability
    fields = {"profile": "smoke", "alphas": [0.0], "layers": [0], "max_new_tokens": 4, "n_questions": 2}
    saved = steering.SteeringResult(
        **fields, validated=[], summary=pd.DataFrame(), steerability=other, severity_vs_steerability={}
    )
    update_results("other", "steering", saved.to_dict(), ws.results_dir)
    with pytest.raises(ValueError, match="alpha 0"):
        steering.run(ws, [-1.0, 1.0])
    result = steering.run(ws, [-1.0, 0.0, 1.0], progress=False)
    assert result.layers == layers and result.max_new_tokens == 4 and result.n_questions == 2
    summary = result.summary.set_index(["axis", "alpha"])
    assert len(summary) == 2 * 3 and (summary.xs(0.0, level="alpha")["shift"] == 0).all()
    pairs = steering.severity_pairs(ws, result.steerability)
    assert len(pairs) == 4 and result.severity_vs_steerability["n_pairs"] == 4
    rho, p = stats.spearman(pairs["severity"], pairs["steerability"])
    assert result.severity_vs_steerability == pytest.approx({"rho": rho, "p": p, "n_pairs": 4})
    numbers = result.paper()
    assert numbers["alphas"] == "-1, 0, 1" and numbers["layers"] == "+".join(map(str, layers))
    assert numbers["n_pairs"] == 4 and numbers["degraded_share"] == pytest.approx(summary["degraded"].mean())
    # every answer has 4 tokens at most: the share cut off there is stated beside the steering numbers
    assert numbers["max_new_tokens"] == 4 and numbers["cut_percent"] == round(100 * summary["cut"].mean())
    # only the validated axis is interpreted; warm/cold is shown, marked
    assert result.validated == ["formal_casual"] and numbers["best_axis"] == "formal/casual"
    assert numbers["best_steerability"] == result.steerability.loc["formal_casual", "steerability"]
    assert (numbers["n_not_interpreted"], numbers["not_interpreted"]) == (1, "warm/cold")
    table = result.paper_tables()["steering_table"].frame
    assert list(table.index) == [f"warm_cold{MARK}", "formal_casual"]


def _steering_result(steerability: dict[str, float], validated: list[str]) -> steering.SteeringResult:
    summary = pd.DataFrame({"degraded": [0.0, 0.5], "cut": [1.0, 0.5]})
    fields = {"profile": "smoke", "alphas": [0.0, 1.0], "layers": [0], "max_new_tokens": 4, "n_questions": 2}
    relation = {"rho": np.nan, "p": np.nan, "n_pairs": 0}
    table = pd.DataFrame({"steerability": steerability})
    return steering.SteeringResult(
        **fields, validated=validated, summary=summary, steerability=table, severity_vs_steerability=relation
    )


def test_the_most_steerable_axis_is_named_among_the_validated_axes_only(tmp_path):
    """The paper's "largest on" names the steepest validated axis, never one that failed validation."""
    result = _steering_result(
        {"warm_cold": 0.9, "formal_casual": 0.2, "verbose_concise": 0.4}, ["formal_casual"]
    )
    numbers = result.paper()
    assert numbers["best_axis"] == "formal/casual" and numbers["best_steerability"] == 0.2
    assert numbers["mean_steerability"] == 0.2 and numbers["cut_percent"] == 75
    assert numbers["not_interpreted"] == "warm/cold, verbose/concise"
    none = _steering_result({"warm_cold": 0.9}, []).paper()
    assert none["best_axis"] == "none" and np.isnan(none["best_steerability"])
    assert_paper_survives_reload(result, tmp_path)
