"""Notebook 07's comparison of normalisations on synthetic answers with a known geometry."""

import numpy as np
import pandas as pd
import pytest
from reloading import assert_paper_survives_reload
from test_base_instruct import planted_calibration

from styleprobe.analyses import normalisations
from styleprobe.engine.pipeline import StageResult


def _baseline(cal, n=12, seed=0):
    rng = np.random.default_rng(seed)
    states = rng.normal(scale=0.3, size=(n, 1, cal.result.per_layer.shape[-1])).astype(np.float32)
    records = pd.DataFrame({"q_index": range(n), "n_measured": 5, "n_tokens": 5, "empty": False})
    return {0: StageResult(records, np.repeat(states, 4, axis=1), cal.result.aggregation)}


def test_every_normalisation_is_compared_on_the_same_directions(tmp_path):
    cal = planted_calibration(flip_evaluation="none", n_cal=20, n_eval=10)
    result = normalisations.run(cal, _baseline(cal), "planted")
    summary = result.summary()
    assert list(summary.index) == ["crossfit", "median_iqr", "uncentred_iqr"]
    # crossfit: held-out pole means land near ±1 (the unit's definition, measured on new answers)
    assert summary.loc["crossfit", "heldout_half"] == pytest.approx(1.0, abs=0.2)
    # in-sample IQR units: the poles' half separation is far from 1 and the same in and out of sample here
    assert summary.loc["median_iqr", "heldout_half"] < 1.0
    for name in ("median_iqr", "uncentred_iqr"):
        axes = normalisations.renormalised(cal, name)
        np.testing.assert_allclose(axes.vectors, cal.axes.vectors)
        assert axes.normalisation == name and axes.clips
    assert result.table["position"].notna().all()
    assert_paper_survives_reload(result, tmp_path)
