"""How long a test waits for something that must finish (processes, a Ray cluster, a server's reply).

Tests wait on the event itself (a join, a reply, a file); this bound is reached only when something hangs,
so it is generous enough for a machine that other jobs keep busy. `STYLEPROBE_TEST_WAIT` (seconds)
overrides it."""

from __future__ import annotations

import os

WAIT = float(os.environ.get("STYLEPROBE_TEST_WAIT", "1800"))
