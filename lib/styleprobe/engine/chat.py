"""Turn (system prompt, history, user message) into the model's prompt text.

Chat models use their own chat template. When a template rejects the system role (Gemma 2), the instruction
is merged into the first user turn. Base models, which have no template, get the plain format:

    <instruction>            (only when there is one)

    User: <message>
    Assistant: <reply>
    ...
    User: <message>
    Assistant:
"""

from __future__ import annotations

from collections.abc import Sequence

from styleprobe.engine.models import ModelHandle

PLAIN_USER = "User: "
PLAIN_ASSISTANT = "Assistant:"


def _messages(question: str, system: str | None, history: Sequence[tuple[str, str]], merge_system: bool):
    msgs = []
    for user, reply in history:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    msgs.append({"role": "user", "content": question})
    if system and merge_system:
        msgs[0] = {"role": "user", "content": f"{system}\n\n{msgs[0]['content']}"}
    elif system:
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def plain_prompt(question: str, system: str | None = None, history: Sequence[tuple[str, str]] = ()) -> str:
    """The documented prompt format for base models without a chat template."""
    parts = [f"{system}\n"] if system else []
    for user, reply in history:
        parts.append(f"{PLAIN_USER}{user}\n{PLAIN_ASSISTANT} {reply}")
    parts.append(f"{PLAIN_USER}{question}\n{PLAIN_ASSISTANT}")
    return "\n".join(parts)


def build_prompt(
    handle: ModelHandle,
    question: str,
    system: str | None = None,
    history: Sequence[tuple[str, str]] = (),
    *,
    thinking: bool | None = None,
) -> str:
    """Prompt text ending where the assistant's reply begins. `thinking` sets Qwen3's `enable_thinking`."""
    if not handle.uses_chat_template:
        return plain_prompt(question, system, history)
    extra = {} if thinking is None else {"enable_thinking": thinking}
    template = handle.tokenizer.apply_chat_template
    if handle.system_role or not system:
        try:
            msgs = _messages(question, system, history, merge_system=False)
            return template(msgs, tokenize=False, add_generation_prompt=True, **extra)
        except Exception as err:  # jinja raises a plain TemplateError for "system role not supported"
            if not system or "system" not in str(err).lower():
                raise
    msgs = _messages(question, system, history, merge_system=True)
    return template(msgs, tokenize=False, add_generation_prompt=True, **extra)


def adds_special_tokens(handle: ModelHandle) -> bool:
    """Chat templates write their own BOS; the plain format lets the tokenizer add it."""
    return not handle.uses_chat_template
