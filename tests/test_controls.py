"""The controls of notebook 13 (`styleprobe.analyses.controls`): on synthetic answers whose hidden states are
made from their words (an axis carried only by wording) or carry a signal the words lack, on null data, and
end to end on a tiny random model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from styleprobe import stats
from styleprobe.analyses import controls
from styleprobe.analyses.controls import AxisAnswers
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.hooks import EMBEDDING
from styleprobe.protocol import estimators, validity

N_CAL, N_EVAL, HIDDEN = 30, 30, 32
FILLER = [f"w{i}" for i in range(150)]


def _answers(rng, *, marker: float = 0.5, signal: float = 0.0, lengths=None) -> AxisAnswers:
    """N_CAL calibration and N_EVAL evaluation questions, each answered under both poles. Each answer is 20
    filler words plus three marker words, each "gladly" with probability `marker` under the positive pole
    (1 - `marker` under the negative one), else "sadly"; its embedding output is the mean of its words'
    vectors; its hidden state is that embedding turned by a fixed random rotation, plus `signal` times the
    pole along a direction no word has, plus noise. `lengths` (pos, neg): mean token counts per pole."""
    vocab = [*FILLER, "gladly", "sadly"]
    vectors = dict(zip(vocab, rng.normal(0, 1, (len(vocab), HIDDEN)), strict=True))
    mixing = np.linalg.qr(rng.normal(0, 1, (HIDDEN, HIDDEN)))[0]
    hidden_only = rng.normal(0, 1, HIDDEN)
    hidden_only /= np.linalg.norm(hidden_only)
    rows = []
    for split, n in (("calibration", N_CAL), ("evaluation", N_EVAL)):
        for q in range(n):
            for pole in (1, -1):
                glad = rng.random(3) < (marker if pole == 1 else 1 - marker)
                words = [*rng.choice(FILLER, 20), *np.where(glad, "gladly", "sadly")]
                embedding = np.mean([vectors[w] for w in words], axis=0)
                state = mixing @ embedding + signal * pole * hidden_only + rng.normal(0, 0.02, HIDDEN)
                mean_length = 20 if lengths is None else lengths[0 if pole == 1 else 1]
                n_tokens = max(1, int(rng.poisson(mean_length)))
                rows.append((split, q, pole, " ".join(words), n_tokens, state, embedding))
    split, q, pole, text, n_tokens, states, embedding = zip(*rows, strict=True)
    return AxisAnswers(
        states=np.array(states),
        pole=np.array(pole),
        question=np.array(q),
        calibration=np.array(split) == "calibration",
        text=np.array(text, dtype=object),
        n_tokens=np.array(n_tokens, dtype=float),
        embedding=np.array(embedding),
    )


def _status(row: dict) -> str:
    return validity.lexical_status(pd.DataFrame([row], index=["x"]))["x"]


def test_an_axis_carried_only_by_wording_is_classed_lexical():
    data = _answers(np.random.default_rng(0), marker=0.8)
    row = controls.axis_controls(data, n_directions=200)
    assert row["accuracy"] > 0.75  # the axis separates the poles held out ...
    assert max(row["text_accuracy"], row["embedding_accuracy"]) > row["accuracy"] - 0.05  # ... as words do
    assert row["gain_ci_low"] <= 0
    assert _status(row) == validity.LEXICAL


def test_an_axis_with_a_hidden_state_signal_beyond_the_text_is_not_lexical():
    data = _answers(np.random.default_rng(1), marker=0.5, signal=0.3)
    row = controls.axis_controls(data, n_directions=200)
    assert row["accuracy"] > 0.9
    assert max(row["text_accuracy"], row["embedding_accuracy"], row["length_accuracy"]) < 0.7
    assert row["gain_ci_low"] > 0
    assert _status(row) == validity.BEYOND


def test_lexical_status_is_one_rule_and_an_axis_must_validate_to_go_beyond():
    table = pd.DataFrame({"gain_ci_low": [0.1, 0.0, -0.2, np.nan]}, index=list("abcd"))
    status = validity.lexical_status(table)
    assert status.to_dict() == {"a": "beyond", "b": "lexical", "c": "lexical", "d": "lexical"}
    accuracy = {"pairwise_accuracy": [0.9, 0.9, 0.9, 0.55], "accuracy_ci_low": [0.7, 0.7, 0.7, 0.4]}
    evaluation = pd.DataFrame(accuracy, index=list("abcd"))
    assert validity.beyond_lexical(evaluation, table) == ["a"]
    table.loc["d", "gain_ci_low"] = 0.3  # beyond its words, but it fails validation
    assert validity.beyond_lexical(evaluation, table) == ["a"]


def test_the_accuracy_gain_pairs_question_means_of_the_questions_answered_under_both_poles():
    rng = np.random.default_rng(11)
    # evaluation questions 3, 1 and 4 twice under each pole (two seeds); question 8 under one pole only
    question = np.r_[np.tile([3, 1, 4], 4), [8]]
    pole = np.r_[np.repeat([1, -1, 1, -1], 3), [1]]
    axis, words = rng.normal(0, 1, (2, len(pole)))
    data = AxisAnswers(
        states=np.zeros((len(pole), 1)),
        pole=pole,
        question=question,
        calibration=np.zeros(len(pole), dtype=bool),
        text=np.full(len(pole), "", dtype=object),
        n_tokens=np.ones(len(pole)),
    )

    def means(scores, sign):
        return [scores[(question == q) & (pole == sign)].mean() for q in (1, 3, 4)]

    found = controls.accuracy_gain(data, axis, {"text": words, "nothing": None})
    expected = stats.paired_accuracy_difference(
        means(axis, 1), means(axis, -1), means(words, 1), means(words, -1)
    )
    assert (found["gain"], found["gain_ci_low"], found["gain_ci_high"]) == pytest.approx(expected)
    assert found["best_control"] == "text" and found["n_pairs"] == 3


def test_the_random_direction_percentile_is_chance_level_on_null_data():
    rng = np.random.default_rng(2)
    data = _answers(rng)
    null = AxisAnswers(**{**data.__dict__, "states": rng.normal(0, 1, (len(data.pole), 200))})
    p95 = controls.random_quantile(null, 1000)
    # one AUC of 30 + 30 null answers has sd sqrt(61 / (12 * 900)) = 0.075: its 95th percentile is 0.62
    assert 0.56 < p95 < 0.70
    median = controls.random_quantile(null, 1000, quantile=0.5)
    assert abs(median - 0.5) < 0.05


def test_the_random_directions_are_oriented_on_calibration_answers_only():
    data = _answers(np.random.default_rng(3), signal=0.5)
    flipped = AxisAnswers(**{**data.__dict__, "pole": np.where(data.calibration, data.pole, -data.pole)})
    assert controls.random_quantile(data, 300) > 0.6  # a strong signal shows in random directions too
    # the evaluation labels flipped: every direction is still oriented by calibration, so each AUC is 1 - AUC
    a = controls.random_quantile(data, 300, quantile=0.5)
    b = controls.random_quantile(flipped, 300, quantile=0.5)
    assert a == pytest.approx(1 - b)


def test_partialling_length_removes_a_pure_length_signal():
    rng = np.random.default_rng(4)
    data = _answers(rng, lengths=(60, 20))
    direction = rng.normal(0, 1, HIDDEN)
    noise = rng.normal(0, 0.3, data.states.shape)
    by_length = AxisAnswers(**{**data.__dict__, "states": np.outer(np.log(data.n_tokens), direction) + noise})
    row = controls.axis_controls(by_length, n_directions=100)
    assert row["accuracy"] > 0.95 and row["length_accuracy"] > 0.95
    assert abs(row["partialled_accuracy"] - 0.5) < 0.15
    assert _status(row) == validity.LEXICAL  # the token count does as well as the axis


def test_the_partialling_regression_is_fitted_on_calibration_answers_only():
    data = _answers(np.random.default_rng(5), lengths=(30, 20))
    states = data.states.copy()
    states[~data.calibration] += 100.0  # evaluation answers far away: a regression fitted on them would move
    moved = AxisAnswers(**{**data.__dict__, "states": states})
    residuals = controls.partial_out_length(data)
    assert np.allclose(controls.partial_out_length(moved)[data.calibration], residuals[data.calibration])


def test_the_text_classifier_never_sees_the_evaluation_labels():
    data = _answers(np.random.default_rng(6), marker=0.8)
    flipped = AxisAnswers(**{**data.__dict__, "pole": np.where(data.calibration, data.pole, -data.pole)})
    assert np.array_equal(controls.text_scores(data), controls.text_scores(flipped))
    assert controls.heldout(data, controls.text_scores(data))[0] > 0.7


def test_split_half_stability_is_high_for_a_strong_axis_and_low_for_noise():
    rng = np.random.default_rng(7)
    strong = _answers(rng, signal=1.0)
    assert controls.split_half_cosine(strong) > 0.8
    null = AxisAnswers(**{**strong.__dict__, "states": rng.normal(0, 1, (len(strong.pole), 500))})
    assert abs(controls.split_half_cosine(null)) < 0.15


@pytest.mark.parametrize("slope", [0.5, 0.0])
def test_the_dose_trend_detects_a_monotone_effect_and_not_a_null(slope):
    rng = np.random.default_rng(8)
    questions = np.repeat(np.arange(30), 5)
    levels = np.tile(np.arange(-2, 3), 30)
    values = rng.normal(0, 0.8, 30)[questions] + slope * levels + rng.standard_t(3, len(levels)) * 0.5
    trend = controls.dose_trend(values, levels, questions)
    assert trend["dose_questions"] == 30
    assert trend["dose_slope_low"] <= slope <= trend["dose_slope_high"]
    if slope:
        assert trend["dose_slope_low"] > 0 and trend["dose_ordered"] and trend["dose_rho"] > 0.5
    else:
        assert trend["dose_slope_low"] <= 0 <= trend["dose_slope_high"]


def test_dose_slopes_are_each_questions_least_squares_slope_over_three_or_more_levels():
    rng = np.random.default_rng(10)
    questions = np.r_[np.repeat([5, 2, 9], 5), [7, 7, 7, 7]]  # question 7: two distinct levels only
    levels = np.r_[np.tile(np.arange(-2, 3), 3), [-1, -1, 1, 1]]
    values = rng.normal(0, 1, len(levels))
    values[3] = np.nan  # left out, question 5 keeps 4 levels
    expected = []
    for q in (2, 5, 9):
        rows = (questions == q) & np.isfinite(values)
        expected.append(np.polyfit(levels[rows], values[rows], 1)[0])
    np.testing.assert_allclose(controls.dose_slopes(values, levels, questions), expected)
    assert np.isnan(controls.dose_slope_ci(values[:5], levels[:5], questions[:5])).all()  # one question


def test_convergent_validity_averages_seeds_per_question():
    rng = np.random.default_rng(9)
    latent = rng.normal(0, 1, 20)
    question = np.tile(np.arange(20), 3)  # 3 seeds
    projection = latent[question] + rng.normal(0, 0.3, 60)
    metric = np.exp(latent[question] + rng.normal(0, 0.3, 60))  # skewed, monotone in the latent value
    found = controls.convergent(projection, metric, question)
    assert found["n"] == 20 and found["rho"] > 0.7 and 0 < found["ci_low"] < found["rho"] < found["ci_high"]
    unrelated = controls.convergent(projection, rng.permutation(metric), question)
    assert unrelated["ci_low"] < 0.3


def test_the_embedding_output_is_the_input_of_block_0_pooled_like_the_reading(tiny):
    import torch

    from styleprobe.engine.pipeline import StageResult

    handle = tiny("llama")
    ids = [[5, 17, 42, 9], [7, 7, 3]]
    records = pd.DataFrame({"response_ids": ids})
    result = StageResult(records, np.zeros((2, 1, handle.hidden_size)), None)
    pooled = controls.embedding_states(handle, result, decay=0.5)
    for row, answer in enumerate(ids):
        with torch.inference_mode():
            out = handle.model(torch.tensor([answer]), output_hidden_states=True)
        first = out.hidden_states[0][0].float().numpy()  # the input of block 0
        weights = 0.5 ** np.arange(len(answer))[::-1]
        assert np.allclose(pooled[row], weights @ first / weights.sum(), atol=1e-5)


@pytest.mark.parametrize(
    ("reading", "estimator"),
    [("study", "study"), ("nested", ("zscore", "lda"))],
    ids=["study", "nested"],
)
def test_the_controls_run_end_to_end_on_a_tiny_model(tmp_path, cache, monkeypatch, reading, estimator):
    """With the study's reading, and with each axis's reading and estimator chosen by nested selection: the
    controls refit each axis as its axes file says (the same held-out accuracy as notebook 01), and the
    embedding control uses that axis's estimator and pooling."""
    from styleprobe.protocol import calibration, fingerprint
    from styleprobe.workspace import Workspace

    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "ws"))
    ws = Workspace.open("random:llama", profile="smoke", root=tmp_path)
    cal = calibration.calibrate(ws, reading=reading, estimator=estimator, progress=False)
    cal.axes.save(ws.axes_file)
    used = []
    fit = controls.embedding_scores
    monkeypatch.setattr(
        controls, "embedding_scores", lambda data, est=controls.study: used.append(est) or fit(data, est)
    )
    ws.save(calibration.summarise(ws, cal))
    ws.save(fingerprint.run(ws, seeds=[0, 1], progress=False))
    result = controls.run(ws, n_directions=50, progress=False)
    table = result.table
    assert list(table.index) == cal.axes.names and result.dose_questions == ws.profile.n_calibration
    assert set(table["control_status"]) <= {validity.BEYOND, validity.LEXICAL}
    assert np.allclose(table["accuracy"], cal.evaluation["pairwise_accuracy"])  # the axis, refitted alike
    axes = cal.axes
    assert list(table["estimator"]) == [axes.estimator(i) for i in range(len(axes.names))]
    if reading == "nested":  # the grid's embedding output at the axis's pooling: the input embeddings
        decay = axes.reading(0).decay
        assert cal.grid.aggregation.covers(Aggregation((EMBEDDING,), (1.0,), decay))
        from_grid = controls.axis_embedding(ws.model, cal.result, axes, 0, {}, cal.grid)
        assert np.allclose(from_grid, controls.embedding_states(ws.model, cal.result, decay), atol=1e-4)
    assert len(used) == len(axes.names)
    pos, neg, groups = np.eye(4)[:2] + 0.1, np.eye(4)[2:] - 0.1, np.arange(2)
    for i, est in enumerate(used):  # the embedding control: the axis's own estimator, whitened or not
        own = estimators.get(axes.estimator(i))
        assert np.allclose(est(pos, neg, groups, groups), own(pos, neg, groups, groups))
    assert (table["dose_questions"] > 0).all()
    assert list(result.dose_levels.columns) == ["-2", "-1", "0", "1", "2"]
    ws.save(result)
    again = controls.ControlsResult.load(ws)
    assert again.beyond() == result.beyond() and again.paper() == pytest.approx(result.paper(), nan_ok=True)
    assert set(again.paper_tables()) == {"controls_table", "controls_validity_table"}


def _result(gain_low: dict[str, float], accuracy: dict[str, float]) -> controls.ControlsResult:
    """A ControlsResult of axes with these lower ends of the gain's interval and held-out accuracies (the
    interval's low end 0.2 below)."""
    names = list(gain_low)
    table = pd.DataFrame({"gain_ci_low": gain_low, "gain": 0.1, "gain_ci_high": 0.4, "best_control": "text"})
    table["control_status"] = validity.lexical_status(table)
    filler = [c for c in (*controls.TABLE_COLUMNS, "split_half_cosine", "dose_slope_low") if c not in table]
    table[filler] = 0.5
    table["dose_ordered"] = True
    evaluation = pd.DataFrame(
        {"pairwise_accuracy": accuracy, "accuracy_ci_low": {n: accuracy[n] - 0.2 for n in names}}
    )
    evaluation["validation"] = validity.heldout_status(evaluation)
    return controls.ControlsResult(
        profile="smoke",
        estimator="study",
        reading={},
        embedding="",
        n_calibration=N_CAL,
        n_evaluation=N_EVAL,
        n_directions=10,
        dose_questions=2,
        table=table,
        dose_levels=pd.DataFrame(),
        evaluation=evaluation,
    )


def test_the_readme_counts_and_names_axes_by_the_tables_predicates():
    from styleprobe.report import readme

    result = _result(
        {"warm_cold": 0.05, "formal_casual": -0.1, "verbose_concise": 0.2, "patient_irritated": -0.3},
        # verbose/concise and patient/irritated fail validation
        {"warm_cold": 0.95, "formal_casual": 0.95, "verbose_concise": 0.55, "patient_irritated": 0.55},
    )
    assert result.validated() == ["warm_cold", "formal_casual"] and result.beyond() == ["warm_cold"]
    text = readme.controls_sentence(result)
    assert text.startswith("**1 of 4 axes go beyond their lexical control**")
    assert ": warm/cold; the validated formal/casual do no better than their words" in text
    # failed validation: beyond its words (verbose) or not (patient), an axis is not interpreted
    assert "verbose" not in text and "patient" not in text
    paper = result.paper()
    assert (paper["n_beyond"], paper["n_lexical"], paper["lexical"]) == (1, 1, "formal/casual")
    failed = _result({"warm_cold": 0.3}, {"warm_cold": 0.55})
    assert failed.beyond() == [] and "no axis passes validation" in readme.controls_sentence(failed)
