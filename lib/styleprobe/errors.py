"""The one base class of the errors a user can cause (bad input, settings or files).

Each such error carries a one-line message; the command line prints it as `styleprobe: error: ...` and exits
with status 2, and the explore app shows it as a status line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import numbers


class StyleprobeError(Exception):
    """Bad input, settings or files; the message is one line that names the culprit."""


class UsageError(StyleprobeError, ValueError):
    """An option, parameter or path given by the user is invalid."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty), for one-line
    errors that wrap another library's multi-line message."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def is_integer(value: object) -> bool:
    """An integer, numpy's included, but not a bool: the check behind every count, index and seed."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
