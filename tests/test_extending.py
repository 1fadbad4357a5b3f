"""A new axis touches only the data folder: with an eighth axis added to a copy of `styleprobe/data` (its
instructions, graded instructions and formulations in axes.yaml, its questions in every set of
questions.yaml, a judge rubric, a lexicon category as its text metric), calibration and the fingerprint
cover it, through the library and through the command line, with no code changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from waiting import WAIT

from styleprobe.analyses.judge.core import load_prompts
from styleprobe.analyses.textmetrics import axis_metrics, protocol_lexicon, text_metrics
from styleprobe.paths import PACKAGE_DATA
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import calibrate
from styleprobe.protocol.fingerprint import baseline, fingerprint_table, project_results
from styleprobe.protocol.spec import FORMULATIONS, GRADES, Protocol
from styleprobe.workspace import Workspace

NEW = "playful_serious"
FORMULATION = {
    "plain": ("Answer the user in a playful way.", "Answer the user in a serious way."),
    "minimal": ("Be playful.", "Be serious."),
    "role": ("You are a light-hearted assistant who loves a joke.", "You are a grave, sober assistant."),
    "behavioural": ("Use jokes, puns and a teasing tone.", "Avoid jokes, puns and any teasing tone."),
    "example": ('Respond playfully, like: "Ooh, a riddle in disguise!"', 'Respond gravely, like: "Noted."'),
}
GRADED = {
    "very_negative": "You are a very serious assistant: never joke.",
    "slightly_negative": "You are a slightly serious assistant.",
    "slightly_positive": "You are a slightly playful assistant.",
    "very_positive": "You are a very playful assistant: joke all the time.",
}
QUESTIONS = {  # distinct questions for each set, more than the smoke profile uses
    "calibration": [f"What is a good way to spend a rainy afternoon number {i}?" for i in range(6)],
    "evaluation": [f"How should I plan a picnic for {i + 2} friends?" for i in range(4)],
    "set_b": [f"What can I cook with {i + 3} ingredients?" for i in range(6)],
    "set_c": [f"How do I keep {i + 2} houseplants alive?" for i in range(6)],
}


def _pair(positive: str, negative: str) -> dict:
    return {"positive": positive, "negative": negative}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A copy of the package's data with the axis `playful_serious` added."""
    folder = tmp_path_factory.mktemp("data") / "data"
    shutil.copytree(PACKAGE_DATA, folder)

    axes = yaml.safe_load((folder / "axes.yaml").read_text())
    axes["axes"].append(
        {
            "name": NEW,
            "positive": "playful",
            "negative": "serious",
            "description": "How much humour and light-heartedness the answer shows.",
            "text_metric": "playfulness",
            "instructions": {
                "A": _pair("You are a playful assistant: joke and tease.", "You are a serious assistant."),
                "B": _pair("Keep things light and fun in every reply.", "Keep every reply grave and sober."),
                "C": _pair("Your replies should sparkle with humour.", "Your replies should be solemn."),
            },
            "graded": {grade: GRADED[grade] for grade in GRADES},
            "formulations": {name: _pair(*FORMULATION[name]) for name in FORMULATIONS},
            "nudges": _pair("Could you be a bit more playful?", "Please be more serious."),
        }
    )
    (folder / "axes.yaml").write_text(yaml.safe_dump(axes, sort_keys=False))

    questions = yaml.safe_load((folder / "questions.yaml").read_text())
    for set_name, items in QUESTIONS.items():
        questions[set_name][NEW] = items
    (folder / "questions.yaml").write_text(yaml.safe_dump(questions, sort_keys=False))

    judge = yaml.safe_load((folder / "judge.yaml").read_text())
    judge["rubrics"][NEW] = "+2 jokes, teases and plays with words; -2 grave, sober, no humour."
    (folder / "judge.yaml").write_text(yaml.safe_dump(judge, sort_keys=False))

    lexicon = yaml.safe_load((folder / "lexicon.yaml").read_text())
    lexicon["categories"]["playfulness"] = ["haha", "fun", "joke", "silly", "play"]
    (folder / "lexicon.yaml").write_text(yaml.safe_dump(lexicon, sort_keys=False))
    return folder


def test_the_protocol_the_judge_and_the_text_metrics_take_the_new_axis(data):
    protocol = Protocol.load(data)
    assert len(protocol.names) == len(Protocol.load().names) + 1 == 8 and protocol.names[-1] == NEW
    assert protocol.poles()[NEW] == ("playful", "serious")
    assert protocol.axes[NEW].graded == GRADED
    assert protocol.questions.calibration_set("B")[NEW] == QUESTIONS["set_b"]
    assert protocol.hash != Protocol.load().hash  # axes fitted on it are told apart from the standard ones
    assert NEW in load_prompts(protocol.file("judge.yaml"), tuple(protocol.names)).rubrics
    assert axis_metrics(protocol)[NEW] == "playfulness"
    lexicon = {k: tuple(v) for k, v in protocol_lexicon(protocol).items()}
    assert text_metrics("Haha, what fun!", lexicon)["playfulness"] > 0


def test_calibration_and_the_fingerprint_cover_the_new_axis(data, tmp_path, monkeypatch, cache):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "extending"))
    ws = Workspace.open("random:qwen2", profile="smoke", root=tmp_path, data=data)
    cal = calibrate(ws, progress=False)
    assert cal.axes.names == ws.protocol.names and cal.axes.names[-1] == NEW
    assert NEW in set(cal.evaluation.index)
    results = baseline(ws, seeds=(0,), progress=False)
    projections = project_results(cal.axes, results, ws.model.model_id)
    table = fingerprint_table(projections, cal.axes)
    assert list(table.index) == cal.axes.names and table.loc[NEW, "n"] == ws.profile.n_baseline


def test_the_command_line_reads_another_data_folder(data, tmp_path, cache):
    env = {**os.environ, "STYLEPROBE_DATA_DIR": str(data), "STYLEPROBE_CACHE": str(cache / "extending")}
    command = [sys.executable, "-m", "styleprobe.apps.cli", "fingerprint", "--model", "random:qwen2"]
    command += ["--profile", "smoke", "--root", str(tmp_path), "--quiet", "--seeds", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WAIT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert AxisSet.load(tmp_path / "axes" / "random-qwen2.json").names[-1] == NEW
    fingerprint = json.loads((tmp_path / "results" / "random-qwen2.json").read_text())["baseline"][
        "fingerprint"
    ]
    assert len(fingerprint) == 8 and NEW in fingerprint
