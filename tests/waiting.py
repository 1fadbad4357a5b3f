"""How long a test waits for something that must finish (processes, a Ray cluster, a server's reply), and
how many threads a real-model test may take.

Tests wait on the event itself (a join, a reply, a file); this bound is reached only when something hangs,
so it is generous enough for a machine that other jobs keep busy. `STYLEPROBE_TEST_WAIT` (seconds)
overrides it."""

from __future__ import annotations

import os

WAIT = float(os.environ.get("STYLEPROBE_TEST_WAIT", "1800"))

# The CPU cores a test process may use: under pytest-xdist the workers share the machine, and torch threads
# beyond a worker's share spin against each other (a 100-second test took 700 at 3 threads on 2 cores).
CPU_THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
