import pytest
import torch

from styleprobe.chat import build_prompt, plain_prompt
from styleprobe.models import (
    ModelLoadError,
    default_dtype,
    end_of_turn_ids,
    load_model,
    load_presets,
    resolve,
    slugify,
)


@pytest.mark.parametrize("name", ["no-such-model", "./missing/dir/x.gguf", "a b c"])
def test_unknown_models_fail_in_one_line(name):
    with pytest.raises(ModelLoadError) as err:
        resolve(name)
    assert "\n" not in str(err.value) and name.split("/")[-1] in str(err.value)


def test_hub_ids_and_presets_resolve_without_loading():
    assert resolve("Qwen/Qwen2.5-7B-Instruct") == ("Qwen/Qwen2.5-7B-Instruct", None)
    source, preset = resolve("qwen3-8b")
    assert source == "Qwen/Qwen3-8B" and preset.thinking
    assert not load_presets()["gemma-2-9b-it"].system_role
    assert {p.kind for p in load_presets().values()} == {"instruct", "base"}


def test_slugify():
    assert slugify("Qwen/Qwen2.5-7B-Instruct") == "qwen2.5-7b-instruct"
    assert slugify("/models/SmolLM2-135M-Instruct.Q4_1.gguf") == "smollm2-135m-instruct.q4-1"


def test_end_of_turn_ids_cover_the_template_marker(tiny):
    handle = tiny("gemma2")
    vocab = handle.tokenizer.get_vocab()
    assert vocab["<end_of_turn>"] in end_of_turn_ids(handle.model, handle.tokenizer)
    handle.model.generation_config.eos_token_id = [vocab["<eos>"], vocab["<end_of_turn>"]]
    assert {vocab["<eos>"], vocab["<end_of_turn>"]} <= set(end_of_turn_ids(handle.model, handle.tokenizer))


def test_system_prompt_is_merged_when_the_template_rejects_it(tiny):
    prompt = build_prompt(tiny("gemma2"), "What is rain?", "Be warm.")
    assert prompt.count("<start_of_turn>user\nBe warm.\n\nWhat is rain?<end_of_turn>") == 1
    assert "system" not in prompt
    chatml = build_prompt(tiny("llama"), "What is rain?", "Be warm.", history=[("Hi", "Hello!")])
    assert chatml.index("<|im_start|>system\nBe warm.") < chatml.index("Hi") < chatml.index("What is rain?")


def test_base_models_use_the_plain_format(tiny, tmp_path):
    handle = tiny("llama")
    handle.kind = "base"
    try:
        prompt = build_prompt(handle, "What is rain?", "Be warm.", history=[("Hi", "Hello!")])
    finally:
        handle.kind = "instruct"
    assert prompt == plain_prompt("What is rain?", "Be warm.", [("Hi", "Hello!")])
    assert prompt == "Be warm.\n\nUser: Hi\nAssistant: Hello!\nUser: What is rain?\nAssistant:"


def test_random_models_load_by_name(cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "named"))
    handle = load_model("random:qwen2")
    assert handle.n_layers == 6 and handle.hidden_size == 64 and handle.kind == "instruct"
    assert handle.device.type == "cpu"


def test_gpus_without_native_bfloat16_get_float16(monkeypatch):
    assert default_dtype("cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert default_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert default_dtype("cuda:1") == torch.bfloat16
