import numpy as np
import pytest
import torch

from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import NonFiniteStatesError, TokenSequence, extract, measure_mask
from styleprobe.engine.generation import SamplingConfig, generate, tokenize_prompts
from styleprobe.engine.hooks import block_hooks, untuple
from styleprobe.engine.models import decoder_layers
from styleprobe.engine.sampling import sample, sample_full, uniform_noise

QUESTIONS = ["What is rain?", "How do I boil an egg?", "Name a fruit.", "Why do birds sing in the morning?"]


def _prompts(handle):
    return tokenize_prompts(handle, [build_prompt(handle, q, "Be brief.") for q in QUESTIONS])


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gemma3"])
def test_greedy_decoding_matches_transformers_generate(tiny, arch):
    handle = tiny(arch)
    ours, _ = generate(handle, _prompts(handle), SamplingConfig(12, greedy=True), [0] * 4)
    for prompt, gen in zip(_prompts(handle), ours, strict=True):
        ids = torch.tensor([prompt])
        ref = handle.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=handle.end_of_turn_ids,
            pad_token_id=handle.tokenizer.pad_token_id,
        )
        ref_ids = ref[0, len(prompt) :].tolist()
        cut = next((i for i, t in enumerate(ref_ids) if t in handle.end_of_turn_ids), len(ref_ids))
        assert gen.response_ids == ref_ids[:cut]


def test_sampling_does_not_depend_on_the_batch(tiny):
    handle = tiny("llama")
    prompts = _prompts(handle)
    keys = [11, 12, 13, 14]
    together, _ = generate(handle, prompts, SamplingConfig(16), keys)
    alone = [generate(handle, [p], SamplingConfig(16), [k])[0][0] for p, k in zip(prompts, keys, strict=True)]
    reversed_, _ = generate(handle, prompts[::-1], SamplingConfig(16), keys[::-1])
    assert [g.response_ids for g in together] == [g.response_ids for g in alone]
    assert [g.response_ids for g in together] == [g.response_ids for g in reversed_[::-1]]
    other, _ = generate(handle, prompts, SamplingConfig(16), [21, 22, 23, 24])
    assert [g.response_ids for g in other] != [g.response_ids for g in together]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])
def test_online_capture_equals_teacher_forced_reread(tiny, arch):
    """States aggregated while decoding equal a second, teacher-forced pass over the same tokens, also for
    rows dropped from the batch early (end of turn) and rows that hit the budget (atol 1e-4, float32)."""
    handle = tiny(arch)
    layers = [2, 3, 4, 5]
    eot = handle.end_of_turn_ids[0]
    calls = {"n": 0}

    def end_some_turns(_module, _inputs, logits):  # rows 0 and 2 end their turn after a few tokens
        calls["n"] += 1
        if calls["n"] in (4, 7) and logits.shape[0] > 2:
            logits[0 if calls["n"] == 4 else 2, :, eot] += 1e4
        return logits

    hook = handle.model.get_output_embeddings().register_forward_hook(end_some_turns)
    try:
        gens, online = generate(
            handle, _prompts(handle), SamplingConfig(14), [1, 2, 3, 4], capture=(layers, 0.9)
        )
    finally:
        hook.remove()
    assert any(g.finished for g in gens) and not all(g.finished for g in gens)
    seqs = [
        TokenSequence(g.prompt_ids + g.response_ids, measure_mask(handle, len(g.prompt_ids), g.response_ids))
        for g in gens
    ]
    reread = extract(handle, seqs, layers, (0.9,))[:, 0]
    np.testing.assert_allclose(online, reread, atol=1e-4)


def test_online_capture_refuses_non_finite_states(tiny):
    """A NaN in one decoded token's block output (the prompt stays finite, as after an fp16 overflow while
    decoding) is reported in one line naming the first read layer that holds it, not aggregated."""
    handle = tiny("llama")

    def poison(_module, _inputs, output):  # row 0's newest token, decoding steps only
        hidden = untuple(output)
        if hidden.shape[1] == 1:
            hidden[0, -1, 0] = float("nan")

    hook = decoder_layers(handle.model)[3].register_forward_hook(poison)
    try:
        with pytest.raises(
            NonFiniteStatesError, match=r"^non-finite hidden states at decoder layer 3 "
        ) as err:
            generate(handle, _prompts(handle), SamplingConfig(6), [1, 2, 3, 4], capture=([2, 3, 4, 5], 0.9))
    finally:
        hook.remove()
    assert "\n" not in str(err.value)


def test_sampler_draws_from_the_nucleus_distribution():
    torch.manual_seed(0)
    logits = torch.randn(1, 50) * 2
    probs = torch.softmax(logits / 0.7, -1)[0]
    order = probs.argsort(descending=True)
    before = probs[order].cumsum(0) - probs[order]
    nucleus = order[before < 0.9]
    target = torch.zeros(50)
    target[nucleus] = probs[nucleus] / probs[nucleus].sum()
    n = 20000
    draws = torch.stack([sample(logits, torch.tensor([k]), 0, 0.7, 0.9)[0] for k in range(n)]).squeeze(1)
    freq = torch.bincount(draws, minlength=50).float() / n
    assert set(draws.unique().tolist()) <= set(nucleus.tolist())
    assert (freq - target).abs().max() < 0.015


def test_full_sort_fallback_agrees_with_the_fast_path():
    torch.manual_seed(1)
    flat = torch.randn(8, 5000) * 0.1  # a flat distribution: the nucleus spans far more than the top-k
    keys = torch.arange(8)
    fast, overflow = sample(flat, keys, 3, 0.7, 0.9)
    assert overflow.all()
    peaked = torch.randn(8, 5000) * 8
    fast, overflow = sample(peaked, keys, 3, 0.7, 0.9)
    assert not overflow.any()
    assert torch.equal(fast, sample_full(peaked, keys, 3, 0.7, 0.9))


def test_noise_is_a_function_of_key_step_and_token():
    tokens = torch.arange(100)[None].repeat(2, 1)
    a = uniform_noise(torch.tensor([5, 6]), 2, tokens)
    assert torch.equal(a, uniform_noise(torch.tensor([5, 6]), 2, tokens))
    assert not torch.equal(a[0], a[1]) and ((a > 0) & (a < 1)).all()
    assert not torch.equal(a, uniform_noise(torch.tensor([5, 6]), 3, tokens))


def test_wide_and_full_fallbacks_draw_the_same_token():
    """A nucleus wider than the top 64 but within the top 1024 is drawn from the wide tier, and the result is
    what the full sort gives (the draw depends on (key, step, token) only)."""
    from styleprobe.engine import sampling

    torch.manual_seed(0)
    logits = torch.randn(6, 5000) * 1.5  # flat: the nucleus spans hundreds of tokens
    keys = torch.arange(6)
    wide = sample_full(logits, keys, 2, 1.0, 0.5)
    assert torch.equal(wide, sampling._sample_sorted(logits, keys, 2, 1.0, 0.5))
    assert sample(logits, keys, 2, 1.0, 0.5)[1].all()  # wider than the top 64 ...
    assert not sample(logits, keys, 2, 1.0, 0.5, candidates=1024)[1].any()  # ... but within the top 1024


def test_rows_steered_differently_in_one_batch_decode_as_if_alone(tiny):
    """Per-row steering (`steer=`) gives each row what steering it alone gives, also after a finished row
    is dropped from the batch (the vectors must follow the rows), and it does change the answers."""
    handle = tiny("llama")
    blocks, eot = [3, 4], handle.end_of_turn_ids[0]
    prompts = _prompts(handle)
    offsets = 4 * np.random.default_rng(0).normal(size=(4, handle.hidden_size)).astype(np.float32)
    offsets[2] = 0  # one row unsteered
    cfg, keys = SamplingConfig(10), [1, 2, 3, 4]
    calls = {"n": 0}

    def end_row_0(_module, _inputs, logits):  # row 0 ends its turn early, so it is dropped from the batch
        calls["n"] += 1
        if calls["n"] == 4:
            logits[0, :, eot] += 1e4
        return logits

    hook = handle.model.get_output_embeddings().register_forward_hook(end_row_0)
    try:
        together, _ = generate(handle, prompts, cfg, keys, steer=(blocks, offsets))
    finally:
        hook.remove()
    alone = []
    for prompt, key, offset in zip(prompts, keys, offsets, strict=True):
        add = torch.as_tensor(offset)
        with block_hooks(handle, [(b, lambda hidden, add=add: hidden + add) for b in blocks]):
            alone.append(generate(handle, [prompt], cfg, [key])[0][0].response_ids)
    assert together[0].finished and len(together[0].response_ids) < len(alone[0])
    assert together[0].response_ids == alone[0][: len(together[0].response_ids)]
    assert [g.response_ids for g in together[1:]] == alone[1:]
    plain = generate(handle, prompts, cfg, keys)[0]
    assert together[2].response_ids == plain[2].response_ids
    assert all(together[r].response_ids != plain[r].response_ids for r in (1, 3))


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_preallocated_cache_decodes_like_the_dynamic_cache(tiny, arch):
    """`new_cache(model, capacity)` gives the logits of transformers' concatenating `DynamicCache` step for
    step, through a dropped row and past its capacity (the buffer grows); gemma3's sliding-window layers
    are left as the config makes them."""
    from transformers import DynamicCache

    from styleprobe.engine import compat
    from styleprobe.engine.hooks import pad_batch

    if compat.DynamicLayer is None:
        pytest.skip("this transformers release has no layered cache, so new_cache does not preallocate")
    cache_kwargs, new_cache = compat.cache_kwargs, compat.new_cache
    handle = tiny(arch)
    ids, mask = pad_batch(_prompts(handle), handle.tokenizer.pad_token_id, "left")
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    caches = {
        "ours": new_cache(handle.model, capacity=ids.shape[1] + 2),
        "dynamic": DynamicCache(config=handle.model.config),
    }
    kinds = {type(layer) for layer in caches["ours"].layers}
    assert compat.PreallocatedLayer in kinds and compat.DynamicLayer not in kinds
    assert (len(kinds) > 1) == (arch == "gemma3")
    logits = {}
    for name, cache in caches.items():
        kw, step_ids, step_mask, step_pos, out = cache_kwargs(handle.model, cache), ids, mask, pos, []
        for step in range(6):
            if step == 3:  # drop row 1, as generate does with finished rows
                keep = torch.tensor([0, 2, 3])
                cache.batch_select_indices(keep)
                step_ids, step_mask, step_pos = step_ids[keep], step_mask[keep], step_pos[keep]
            with torch.inference_mode():
                res = handle.model(input_ids=step_ids, attention_mask=step_mask, position_ids=step_pos, **kw)
            out.append(res.logits[:, -1])
            step_ids = res.logits[:, -1].argmax(-1, keepdim=True)
            step_mask = torch.cat([step_mask, torch.ones_like(step_ids)], dim=1)
            step_pos = step_pos[:, -1:] + 1
        logits[name] = out
    assert caches["ours"].get_seq_length() == ids.shape[1] + 5 > ids.shape[1] + 2  # it grew
    for ours, ref in zip(logits["ours"], logits["dynamic"], strict=True):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    for cache in caches.values():
        cache.crop(-2)
    assert caches["ours"].get_seq_length() == caches["dynamic"].get_seq_length() == ids.shape[1] + 3
    caches["ours"].reset()
    assert caches["ours"].get_seq_length() == 0
