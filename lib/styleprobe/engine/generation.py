"""Batched, left-padded, seeded generation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from styleprobe.engine.chat import PLAIN_USER, adds_special_tokens
from styleprobe.engine.compat import cache_kwargs, new_cache
from styleprobe.engine.extraction import check_finite, measure_mask
from styleprobe.engine.hooks import block_hooks, pad_batch
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.sampling import sample, sample_full


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int
    temperature: float = 0.7
    top_p: float = 0.9
    greedy: bool = False


@dataclass
class Generation:
    prompt_ids: list[int]
    response_ids: list[int]  # the reply's tokens, without the end-of-turn token and padding
    text: str
    finished: bool  # ended on an end-of-turn token rather than the token budget
    empty: bool  # no visible text is measured (`is_empty`)


def is_empty(handle: ModelHandle, response_ids: list[int]) -> bool:
    """Whether the measured part of an answer (`measure_mask`: all of it, or what follows `</think>`) has
    no visible text: nothing, whitespace or special tokens only, or a think block that never closed."""
    measured = [t for t, m in zip(response_ids, measure_mask(handle, 0, response_ids), strict=True) if m]
    return not handle.tokenizer.decode(measured, skip_special_tokens=True).strip()


def tokenize_prompts(handle: ModelHandle, prompts: list[str]) -> list[list[int]]:
    enc = handle.tokenizer(prompts, add_special_tokens=adds_special_tokens(handle))
    return [list(ids) for ids in enc["input_ids"]]


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


class _Steering:
    """Per-row vectors added to the outputs of some decoder blocks while decoding: row r of the batch gets
    `offsets[r]` ([rows, hidden]: at every block; [rows, n_blocks, hidden]: `offsets[r, j]` at the j-th
    block) at every position. `select` follows the rows as finished ones are dropped."""

    def __init__(self, handle: ModelHandle, blocks: list[int], offsets: np.ndarray | torch.Tensor):
        add = torch.as_tensor(offsets, device=handle.device).to(handle.model.dtype)
        self.add = add[:, None, None, :] if add.ndim == 2 else add[:, :, None, :]  # [rows, 1|blocks, 1, h]
        self.fns = [(i, self._adder(min(j, self.add.shape[1] - 1))) for j, i in enumerate(blocks)]

    def _adder(self, j: int):
        return lambda hidden: hidden + self.add[:, j]

    def select(self, keep: torch.Tensor) -> None:
        self.add = self.add[keep]


class _Capture:
    """Running decay-weighted sums of block outputs at response tokens, updated by forward hooks while
    decoding, so reading the states costs no second pass. Token j of the response is read when it is fed
    back as input, i.e. in the decoding step after it was sampled."""

    def __init__(self, handle: ModelHandle, layers: list[int], decay: float, rows: int):
        dev = handle.device
        self.decay = decay
        self.sums = torch.zeros(rows, len(layers), handle.hidden_size, device=dev)
        self.norm = torch.zeros(rows, device=dev)
        self.counting = torch.zeros(rows, dtype=torch.bool, device=dev)
        self.active = False  # off during the prefill, which sees only the prompt
        self.fns = [(i, self._reader(j)) for j, i in enumerate(layers)]  # (block, fn) for block_hooks

    def _reader(self, slot: int):
        def fn(hidden: torch.Tensor) -> None:
            h = hidden[:, -1].float()
            if self.active:
                new = self.decay * self.sums[:, slot] + h
                self.sums[:, slot] = torch.where(self.counting[:, None], new, self.sums[:, slot])

        return fn

    def step_done(self) -> None:
        self.norm = torch.where(self.counting, self.decay * self.norm + 1.0, self.norm)

    def select(self, keep: torch.Tensor) -> None:
        self.sums, self.norm, self.counting = self.sums[keep], self.norm[keep], self.counting[keep]

    def means(self) -> torch.Tensor:
        return self.sums / self.norm.clamp(min=1e-30)[:, None, None]


@torch.inference_mode()
def generate(
    handle: ModelHandle,
    prompt_ids: list[list[int]],
    cfg: SamplingConfig,
    keys: list[int],
    *,
    capture: tuple[list[int], float] | None = None,
    steer: tuple[list[int], np.ndarray] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[list[Generation], np.ndarray | None]:
    """Decode one batch with a KV cache, dropping finished rows from the batch as they accumulate.

    `keys` seed each row's sampling (see `styleprobe.engine.sampling`). With `capture=(layers, decay)` the
    residual stream after those blocks is aggregated on the fly and returned as [rows, layers, hidden]
    (float32), equal to a teacher-forced re-read of the same response with the same context. With
    `steer=(blocks, offsets)` row r decodes with `offsets[r]` ([rows, hidden], or [rows, n_blocks, hidden]
    for a vector per block) added to the output of each of those blocks (absolute indices), so differently
    steered answers share one batch; captured states are read after the steering. `on_step` is called after
    each decoding step with the number of steps done (progress: a batch takes at most `cfg.max_new_tokens`
    steps, fewer when every row ends early)."""
    model, dev = handle.model, handle.device
    rows = len(prompt_ids)
    ids, mask = pad_batch(prompt_ids, handle.tokenizer.pad_token_id, "left", dev)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    keys_t = torch.tensor(keys, dtype=torch.long, device=dev)
    eot = torch.tensor(handle.end_of_turn_ids, device=dev)
    tokens = torch.full((rows, cfg.max_new_tokens), -1, dtype=torch.long, device=dev)
    live = torch.arange(rows, device=dev)  # original row of each row still in the batch
    alive = torch.ones(rows, dtype=torch.bool, device=dev)  # has not yet emitted an end-of-turn token
    cap = _Capture(handle, capture[0], capture[1], rows) if capture else None
    captured = torch.zeros(rows, len(capture[0]), handle.hidden_size, device=dev) if capture else None
    steering = _Steering(handle, steer[0], steer[1]) if steer else None
    cache = new_cache(model, capacity=ids.shape[1] + cfg.max_new_tokens)
    with block_hooks(handle, [*(steering.fns if steering else ()), *(cap.fns if cap else ())]):
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            logits_to_keep=1,
            **cache_kwargs(model, cache),
        )
        next_pos = pos[:, -1:] + 1
        for step in range(cfg.max_new_tokens):
            logits = out.logits[:, -1]
            if cfg.greedy:
                nxt, overflow = logits.argmax(-1), torch.zeros_like(alive)
            else:
                nxt, overflow = sample(logits, keys_t[live], step, cfg.temperature, cfg.top_p)
            n_overflow, n_dead = torch.stack([overflow.sum(), (~alive).sum()]).tolist()  # the one sync a step
            if n_dead == len(live):
                break
            if n_overflow:
                nxt[overflow] = sample_full(
                    logits[overflow], keys_t[live][overflow], step, cfg.temperature, cfg.top_p
                )
            if n_dead * 4 >= len(live):  # drop finished rows once they make up a quarter of the batch
                if cap:
                    captured[live[~alive]] = cap.means()[~alive]
                    cap.select(alive)
                keep = alive.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                if steering:
                    steering.select(keep)
                live, nxt, mask, next_pos, alive = (
                    live[keep],
                    nxt[keep],
                    mask[keep],
                    next_pos[keep],
                    alive[keep],
                )
            tokens[live, step] = torch.where(alive, nxt, -1)
            alive = alive & ~torch.isin(nxt, eot)
            if step == cfg.max_new_tokens - 1 and not cap:
                break  # with capture, one more pass reads the last token of answers that hit the budget
            if cap:
                cap.active, cap.counting = True, alive
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=next_pos,
                logits_to_keep=1,
                **cache_kwargs(model, cache),
            )
            next_pos = next_pos + 1
            if cap:
                cap.step_done()
            if on_step:
                on_step(step + 1)
        if cap:
            captured[live] = cap.means()
            check_finite(captured, capture[0])
    results = []
    for prompt, row in zip(prompt_ids, tokens.tolist(), strict=True):
        resp, finished = _cut(handle, [t for t in row if t >= 0])
        text = handle.tokenizer.decode(resp, skip_special_tokens=True)
        results.append(Generation(list(prompt), resp, text, finished, is_empty(handle, resp)))
    return results, (captured.cpu().numpy() if captured is not None else None)


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
        import psutil  # not needed on a GPU, where the engine runs with torch and transformers alone

        free = psutil.virtual_memory().available
    per_seq = max_tokens * (
        kv_bytes_per_token(handle) + 16 * handle.hidden_size * handle.model.dtype.itemsize
    )
    return int(max(1, min(cap, free // 3 // max(per_seq, 1))))
