"""Random-init models built from a config, for tests, notebook CI runs and GPU benchmarks.

`random:<arch>` (llama, qwen2, qwen3, gemma2, gemma3) names a tiny model with a byte-level tokenizer and a
chat template in that family's style; `random:qwen2-7b` a Qwen2-7B-sized one (for throughput only).
No download is involved: the tokenizer is built from the 256 bytes plus the template's special tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from styleprobe.store import atomic_directory

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


def byte_tokenizer(template: str, eos: str) -> PreTrainedTokenizerFast:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token=eos, pad_token="<pad>", chat_template=template
    )


def random_model(arch: str, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """A random-init (model, tokenizer) of the named architecture, built in memory."""
    if arch not in ARCHS:
        raise ValueError(f"unknown random architecture {arch!r}; choose from {', '.join(ARCHS)}")
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
    torch.manual_seed(seed)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval(), tokenizer


def build_random_model(arch: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-init model and its tokenizer to `out_dir` (atomically) and return it."""
    model, tokenizer = random_model(arch, seed)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir
