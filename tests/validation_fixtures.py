"""Synthetic calibration results with a known direction, for the validation modules' tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.pipeline import StageResult

AXES = ("warm_cold", "verbose_concise")


def synthetic_result(
    n_cal: int = 10, n_eval: int = 6, hidden: int = 16, signal: float = 3.0, seed: int = 0, n_layers: int = 1
) -> StageResult:
    """Answers of two axes whose pole separates along basis vector e_i (axis i); noise elsewhere.
    With n_layers > 1 only the last layer carries the signal."""
    rng = np.random.default_rng(seed)
    rows, states = [], []
    for i, axis in enumerate(AXES):
        for split, n in (("calibration", n_cal), ("evaluation", n_eval)):
            for q in range(n):
                for pole in (1, -1):
                    rows.append(
                        {
                            "axis": axis,
                            "pole": pole,
                            "split": split,
                            "q_index": q,
                            "n_measured": 5,
                            "empty": False,
                        }
                    )
                    layer_states = rng.normal(size=(n_layers, hidden))
                    layer_states[-1, i] += signal * pole / 2
                    states.append(layer_states)
    layers = tuple(range(-n_layers, 0))
    aggregation = Aggregation(layers, (1.0,) * n_layers, 0.9)
    return StageResult(pd.DataFrame(rows), np.asarray(states, dtype=np.float32), aggregation)
