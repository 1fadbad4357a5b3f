"""Judge backends: an OpenAI-compatible chat-completions endpoint, or a local transformers chat model.

- `OpenAIJudge`: any OpenAI-compatible endpoint (hosted API, vLLM, llama.cpp server, Ollama). The base URL,
  model and key come from STYLEPROBE_JUDGE_BASE_URL, STYLEPROBE_JUDGE_MODEL and STYLEPROBE_JUDGE_API_KEY
  (OPENAI_API_KEY as a fallback). The key lives only in the HTTP client: it is never part of a cache key, a
  cached file, a description, a result or an error message.
- `LocalJudge`: a chat model loaded with `styleprobe.engine.models.load_model`. By default it fills in the
  JSON answer by log-probability (each value is the most likely of the allowed ones), so even a small model
  gives a valid rating; `scoring="generate"` decodes freely and is parsed like a remote answer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from styleprobe.analyses.judge.core import Form, Judge, JudgeCallError, JudgeError, Message
from styleprobe.engine.chat import build_prompt
from styleprobe.engine.compat import cache_kwargs, new_cache
from styleprobe.engine.generation import SamplingConfig, generate, tokenize_prompts
from styleprobe.engine.models import ModelHandle, load_model

ENV_BASE_URL = "STYLEPROBE_JUDGE_BASE_URL"
ENV_MODEL = "STYLEPROBE_JUDGE_MODEL"
ENV_API_KEY = "STYLEPROBE_JUDGE_API_KEY"
ENV_API_KEY_FALLBACK = "OPENAI_API_KEY"


class OpenAIJudge(Judge):
    """A model behind an OpenAI-compatible chat-completions endpoint.

    Rate limits (429), server errors (5xx), timeouts and dropped connections are retried by the `openai`
    client with exponential backoff (0.5 s doubling, at most 8 s, honouring Retry-After) up to
    `max_retries` times; then the call counts as failed and the answer as missing."""

    kind = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        temperature: float | None = 0.0,
        max_tokens: int | None = 300,
        json_mode: bool = True,
        **kwargs,
    ):
        try:
            import openai
        except ImportError:
            raise JudgeError("the openai backend needs openai: pip install 'styleprobe[judge]'") from None

        model = model or os.environ.get(ENV_MODEL)
        if not model:
            raise JudgeError(f"no judge model: pass one or set {ENV_MODEL}")
        super().__init__(model, **kwargs)
        self.base_url = base_url or os.environ.get(ENV_BASE_URL) or None
        key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get(ENV_API_KEY_FALLBACK)
        self._key = key or "not-needed"  # local servers accept any key; kept only to redact error messages
        self._client = openai.OpenAI(
            api_key=self._key, base_url=self.base_url, timeout=timeout, max_retries=max_retries
        )
        self.call_errors = (openai.OpenAIError, JudgeCallError)
        self.temperature, self.max_tokens, self.json_mode = temperature, max_tokens, json_mode

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def settings(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "json_mode": self.json_mode}

    def _endpoint(self) -> str:
        return self.base_url or "default"

    def _complete(self, messages: list[Message], form: Form) -> str:
        options: dict[str, Any] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        if self.json_mode:
            options["response_format"] = {"type": "json_object"}
        try:
            reply = self._client.chat.completions.create(model=self.model, messages=messages, **options)
        except json.JSONDecodeError:
            raise JudgeCallError("the endpoint's reply is not JSON") from None
        try:
            return reply.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise JudgeCallError("the endpoint replied without a message") from None

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if len(self._key) >= 4 else text


class LocalJudge(Judge):
    """A transformers chat model as the judge (a preset, hub id, directory, or an already loaded handle).

    scoring="logprob" (default) writes the JSON answer itself and lets the model choose each value: the
    allowed value whose tokens have the highest total log-probability after the text so far, so the answer is
    always well-formed. scoring="generate" decodes greedily and parses the reply like a remote one."""

    kind = "local"

    def __init__(
        self,
        model: str | ModelHandle,
        *,
        scoring: str = "logprob",
        max_new_tokens: int = 200,
        device: str | None = None,
        **kwargs,
    ):
        if scoring not in ("logprob", "generate"):
            raise JudgeError(f"unknown scoring {scoring!r}; choose logprob or generate")
        self.handle = model if isinstance(model, ModelHandle) else load_model(model, device=device)
        super().__init__(self.handle.model_id, **kwargs)
        self.scoring, self.max_new_tokens = scoring, max_new_tokens
        self._cache = PrefixCache(self.handle)

    @property
    def settings(self) -> dict:
        return {
            "scoring": self.scoring,
            **({"max_new_tokens": self.max_new_tokens} if self.scoring == "generate" else {}),
        }

    def _prompt(self, messages: list[Message]) -> str:
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        turns = [m["content"] for m in messages[1 if system else 0 :]]
        history = tuple(zip(turns[:-1:2], turns[1:-1:2], strict=True))
        return build_prompt(self.handle, turns[-1], system, history)

    def _complete(self, messages: list[Message], form: Form) -> str:
        prompt_ids = tokenize_prompts(self.handle, [self._prompt(messages)])
        if self.scoring == "generate":
            gens, _ = generate(self.handle, prompt_ids, SamplingConfig(self.max_new_tokens, greedy=True), [0])
            return gens[0].text
        return self._fill(prompt_ids[0], form)

    @torch.no_grad()
    def _fill(self, prompt_ids: list[int], form: Form) -> str:
        """Write the JSON object of `form`, choosing each value by log-probability."""

        def tokens(text: str) -> list[int]:
            return self.handle.tokenizer(text, add_special_tokens=False)["input_ids"]

        def scores(logp: torch.Tensor, options: dict[int, list[int]]) -> dict[int, float]:
            """Total log-probability of each option's tokens, walking their prefix tree: one forward pass
            per shared prefix, after which the cache is rolled back."""
            out, branches = {}, {}
            for k, ids in options.items():
                if len(ids) == 1:
                    out[k] = float(logp[ids[0]])
                else:
                    branches.setdefault(ids[0], {})[k] = ids[1:]
            for first, rest in branches.items():
                below = scores(self._cache.feed([first], 1)[-1], rest)
                self._cache.rollback(1)
                out.update({k: float(logp[first]) + v for k, v in below.items()})
            return out

        text, pending = "", self._cache.reuse(prompt_ids)
        for i, (key, allowed) in enumerate(form):
            head = ("{" if i == 0 else ", ") + json.dumps(key) + ":"
            logp = self._cache.feed(pending + tokens(head), 1)[-1]
            score = scores(logp, {k: tokens(" " + json.dumps(v)) for k, v in enumerate(allowed)})
            best = json.dumps(allowed[max(score, key=score.__getitem__)])
            text += f"{head} {best}"
            pending = tokens(" " + best)
        return text + "}"


class PrefixCache:
    """A KV cache kept between calls: a new prompt re-uses the longest prefix it shares with what the cache
    holds (the system prompt and rubrics of every rating), so only the rest is computed."""

    def __init__(self, handle: ModelHandle):
        self.handle = handle
        self.ids: list[int] = []
        self.cache = self._new()

    def _new(self):
        self.ids = []
        return new_cache(self.handle.model)

    def feed(self, ids: list[int], keep: int) -> torch.Tensor:
        """Extend the cache by `ids`; log-probabilities of the next token at the last `keep` positions."""
        x = torch.tensor([ids], device=self.handle.device)
        model = self.handle.model
        out = model(input_ids=x, logits_to_keep=keep, **cache_kwargs(model, self.cache))
        self.ids += ids
        return out.logits[0, -keep:].float().log_softmax(-1)

    def rollback(self, n: int) -> None:
        """Forget the last `n` tokens (a negative crop removes tokens, in transformers 4 and 5)."""
        if n:
            self.cache.crop(-n)
            del self.ids[-n:]

    def reuse(self, prompt_ids: list[int]) -> list[int]:
        """Keep the longest cached prefix of `prompt_ids` (at least its last token is left to feed) and
        return the ids still to feed."""
        shared = 0
        for a, b in zip(self.ids, prompt_ids[:-1], strict=False):
            if a != b:
                break
            shared += 1
        try:
            self.rollback(len(self.ids) - shared)
        except (ValueError, RuntimeError):  # a cache that cannot roll back (sliding window) starts afresh
            self.cache, shared = self._new(), 0
        return prompt_ids[shared:]


def make_judge(backend: str, model: str | ModelHandle | None = None, **kwargs) -> Judge:
    """A judge by backend: "local" (preset, hub id, directory or loaded handle) or "openai" (env settings);
    `kwargs` go to the backend and `Judge` (`protocol` is required)."""
    if backend == "local":
        if model is None:
            raise JudgeError("the local judge needs a model (preset, hub id, directory or loaded handle)")
        return LocalJudge(model, **kwargs)
    if backend == "openai":
        return OpenAIJudge(model if isinstance(model, str) else None, **kwargs)
    raise JudgeError(f"unknown judge backend {backend!r}; choose local or openai")
