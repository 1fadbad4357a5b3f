"""The validation predicate: an axis validates only when its held-out accuracy's interval clears the minimum
useful accuracy, so an axis no better than that validates at most 2.5 % of the time at any size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe import stats
from styleprobe.protocol import validity


def _status(accuracy: float, low: float) -> str:
    frame = pd.DataFrame({"pairwise_accuracy": [accuracy], "accuracy_ci_low": [low]}, index=["x"])
    return validity.heldout_status(frame)["x"]


def test_an_interval_above_chance_but_not_above_the_minimum_is_weak():
    assert _status(0.75, 0.55) == "weak"  # high point estimate, but the interval reaches 0.6
    assert _status(0.75, validity.MIN_ACCURACY) == "weak"
    assert _status(0.9, 0.61) == "valid"
    assert _status(0.7, 0.45) == "chance" and _status(np.nan, np.nan) == "chance"


def test_an_axis_at_the_minimum_accuracy_validates_at_most_at_the_one_sided_level():
    rng = np.random.default_rng(3)
    n_sims, level = 1500, 0.025
    gap = np.sqrt(2) * scipy.stats.norm.ppf(validity.MIN_ACCURACY)  # normal poles at AUC 0.6
    for n in (10, 15, 30):
        pos, neg = rng.normal(gap, 1, (n_sims, n)), rng.normal(0, 1, (n_sims, n))
        lows = [stats.pairwise_accuracy_ci(p, q)[0] for p, q in zip(pos, neg, strict=True)]
        accuracy = [stats.pairwise_accuracy(p, q) for p, q in zip(pos, neg, strict=True)]
        frame = pd.DataFrame({"pairwise_accuracy": accuracy, "accuracy_ci_low": lows})
        rate = np.mean(validity.heldout_status(frame) == "valid")
        assert rate <= level + 3 * np.sqrt(level * (1 - level) / n_sims), (n, rate)
