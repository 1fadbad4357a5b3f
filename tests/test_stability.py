from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from validation_fixtures import AXES, synthetic_result

from styleprobe.analyses import stability
from styleprobe.protocol.calibration import fit_from_result


def _fit(result):
    return fit_from_result(result, "synthetic", layers=[0])[0]


def test_set_cosines_are_near_one_for_independent_samples_of_one_direction():
    sets = {s: _fit(synthetic_result(seed=k, signal=6.0)) for k, s in enumerate("ABC")}
    table = stability.set_cosines(sets)
    assert list(table.columns) == ["A~B", "A~C", "B~C", "mean"]
    assert (table["mean"] > 0.8).all()
    weak = {s: _fit(synthetic_result(seed=k, signal=0.0)) for k, s in enumerate("AB")}
    assert (stability.set_cosines(weak)["mean"].abs() < 0.8).all()  # pure noise: no shared direction
    with pytest.raises(ValueError, match="at least two"):
        stability.set_cosines({"A": sets["A"]})


def test_projection_agreement_is_pearson_per_axis_and_skips_constant_columns():
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 1.0, 1.0, 1.0]})
    y = pd.DataFrame({"a": [2.0, 4.0, 6.0, 8.5], "b": [0.0, 1.0, 2.0, 3.0]})
    table = stability.projection_agreement({"A": x, "B": y})
    assert table.loc["a", "A~B"] == pytest.approx(np.corrcoef(x["a"], y["a"])[0, 1])
    assert np.isnan(table.loc["b", "A~B"])


def test_convergence_reaches_the_full_axis_and_never_uses_evaluation_answers():
    result = synthetic_result(n_cal=10, signal=4.0)
    full = _fit(result)
    conv = stability.convergence(result, full, (2, 5, 30), n_repeats=4)
    assert sorted(conv["n"].unique()) == [2, 5, 10]  # 30 does not fit; the full set is always the last size
    assert len(conv) == (4 + 4 + 1) * len(AXES)
    last = conv[conv["n"] == 10]
    np.testing.assert_allclose(last["cosine"], 1.0, atol=1e-6)
    means = conv.groupby("n")["cosine"].mean()
    assert means[2] < means[5] < means[10]  # more questions, closer to the full axis
    # other evaluation answers leave every subset's axis as it was and change only its held-out score
    ev = (result.records["split"] == "evaluation").to_numpy()
    states = result.per_layer.copy()
    states[ev] = np.random.default_rng(1).normal(size=states[ev].shape)
    other = stability.convergence(replace(result, per_layer=states), full, (2, 5, 30), n_repeats=4)
    np.testing.assert_array_equal(other["cosine"], conv["cosine"])
    assert not np.allclose(other["pairwise_accuracy"], conv["pairwise_accuracy"])


def test_baseline_snr():
    m = np.array([[0.0, 0.2], [1.0, 1.2], [2.0, 2.2]])  # question means 0.1, 1.1, 2.1 (std 1); seed std √0.02
    assert stability.baseline_snr(m) == pytest.approx(1 / np.sqrt(0.02))
    with pytest.raises(ValueError, match="questions x seeds"):
        stability.baseline_snr([1.0, 2.0])


def test_baseline_retest_takes_the_stored_icc_and_adds_the_snr_of_finite_questions():
    icc = pd.DataFrame({"icc": [0.5, 0.7], "ci_low": [0.1, 0.2], "ci_high": [0.8, 0.9]}, index=["b", "a"])
    projections = {
        0: np.array([[0.0, 1.0], [1.0, 2.0], [2.0, np.nan]]),
        1: np.array([[0.2, 1.5], [1.2, 2.5], [2.2, 9.0]]),
    }
    table = stability.baseline_retest(icc, projections, ["a", "b"])
    assert list(table.index) == ["a", "b"] and table.index.name == "axis"
    assert list(table.columns) == ["baseline_icc", "ci_low", "ci_high", "snr"]
    assert table.loc["a", "baseline_icc"] == 0.7 and table.loc["b", "ci_high"] == 0.8
    assert table.loc["a", "snr"] == pytest.approx(1 / np.sqrt(0.02))
    # the third question of axis b has no finite projection in seed 0: it is left out
    expected = stability.baseline_snr([[1.0, 1.5], [2.0, 2.5]])
    assert table.loc["b", "snr"] == pytest.approx(expected)
    one_seed = stability.baseline_retest(pd.DataFrame(), {0: projections[0]}, ["a", "b"])
    assert one_seed.isna().all().all()  # one seed: no ICC from notebook 02, no snr


def _stability_result(**changes) -> stability.StabilityResult:
    names = ["warm_cold", "verbose_concise"]
    fields = dict(
        profile="smoke",
        set_accuracy=pd.DataFrame({"A": [0.6, 0.8], "B": [0.5, 0.7], "C": [1.0, 0.9]}, index=names),
        set_cosines=pd.DataFrame({"A~B": [0.2, 0.8], "mean": [0.2, 0.8]}, index=names),
        baseline_projection_r=pd.DataFrame({"A~B": [0.1, 0.3], "mean": [0.1, 0.3]}, index=names),
        convergence=pd.DataFrame(
            {
                "n": [2, 2, 4, 4],
                "axis": names * 2,
                "cosine": [0.5, 0.7, 1.0, 1.0],
                "pairwise_accuracy": [0.6, 0.8, 0.7, 0.9],
            }
        ),
        retest=pd.DataFrame(
            {"baseline_icc": [0.2, 0.4], "ci_low": [0.0, 0.1], "ci_high": [0.5, 0.6], "snr": [1.0, 3.0]}
            | {"benchmark_icc": [0.6, np.nan]},
            index=names,
        ),
        validation=pd.Series(["chance", "valid"], index=names),
        seeds=[0, 1, 2],
        n_repeats=20,
    )
    return stability.StabilityResult(**(fields | changes))


def test_stability_paper_numbers_and_tables_come_from_the_fields():
    result = _stability_result(subsets=pd.DataFrame({"n": [2]}))
    numbers = result.paper()
    assert numbers["set_accuracy_mean"] == pytest.approx({"A": 0.7, "B": 0.6, "C": 0.95})
    assert numbers["min_set_cosine_axis"] == "warm/cold\u2020" and numbers["max_set_cosine"] == 0.8
    assert numbers["max_set_cosine_axis"] == "verbose/concise"
    assert numbers["convergence_smallest_n"] == 2 and numbers["convergence_largest_n"] == 4
    assert numbers["convergence_cosine_smallest"] == pytest.approx(0.6)
    assert numbers["convergence_accuracy_largest"] == pytest.approx(0.8)
    assert numbers["mean_benchmark_icc"] == 0.6 and numbers["mean_snr"] == 2.0 and numbers["n_repeats"] == 20
    tables = result.paper_tables()
    assert list(tables) == ["stability_sets_table", "retest_table"]
    for table in tables.values():  # warm/cold failed held-out validation: marked wherever it is shown
        assert list(table.frame.index) == ["warm_cold\u2020", "verbose_concise"]
    assert list(tables["stability_sets_table"].frame.columns) == [
        "acc. A",
        "acc. B",
        "acc. C",
        "cos A~B",
        "cos mean",
        "r mean",
    ]
    assert (
        "benchmark_icc" in tables["retest_table"].frame
        and "benchmark_ci_low" not in tables["retest_table"].frame
    )


def test_stability_result_round_trips_without_the_subsets():
    result = _stability_result(subsets=pd.DataFrame({"n": [2]}))
    saved = result.to_dict()
    assert "subsets" not in saved and saved["retest"]["verbose_concise"]["benchmark_icc"] is None
    loaded = stability.StabilityResult.from_dict(saved)
    assert loaded.subsets is None and loaded.seeds == [0, 1, 2]
    pd.testing.assert_frame_equal(loaded.retest, result.retest)
    pd.testing.assert_series_equal(loaded.validation, result.validation)
    assert loaded.paper() == result.paper()
