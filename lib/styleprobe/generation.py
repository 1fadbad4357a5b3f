"""Batched, left-padded, seeded generation."""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch

from styleprobe.chat import PLAIN_USER, adds_special_tokens
from styleprobe.models import ModelHandle


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int
    temperature: float = 0.7
    top_p: float = 0.9
    greedy: bool = False

    def generate_kwargs(self) -> dict:
        if self.greedy:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}


@dataclass
class Generation:
    prompt_ids: list[int]
    response_ids: list[int]  # the reply's tokens, without the end-of-turn token and padding
    text: str
    finished: bool  # ended on an end-of-turn token rather than the token budget

    @property
    def empty(self) -> bool:
        return not self.text.strip()


def tokenize_prompts(handle: ModelHandle, prompts: list[str]) -> list[list[int]]:
    enc = handle.tokenizer(prompts, add_special_tokens=adds_special_tokens(handle))
    return [list(ids) for ids in enc["input_ids"]]


def left_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if s:
            ids[row, width - len(s) :] = torch.tensor(s)
            mask[row, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def _cut(handle: ModelHandle, ids: list[int]) -> tuple[list[int], bool]:
    """Response ids up to the first end-of-turn token; base models stop where they start a new user turn."""
    eot = set(handle.end_of_turn_ids)
    end = next((i for i, t in enumerate(ids) if t in eot), None)
    ids, finished = (ids, False) if end is None else (ids[:end], True)
    if handle.uses_chat_template:
        return ids, finished
    text = handle.tokenizer.decode(ids, skip_special_tokens=True)
    stop = text.find("\n" + PLAIN_USER.strip())
    if stop < 0:
        return ids, finished
    return handle.tokenizer(text[:stop].rstrip(), add_special_tokens=False)["input_ids"], True


@torch.inference_mode()
def generate(
    handle: ModelHandle, prompt_ids: list[list[int]], cfg: SamplingConfig, seed: int
) -> list[Generation]:
    """Generate one batch. The same prompts, settings and seed reproduce the same responses."""
    tok = handle.tokenizer
    ids, mask = left_pad(prompt_ids, tok.pad_token_id, handle.device)
    torch.manual_seed(seed)
    out = handle.model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=cfg.max_new_tokens,
        eos_token_id=handle.end_of_turn_ids,
        pad_token_id=tok.pad_token_id,
        **cfg.generate_kwargs(),
    )
    new = out[:, ids.shape[1] :].tolist()
    results = []
    for prompt, row in zip(prompt_ids, new, strict=True):
        resp, finished = _cut(handle, row)
        text = tok.decode(resp, skip_special_tokens=True)
        results.append(Generation(list(prompt), resp, text, finished))
    return results


def kv_bytes_per_token(handle: ModelHandle) -> int:
    cfg = handle.model.config.get_text_config()
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * handle.n_layers * heads * head_dim * handle.model.dtype.itemsize


def auto_batch_size(handle: ModelHandle, max_tokens: int, cap: int = 128) -> int:
    """The largest batch whose KV cache and activations fit in a third of the free memory."""
    if handle.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(handle.device)
    else:
        free = psutil.virtual_memory().available
    per_seq = max_tokens * (
        kv_bytes_per_token(handle) + 16 * handle.hidden_size * handle.model.dtype.itemsize
    )
    return int(max(1, min(cap, free // 3 // max(per_seq, 1))))
