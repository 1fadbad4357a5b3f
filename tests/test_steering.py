import numpy as np
import pandas as pd
import pytest
import torch

from styleprobe.analyses import steering
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import TokenSequence, extract
from styleprobe.engine.generation import tokenize_prompts
from styleprobe.engine.pipeline import Item


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
