import numpy as np
import pytest
import torch

from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import (
    EMBEDDING,
    Aggregation,
    NonFiniteStatesError,
    Readings,
    TokenSequence,
    extract,
    measure_mask,
    token_weights,
)
from styleprobe.engine.generation import SamplingConfig, generate, tokenize_prompts
from styleprobe.engine.models import decoder_layers

QUESTIONS = ["What is rain?", "How do I boil an egg without cracking the shell?", "Name a fruit."]


def _sequences(handle, n_tokens=12, seed=0):
    prompts = [build_prompt(handle, q, "Be brief.") for q in QUESTIONS]
    gens, _ = generate(handle, tokenize_prompts(handle, prompts), SamplingConfig(n_tokens), [seed] * 3)
    return [
        TokenSequence(g.prompt_ids + g.response_ids, measure_mask(handle, len(g.prompt_ids), g.response_ids))
        for g in gens
    ]


def test_token_weights_decay_from_last_measured_token():
    measure = torch.tensor([[False, True, True, True, False]])
    w = token_weights(measure, 0.5)[0]
    expected = np.array([0, 0.25, 0.5, 1.0, 0]) / 1.75
    assert np.allclose(w.numpy(), expected)
    assert np.allclose(token_weights(measure, 0.0)[0].numpy(), [0, 0, 0, 1, 0])  # last token only
    assert np.allclose(token_weights(measure, 1.0)[0].numpy(), [0, 1 / 3, 1 / 3, 1 / 3, 0])  # plain mean


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])
def test_batched_equals_one_at_a_time_with_either_padding(tiny, arch):
    handle = tiny(arch)
    seqs = _sequences(handle)
    assert len({len(s.ids) for s in seqs}) > 1  # padding is really exercised
    layers = [2, 3, 4, 5]
    single = np.concatenate([extract(handle, [s], layers, (0.9, 1.0)) for s in seqs])
    for side in ("left", "right"):
        batched = extract(handle, seqs, layers, (0.9, 1.0), padding=side)
        np.testing.assert_allclose(batched, single, atol=2e-5)
    chunked = extract(handle, seqs, layers, (0.9,), chunk_size=7)
    np.testing.assert_allclose(chunked[:, 0], single[:, 0], atol=2e-5)


def test_generate_time_states_equal_teacher_forced(tiny):
    """Hidden states recorded during generation equal the teacher-forced re-read (float32, atol 1e-4).
    generate() reports block outputs as hidden_states[i + 1]; the last entry is after the final norm, so the
    comparison uses blocks 1..n-2."""
    handle = tiny("llama")
    prompt = tokenize_prompts(handle, [build_prompt(handle, QUESTIONS[1], "Be warm.")])[0]
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = handle.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=10,
            do_sample=False,
            output_hidden_states=True,
            return_dict_in_generate=True,
            eos_token_id=None,
        )
    new = out.sequences[0, len(prompt) :].tolist()
    layers = [1, 2, 3, 4]
    # hidden state of generated token j is computed at step j + 1, when it is fed back
    steps = out.hidden_states[1:]
    per_layer = np.stack([np.stack([s[i + 1][0, -1].float().numpy() for s in steps]) for i in layers])
    weights = 0.9 ** np.arange(len(steps))[::-1]
    reference = np.einsum("t,ltd->ld", weights / weights.sum(), per_layer)
    seq = TokenSequence(prompt + new[:-1], [False] * len(prompt) + [True] * (len(new) - 1))
    ours = extract(handle, [seq], layers, (0.9,))[0, 0]
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_prompt_and_padding_tokens_do_not_count(tiny):
    handle = tiny("llama")
    seq = _sequences(handle)[0]
    layers = [5]
    base = extract(handle, [seq], layers)
    # changing a prompt token changes the context, but masking more prompt tokens changes nothing measured
    masked = TokenSequence(seq.ids, [False] * 3 + seq.measure[3:])
    np.testing.assert_allclose(extract(handle, [masked], layers), base, atol=1e-6)
    # a batch neighbour with a different pad length leaves the result unchanged
    longer = TokenSequence(seq.ids + seq.ids, [False] * len(seq.ids) + seq.measure)
    np.testing.assert_allclose(extract(handle, [seq, longer], layers)[0], base[0], atol=2e-5)


def test_think_block_and_end_of_turn_are_excluded(tiny):
    handle = tiny("qwen3")
    vocab = handle.tokenizer.get_vocab()
    think, close = vocab["<think>"], vocab["</think>"]
    answer = handle.tokenizer("ok", add_special_tokens=False)["input_ids"]
    resp = [think, 70, 71, close, *answer]
    mask = measure_mask(handle, 3, resp)
    assert mask == [False] * 3 + [False] * 4 + [True] * len(answer)
    assert not any(measure_mask(handle, 3, [think, 70, 71]))  # never reached a visible answer
    # generation cuts at the first end-of-turn token, which therefore never reaches the measured span
    from styleprobe.engine.generation import _cut

    eot = handle.end_of_turn_ids[0]
    assert _cut(handle, [80, 81, eot, 82, eot]) == ([80, 81], True)
    assert _cut(handle, [80, 81]) == ([80, 81], False)


def test_thinking_switch_reaches_the_template(tiny):
    handle = tiny("qwen3")
    off = build_prompt(handle, "Hi?", thinking=False)
    on = build_prompt(handle, "Hi?", thinking=True)
    assert "<think>" in off and "<think>" not in on


def test_nan_states_name_the_layer(tiny):
    handle = tiny("llama")
    seq = _sequences(handle)[0]

    def poison(module, inputs, output):  # a block returns a tensor (transformers 5) or a tuple (4)
        return (output[0] * float("nan"), *output[1:]) if isinstance(output, tuple) else output * float("nan")

    hook = decoder_layers(handle.model)[3].register_forward_hook(poison)
    try:
        with pytest.raises(NonFiniteStatesError, match="layer 3"):
            extract(handle, [seq], [2, 3, 4])
    finally:
        hook.remove()


def test_aggregation_combines_and_validates():
    agg = Aggregation()
    per_layer = np.stack([np.full(4, v) for v in (1.0, 2.0, 3.0, 4.0)])[None]
    assert np.allclose(agg.combine(per_layer), 0.1 + 0.4 + 0.9 + 1.6)
    assert agg.absolute_layers(30) == [26, 27, 28, 29]
    with pytest.raises(ValueError):
        Aggregation(layers=(-1,), layer_weights=(0.5, 0.5))
    with pytest.raises(ValueError):
        Aggregation().absolute_layers(3)


@pytest.mark.parametrize("arch", ["llama", "gemma2"])
def test_embedding_reading_is_the_input_of_block_0(tiny, arch):
    """EMBEDDING reads the residual stream before any block: transformers' hidden_states[0] (after gemma's
    embedding scaling), alone or beside blocks in one pass."""
    handle = tiny(arch)
    seq = _sequences(handle)[1]
    ids = torch.tensor([seq.ids])
    with torch.inference_mode():
        hidden = handle.model(input_ids=ids, output_hidden_states=True).hidden_states
    measured = torch.tensor(seq.measure)
    mean0 = hidden[0][0, measured].float().mean(0).numpy()
    last0 = hidden[0][0, measured][-1].float().numpy()
    both = extract(handle, [seq], [EMBEDDING, 2], (1.0, 0.0))
    np.testing.assert_allclose(both[0, 0, 0], mean0, atol=1e-5)
    np.testing.assert_allclose(both[0, 1, 0], last0, atol=1e-5)
    np.testing.assert_allclose(both[0, 0, 1], hidden[3][0, measured].float().mean(0).numpy(), atol=1e-4)
    alone = extract(handle, [seq], [EMBEDDING], (1.0,))
    np.testing.assert_allclose(alone[0, 0, 0], mean0, atol=1e-5)
    assert not np.allclose(mean0, both[0, 0, 1])  # the embedding is not block 2's output


def test_readings_grid_reads_any_single_block_reading():
    rng = np.random.default_rng(0)
    grid_readings = Readings.grid([EMBEDDING, 0, 1, 2], (0.0, 1.0))
    assert grid_readings.layers == [EMBEDDING, 0, 1, 2] and grid_readings.decays == (0.0, 1.0)
    grid = rng.normal(size=(5, 2, 4, 3))
    one = Aggregation((1,), (1.0,), 1.0)
    np.testing.assert_allclose(grid_readings.read(grid, one), grid[:, 1, 2])
    two = Aggregation((0, 2), (1.0, 3.0), 0.0)
    np.testing.assert_allclose(grid_readings.read(grid, two), 0.25 * grid[:, 0, 1] + 0.75 * grid[:, 0, 3])
    per_axis = Readings((one, two))
    sub = grid_readings.subgrid(grid, per_axis)
    assert sub.shape == (5, 2, 3, 3)  # decays 0 and 1, blocks 0, 1, 2
    np.testing.assert_allclose(per_axis.combine(sub)[:, 0], grid[:, 1, 2])
    np.testing.assert_allclose(per_axis.combine(sub)[:, 1], grid_readings.read(grid, two))
    with pytest.raises(ValueError, match="not covered"):
        grid_readings.read(grid, Aggregation((1,), (1.0,), 0.9))
    with pytest.raises(ValueError, match="absolute"):
        Readings((Aggregation(),))  # negative (from the end) layers
