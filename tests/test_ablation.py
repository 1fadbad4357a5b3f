import numpy as np
import pandas as pd
import pytest
from validation_fixtures import AXES, synthetic_result

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


def _planted(signal: float = 4.0, seed: int = 1):
    """Records and ablation states [n, tokens, 3 blocks, hidden] of 20 calibration and 10 evaluation
    questions per axis: only the last block read with mean pooling carries the style."""
    result = synthetic_result(n_cal=20, n_eval=10, n_layers=3, signal=signal)
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(len(result.records), 4, 3, 16)).astype(np.float32)
    states[:, list(ablation.TOKEN_AGGREGATIONS).index("mean")] = result.per_layer
    return result.records, states


def test_the_nested_choice_is_made_on_calibration_folds_and_scored_on_the_evaluation_answers():
    """Each axis's configuration is chosen on calibration folds: it reads the planted block with mean
    pooling, and its held-out accuracy lies in its interval. Evaluation answers choose nothing: replaced by
    noise, they leave every choice and nested estimate as it was and only the held-out accuracy falls."""
    records, states = _planted()
    configs = ablation.configurations(3)
    table = ablation.nested_choice(records, states, [0, 1, 2], configs, "synthetic")
    assert list(table.index) == list(AXES)
    assert all(c.startswith(("layer2/", "last2/")) and c.endswith("/mean") for c in table["configuration"])
    assert (table["pairwise_accuracy"] > 0.9).all() and (table["nested_accuracy"] > 0.8).all()
    assert (table["accuracy_ci_low"] <= table["pairwise_accuracy"]).all()
    assert (table["pairwise_accuracy"] <= table["accuracy_ci_high"]).all()
    assert table["default_accuracy"].isna().all()  # the default reads 4 blocks: 3 blocks have none
    evaluation = (records["split"] == "evaluation").to_numpy()
    noise = states.copy()
    noise[evaluation] = np.random.default_rng(9).normal(size=noise[evaluation].shape)
    again = ablation.nested_choice(records, noise, [0, 1, 2], configs, "synthetic")
    assert list(again["configuration"]) == list(table["configuration"])
    np.testing.assert_array_equal(again["nested_accuracy"], table["nested_accuracy"])
    assert (again["pairwise_accuracy"] < 0.8).all()


def _ranking(order: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"rank": range(1, len(order) + 1), "configuration": order, "dprime": [1.0, 0.5, 0.0][: len(order)]}
    ).assign(pairwise_accuracy=0.7)


def test_mean_ranks_average_each_configuration_over_models_best_first():
    default = ablation.DEFAULT_NAME
    table = ablation.mean_ranks({"m1": _ranking(["x", default, "y"]), "m2": _ranking([default, "y", "x"])})
    assert list(table.columns) == ["m1", "m2", "mean_rank"]
    assert table.index[0] == default and table.loc[default, "mean_rank"] == 1.5
    assert table.loc["y", "mean_rank"] == 2.5 and table.loc["x", "mean_rank"] == 2.0


def test_config_ablation_paper_reads_the_default_and_the_best_from_the_ranking():
    ranking = _ranking(["layer0/single/last", ablation.DEFAULT_NAME, "y"])
    result = ablation.ConfigAblationResult(3, ablation.DEFAULT_NAME, 2, 2.0, ranking)
    assert result.paper() == {
        "n_configurations": 3,
        "default_rank": 2,
        "default_dprime": 0.5,
        "best_configuration": "layer0/single/last",
        "best_dprime": 1.0,
    }
    table = result.paper_tables()["ablation_table"].frame
    assert (
        list(table.columns) == ["rank", "dprime", "pairwise_accuracy"] and table.index.name == "configuration"
    )
    assert ablation.ConfigAblationResult.from_dict(result.to_dict()).paper() == result.paper()
