import json

import numpy as np
import pytest

import styleprobe.engine.pipeline as pipeline
from styleprobe.engine.extraction import NonFiniteStatesError
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.hooks import untuple
from styleprobe.engine.models import decoder_layers
from styleprobe.engine.pipeline import Item, run_stage
from styleprobe.engine.store import RunMismatchError, Stage
from styleprobe.errors import UsageError
from styleprobe.testing import load_random_model

ITEMS = [
    Item(f"q{i}", q, "Answer warmly." if i % 2 else None, meta={"k": i})
    for i, q in enumerate(
        [
            "Why do cats purr?",
            "What is bread made of?",
            "How far is the moon?",
            "Is tea healthy?",
            "What is a verb?",
            "How do magnets work?",
            "Hi?",
        ]
    )
]
SAMPLING = SamplingConfig(8)


def _run(handle, path, sampling=SAMPLING, **kw):
    return run_stage(handle, path, ITEMS, sampling, seed=3, batch_size=2, progress=False, **kw)


def test_same_settings_same_responses(tiny, tmp_path):
    a = _run(tiny("llama"), tmp_path / "a")
    b = _run(tiny("llama"), tmp_path / "b")
    assert a.records["response"].tolist() == b.records["response"].tolist()
    assert a.records["id"].tolist() == [it.id for it in ITEMS]  # back in the caller's order
    np.testing.assert_array_equal(a.per_layer, b.per_layer)
    assert a.per_layer.shape == (len(ITEMS), 4, tiny("llama").hidden_size)


def test_items_sharing_a_stream_draw_the_same_random_numbers(tiny, tmp_path):
    question = "Why do cats purr?"
    items = [Item("a", question, stream="s"), Item("b", question, stream="s"), Item("c", question)]
    res = run_stage(tiny("llama"), tmp_path / "s", items, SamplingConfig(12), batch_size=3, progress=False)
    a, b, c = res.records["response_ids"]
    assert a == b and a != c


def test_steered_stage_records_its_steering_and_checks_the_offsets(tiny, tmp_path):
    handle = tiny("llama")
    offsets = np.zeros((len(ITEMS), handle.hidden_size), np.float32)
    plain = _run(handle, tmp_path / "plain")
    zero = _run(handle, tmp_path / "zero", steer=([2, 3], offsets))  # adding nothing changes nothing
    assert zero.records["response"].tolist() == plain.records["response"].tolist()
    offsets[1] = 8.0
    with pytest.raises(RunMismatchError):  # other steering, same run dir
        _run(handle, tmp_path / "zero", steer=([2, 3], offsets))
    with pytest.raises(ValueError, match=r"offsets must be \[7, "):
        _run(handle, tmp_path / "bad", steer=([2, 3], offsets[:3]))


def test_kill_and_resume_gives_identical_results(tiny, tmp_path, monkeypatch):
    handle = tiny("llama")
    whole = _run(handle, tmp_path / "whole")
    calls = {"n": 0}
    real = pipeline.generate

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed while the third batch is being generated
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "generate", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(handle, tmp_path / "resumed")
    done = sorted(p.name for p in (tmp_path / "resumed" / "batches").iterdir())
    assert done == ["00000.safetensors", "00001.safetensors"]  # finished work kept, nothing half-written
    monkeypatch.setattr(pipeline, "generate", real)
    resumed = _run(handle, tmp_path / "resumed")
    assert resumed.records.drop(columns=[]).equals(whole.records)
    np.testing.assert_array_equal(resumed.per_layer, whole.per_layer)


def test_resume_reuses_finished_batches(tiny, tmp_path, monkeypatch):
    handle = tiny("llama")
    first = _run(handle, tmp_path / "r")
    monkeypatch.setattr(pipeline, "generate", lambda *a, **k: pytest.fail("regenerated a finished batch"))
    again = run_stage(handle, tmp_path / "r", ITEMS, SAMPLING, seed=3, progress=False)  # batch size from disk
    assert again.records.equals(first.records)


def test_other_settings_in_the_same_run_dir_are_refused(tiny, tmp_path):
    handle = tiny("llama")
    _run(handle, tmp_path / "r")
    with pytest.raises(RunMismatchError, match="seed"):
        run_stage(handle, tmp_path / "r", ITEMS, SAMPLING, seed=4, batch_size=2, progress=False)


def test_a_run_in_another_dtype_is_refused(tiny, cache, tmp_path):
    _run(tiny("llama"), tmp_path / "r")
    handle = load_random_model("llama", cache / "llama", dtype="bfloat16")
    with pytest.raises(RunMismatchError, match="dtype"):  # bf16 answers never join float32 ones
        run_stage(handle, tmp_path / "r", ITEMS, SAMPLING, seed=3, progress=False)


def test_empty_responses_are_kept_and_flagged(tiny, tmp_path):
    handle = tiny("gemma2")
    eot = handle.end_of_turn_ids[0]

    def end_at_once(_module, _inputs, logits):  # the model ends its turn before saying anything
        logits[..., eot] += 1e4
        return logits

    hook = handle.model.get_output_embeddings().register_forward_hook(end_at_once)
    try:
        result = _run(handle, tmp_path / "g")
    finally:
        hook.remove()
    rec = result.records
    assert {"empty", "finished", "n_tokens", "n_measured"} <= set(rec.columns)
    assert rec["empty"].all() and rec["finished"].all() and (rec["n_tokens"] == 0).all()
    assert (result.per_layer[rec["n_measured"].to_numpy() == 0] == 0).all()
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["settings"]["batch_size"] == 2 and manifest["settings"]["seed"] == 3


def _steer(handle, after: dict[int, int], first: int | None = None):
    """Force the next token: `first` after the prompt, `after[t]` right after token t is fed back; the
    tokens of `after` are drawn nowhere else. A hook on the causal LM, so it runs after the tiny qwen3's."""

    def hook(_module, _args, kwargs, output):
        ids, logits = kwargs["input_ids"], output.logits[:, -1]
        logits[:, list(after.values())] = -1e4
        if ids.shape[1] > 1:  # the prompt
            forced = [] if first is None else [(slice(None), first)]
        else:
            forced = [(ids[:, 0] == fed, token) for fed, token in after.items()]
        for rows, token in forced:
            logits[rows] = -1e4
            logits[rows, token] = 0.0

    return handle.model.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("kind", ["whitespace", "special tokens", "after the think block"])
def test_answers_with_no_visible_text_are_flagged_empty(tiny, tmp_path, kind):
    """`empty` means no visible text is measured: whitespace, special tokens only, or (thinking models)
    nothing but whitespace after `</think>`; such answers are measured (n_measured > 0) but flagged, also
    when an older run stored another flag."""
    handle = tiny("qwen3" if kind == "after the think block" else "llama")
    tok = handle.tokenizer
    tab, newline = tok("\t\n", add_special_tokens=False)["input_ids"]
    eot = handle.end_of_turn_ids[0]
    if kind == "whitespace":
        steering = _steer(handle, {tab: newline, newline: eot}, first=tab)
    elif kind == "special tokens":
        bos, start = tok.convert_tokens_to_ids(["<bos>", "<|im_start|>"])
        steering = _steer(handle, {bos: start, start: eot}, first=bos)
    else:  # the tiny qwen3 thinks (random text), closes the block, then writes a tab and ends its turn
        steering = _steer(handle, {handle.think_ids[1]: tab, tab: eot})
    try:
        result = _run(handle, tmp_path / "s", sampling=SamplingConfig(40))
    finally:
        steering.remove()
    rec = result.records
    assert rec["finished"].all() and (rec["n_measured"] > 0).all() and rec["empty"].all()
    if kind == "after the think block":
        assert rec["response"].str.strip().str.len().gt(1).all()  # the think block itself has text
        assert (rec["n_measured"] == 1).all()
    stage = Stage(tmp_path / "s", json.loads((tmp_path / "s" / "manifest.json").read_text())["settings"])
    records, arrays = stage.read(0)
    stage.write(0, [{**r, "empty": False} for r in records], arrays)  # as an older version stored it
    again = _run(handle, tmp_path / "s", sampling=SamplingConfig(40))
    assert again.records["empty"].all()


def test_rereading_without_the_system_prompt_changes_states_not_answers(tiny, tmp_path):
    handle = tiny("llama")
    with_sys = _run(handle, tmp_path / "a")
    without = _run(handle, tmp_path / "b", read_with_system=False)
    assert with_sys.records["response"].tolist() == without.records["response"].tolist()
    has_sys = with_sys.records["system"].notna().to_numpy() & (with_sys.records["n_measured"] > 0).to_numpy()
    assert not np.allclose(with_sys.per_layer[has_sys], without.per_layer[has_sys])
    np.testing.assert_allclose(with_sys.per_layer[~has_sys], without.per_layer[~has_sys], atol=1e-5)


def test_online_and_reforward_stages_agree(tiny, tmp_path):
    handle = tiny("qwen2")
    online = _run(handle, tmp_path / "on", extraction="online")
    reread = _run(handle, tmp_path / "re", extraction="reforward")
    assert online.records["response"].tolist() == reread.records["response"].tolist()
    np.testing.assert_allclose(online.per_layer, reread.per_layer, atol=1e-4)
    with pytest.raises(ValueError, match="generation context"):
        _run(handle, tmp_path / "x", extraction="online", read_with_system=False)


def test_non_finite_states_while_decoding_stop_the_stage_before_anything_is_stored(tiny, tmp_path):
    handle = tiny("qwen2")
    last = handle.n_layers - 1

    def overflow(_module, _inputs, output):  # inf in the last block's output at every decoded token
        hidden = untuple(output)
        if hidden.shape[1] == 1:
            hidden[..., 0] = float("inf")

    hook = decoder_layers(handle.model)[last].register_forward_hook(overflow)
    try:
        with pytest.raises(NonFiniteStatesError, match=f"decoder layer {last} "):
            _run(handle, tmp_path / "s", extraction="online")
    finally:
        hook.remove()
    assert not (tmp_path / "s" / "batches").exists()  # a resumed run never reads them back


def test_reread_matches_online_capture_and_resumes_from_its_store(tiny, tmp_path, monkeypatch):
    handle = tiny("qwen2")
    online = _run(handle, tmp_path / "online", extraction="online")
    layers = online.aggregation.absolute_layers(handle.n_layers)
    ids = list(online.records["response_ids"])
    states = pipeline.reread(
        handle, ITEMS, ids, layers, (0.9, 1.0), stage_dir=tmp_path / "re", progress=False
    )
    assert states.shape == (len(ITEMS), 2, len(layers), handle.hidden_size)
    np.testing.assert_allclose(states[:, 0], online.per_layer, atol=1e-4)
    assert not np.allclose(states[:, 0], states[:, 1])  # decay 0.9 and the plain mean differ

    monkeypatch.setattr(pipeline, "extract", lambda *a, **k: pytest.fail("stored batches must be reused"))
    again = pipeline.reread(handle, ITEMS, ids, layers, (0.9, 1.0), stage_dir=tmp_path / "re", progress=False)
    np.testing.assert_array_equal(again, states)
    with pytest.raises(RunMismatchError):  # another reading context never mixes with the stored one
        pipeline.reread(
            handle,
            ITEMS,
            ids,
            layers,
            (0.9, 1.0),
            keep_system=False,
            stage_dir=tmp_path / "re",
            progress=False,
        )


def test_reread_without_the_system_prompt_reads_other_states(tiny):
    handle = tiny("qwen2")
    ids = [handle.tokenizer("Sure, here it is.", add_special_tokens=False)["input_ids"]] * 2
    items = [Item("a", "Why?", "Be warm."), Item("b", "Why?", "Be warm.")]
    kept = pipeline.reread(handle, items, ids, [handle.n_layers - 1], progress=False)
    dropped = pipeline.reread(handle, items, ids, [handle.n_layers - 1], keep_system=False, progress=False)
    assert not np.allclose(kept, dropped)
    with pytest.raises(ValueError, match="one response per item"):
        pipeline.reread(handle, items, ids[:1], [0], progress=False)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_a_bad_batch_size_is_refused_before_anything_is_written(tiny, tmp_path, batch_size):
    with pytest.raises(UsageError, match="batch size"):
        run_stage(tiny("llama"), tmp_path / "s", ITEMS, SAMPLING, batch_size=batch_size, progress=False)
    assert not (tmp_path / "s").exists()  # no manifest holds the rejected setting
    with pytest.raises(UsageError, match="batch size"):
        pipeline.read_responses(tiny("llama"), ITEMS, ["Yes."] * len(ITEMS), batch_size=0, progress=False)


def test_a_conversation_past_the_model_context_is_warned_about(tiny, monkeypatch):
    handle = tiny("llama")
    monkeypatch.setattr(handle.model.config, "max_position_embeddings", 40)
    long, short = "word " * 60, "Fine."
    with pytest.warns(
        pipeline.ContextWarning, match=r"1 of 2 conversations exceed .* context of 40 tokens: a "
    ):
        pipeline.read_responses(handle, [Item("a", "Q?"), Item("b", "Q?")], [long, short], progress=False)


def test_a_concurrent_first_run_adopts_the_automatic_batch_size_that_won(tiny, tmp_path, monkeypatch):
    """Two first runs both find no manifest and choose a batch size each; the one that loses the race to
    write the manifest takes the winner's size instead of failing (only an automatic size is adopted)."""
    winner = _run(tiny("llama"), tmp_path / "s")  # batch size 2, as if chosen by the other process
    looked, read = [], pipeline.read_manifest

    def missed_once(path):  # our look happened before the other process wrote its manifest
        looked.append(path)
        return None if len(looked) == 1 else read(path)

    monkeypatch.setattr(pipeline, "read_manifest", missed_once)
    late = run_stage(tiny("llama"), tmp_path / "s", ITEMS, SAMPLING, seed=3, progress=False)
    assert late.records["response"].tolist() == winner.records["response"].tolist()
    with pytest.raises(RunMismatchError, match="batch_size"):  # a size the user asked for is not changed
        run_stage(tiny("llama"), tmp_path / "s", ITEMS, SAMPLING, seed=3, batch_size=5, progress=False)
