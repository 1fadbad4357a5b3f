"""Tiny random-init models for tests and the smoke profile (also GPU benchmarks); not for real use.

Importing this module registers the model source `random:` with `styleprobe.engine.models.register_source`,
so `load_model("random:<arch>")` builds the model once into the user cache and loads it. Production code
never imports it unasked; what does:

- tests: `tests/conftest.py` imports it;
- notebooks: `protocol.profiles.get_profile` imports it for the `smoke` profile (and `smoke+...` variants);
- the CLI: `styleprobe ... --model random:<arch>` imports it when `--profile smoke` is given or the
  environment sets `STYLEPROBE_TEST_MODELS=1` (tests that run the CLI in a subprocess set one of them);
  `styleprobe reproduce` imports it for `THINKING_ARCHS`.

Without it, `load_model("random:...")` fails in one line saying so.

`random:<arch>` (llama, qwen2, qwen3, gemma2, gemma3) names a tiny model with a byte-level tokenizer and a
chat template in that family's style; `random:gemma3-base` one with no chat template (a base model, so the
plain prompt format is used); `random:qwen2-7b` a Qwen2-7B-sized one (for throughput only).
No download is involved: the tokenizer is built from the 256 bytes plus the template's special tokens.

The tiny qwen3 model thinks like Qwen3 does (see `ForcedThinking`): with thinking on it opens a think block
and closes it after a number of tokens that depends on the prompt, so some answers never leave it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from styleprobe.engine.compat import DTYPE_KEYWORD
from styleprobe.engine.models import ModelHandle, ModelLoadError, cache_dir, load_model, register_source
from styleprobe.engine.store import build_once

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
THINKING = CHATML.replace(  # Qwen3: enable_thinking=False writes an empty think block
    "{% endif %}",
    "{% if enable_thinking is defined and not enable_thinking %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}",
)
GEMMA = (
    "{{ bos_token }}{% if messages[0].role == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n"
    "{{ m.content }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
SPECIALS = [
    "<pad>",
    "<bos>",
    "<eos>",
    "<|im_start|>",
    "<|im_end|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<think>",
    "</think>",
]

_TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 4096,
}
ARCHS = {
    "llama": ("LlamaConfig", CHATML, "<|im_end|>", _TINY),
    "qwen2": ("Qwen2Config", CHATML, "<|im_end|>", _TINY),
    "qwen3": ("Qwen3Config", THINKING, "<|im_end|>", _TINY),
    "gemma2": ("Gemma2Config", GEMMA, "<end_of_turn>", _TINY),
    "gemma3": ("Gemma3TextConfig", GEMMA, "<end_of_turn>", _TINY),
    "gemma3-base": ("Gemma3TextConfig", None, "<eos>", _TINY),
    "llama-135m": (  # SmolLM2-135M's shape: the GPU check's small model
        "LlamaConfig",
        CHATML,
        "<|im_end|>",
        {
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "max_position_embeddings": 8192,
            "rope_theta": 1e5,
        },
    ),
    "qwen2-7b": (
        "Qwen2Config",
        CHATML,
        "<|im_end|>",
        {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 32768,
            "rope_theta": 1e6,
        },
    ),
}


# Think lengths of the tiny qwen3 model: from THINK_LENGTHS[0] to THINK_LENGTHS[1] - 1 tokens, by prompt.
THINK_LENGTHS = (2, 32)
THINKING_ARCHS = ("qwen3",)


def byte_tokenizer(template: str | None, eos: str) -> PreTrainedTokenizerFast:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token=eos, pad_token="<pad>", chat_template=template
    )


def check_arch(arch: str) -> None:
    """Refuse an architecture `random:<arch>` does not know, in one line listing the known ones."""
    if arch not in ARCHS:
        raise ModelLoadError(
            f"unknown random architecture {arch!r}: use random:<arch> with {', '.join(ARCHS)}"
        )


def random_model(arch: str, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """A random-init (model, tokenizer) of the named architecture, built in memory."""
    check_arch(arch)
    config_name, template, eos, sizes = ARCHS[arch]
    tokenizer = byte_tokenizer(template, eos)
    config = getattr(transformers, config_name)(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        **sizes,
    )
    if arch in THINKING_ARCHS:
        config.toy_think_lengths = list(THINK_LENGTHS)  # saved with the model; read by attach_toy_behaviour
    torch.manual_seed(seed)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, **{DTYPE_KEYWORD: dtype})
    return model.eval(), tokenizer


def build_random_model(arch: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-init model and its tokenizer to `out_dir` (atomically) unless it is there, and return
    it. Concurrent callers wait on the lock `<out_dir>.lock` and find it built, so it is built once."""
    check_arch(arch)  # before any folder or lock is made

    def build(tmp: Path) -> None:
        model, tokenizer = random_model(arch, seed)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return build_once(Path(out_dir), build)


class ForcedThinking:
    """Makes a random-init model write a think block the way Qwen3 does, for testing the thinking path.

    When the prompt leaves the think block to the model (it holds no `</think>`, i.e. thinking is on), the
    first generated token is `<think>` and token number L is `</think>`, with L between `lengths[0]` and
    `lengths[1] - 1` set by the prompt's length; other tokens are the model's own, never a think tag. An
    answer whose budget ends before L never reaches a visible answer. Only the causal LM's logits are
    changed, so teacher-forced reads of the decoder are untouched. The rule needs no per-row memory: the
    step and each row's prompt length follow from the attention mask, so it survives rows being dropped
    from the batch."""

    def __init__(self, model, open_id: int, close_id: int, lengths: tuple[int, int] = THINK_LENGTHS):
        self.open_id, self.close_id, self.lengths = open_id, close_id, lengths
        self.thinking, self.prompt_width = False, 0
        self.handle = model.register_forward_hook(self._hook, with_kwargs=True)

    def close_step(self, prompt_len: torch.Tensor) -> torch.Tensor:
        low, high = self.lengths
        return low + (prompt_len * 7919) % (high - low)

    def _hook(self, _module, _args, kwargs, output):
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if ids is None or mask is None or getattr(output, "logits", None) is None:
            return
        logits = output.logits[:, -1]
        if ids.shape[1] > 1:  # the prefill: is the think block left to the model?
            self.thinking = not bool((ids == self.close_id).any())
            self.prompt_width = ids.shape[1]
            if self.thinking:
                logits[:] = -1e4
                logits[:, self.open_id] = 0.0
            return
        if not self.thinking:
            return
        step = mask.shape[1] - self.prompt_width  # tokens generated so far; this call picks token `step`
        close = self.close_step(mask.sum(-1) - step) == step
        logits[:, [self.open_id, self.close_id]] = -1e4
        logits[close] = -1e4
        logits[close, self.close_id] = 0.0


def attach_toy_behaviour(model, tokenizer) -> None:
    """Re-attach what a saved random-init model does beyond its weights (the qwen3 think block)."""
    lengths = getattr(model.config, "toy_think_lengths", None)
    if lengths:
        vocab = tokenizer.get_vocab()
        ForcedThinking(model, vocab["<think>"], vocab["</think>"], tuple(lengths))


def load_random_model(arch: str, folder: Path | str | None = None, **load_kwargs) -> ModelHandle:
    """Build the random-init model `arch` once into `folder` (default:
    `<cache>/models/transformers<major>/random-<arch>`) and load it with `load_model(folder, **load_kwargs)`,
    with its toy behaviour attached; in float32 unless another dtype is asked for, so that its numbers do
    not depend on the machine's bf16 support or thread count. An unknown `arch` raises a one-line
    ModelLoadError listing the known ones."""
    load_kwargs["dtype"] = load_kwargs.get("dtype") or torch.float32
    major = transformers.__version__.split(".")[0]  # each major release saves tokenizers its own way
    default = cache_dir() / "models" / f"transformers{major}" / f"random-{arch}"  # the name is the slug
    path = build_random_model(arch, Path(folder) if folder else default)
    handle = load_model(str(path), **load_kwargs)
    attach_toy_behaviour(handle.model, handle.tokenizer)
    return handle


register_source("random:", load_random_model)
