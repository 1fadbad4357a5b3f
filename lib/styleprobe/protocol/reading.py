"""How an answer is read: the reading context and thinking mode (the token aggregation is
`styleprobe.engine.extraction.Aggregation`, the engine's own recipe).

The reading context says whether an answer's states are read with the style instruction that produced it
still in the prompt. It has one name everywhere: `context` in the library, the notebooks' parameters, the
results and the paper, `--context` on the command line; its values name the run store's folders too."""

from __future__ import annotations

from typing import Literal

from styleprobe.engine.models import ModelHandle
from styleprobe.errors import UsageError

ReadingContext = Literal["uninstructed", "instructed"]
CONTEXTS: tuple[ReadingContext, ...] = ("uninstructed", "instructed")
# the default: question + answer only, so an axis reads the style of the text, not the instruction, and
# its centre sits in the context baseline answers are read in; "instructed" is the original study's way
DEFAULT_CONTEXT: ReadingContext = "uninstructed"


def check_context(context: str) -> ReadingContext:
    if context not in CONTEXTS:
        raise UsageError(f"unknown reading context {context!r}; choose from {', '.join(CONTEXTS)}")
    return context  # type: ignore[return-value]


def keeps_instruction(context: ReadingContext) -> bool:
    """Whether the states are read with the instruction (the system prompt) in context."""
    return check_context(context) == "instructed"


def other_context(context: ReadingContext) -> ReadingContext:
    return "uninstructed" if check_context(context) == "instructed" else "instructed"


def default_thinking(handle: ModelHandle, thinking: bool | None) -> bool | None:
    """Models with a thinking switch calibrate and answer with thinking off unless told otherwise (their
    think block would otherwise eat the token budget); notebook 06 compares the two modes."""
    if thinking is None and handle.thinking:
        return False
    return thinking
