import numpy as np
import pytest
from validation_fixtures import synthetic_result

from styleprobe.analyses import ablation
from styleprobe.engine.extraction import Aggregation


def test_configuration_grid_covers_layers_weightings_and_token_aggregations():
    configs = ablation.configurations(30)
    assert len(configs) == (30 + 2 * 5) * 4 >= 150
    names = {c.name for c in configs}
    assert ablation.DEFAULT_NAME in names
    default = next(c for c in configs if c.name == ablation.DEFAULT_NAME)
    assert default.aggregation.decay == Aggregation().decay
    w = np.array(default.aggregation.layer_weights)
    np.testing.assert_allclose(w / w.sum(), Aggregation().layer_weights)  # 1..4 normalised = 0.1..0.4
    assert len(ablation.configurations(3)) == (3 + 2 * 2) * 4  # k = 4, 6, 8 do not fit 3 blocks


def test_the_layer_that_carries_the_signal_ranks_first():
    result = synthetic_result(n_layers=3, signal=4.0)
    n = len(result.records)
    # token aggregations: only "mean" holds the signal; the others are noise
    rng = np.random.default_rng(1)
    states = rng.normal(size=(n, 4, 3, 16)).astype(np.float32)
    states[:, 1] = result.per_layer
    configs = ablation.configurations(3)
    scores = ablation.score_configurations(result.records, states, [0, 1, 2], configs, "synthetic")
    ranking = ablation.rank_configurations(scores)
    assert ranking.iloc[0]["configuration"] == "layer2/single/mean"
    assert ranking["rank"].tolist() == list(range(1, len(configs) + 1))
    with pytest.raises(ValueError, match="do not match"):
        ablation.score_configurations(result.records, states[:, :2], [0, 1, 2], configs, "synthetic")
