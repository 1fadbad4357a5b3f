"""Tests for the data files (data/axes.yaml, data/questions.yaml) and their loader."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from styleprobe.paths import data_dir
from styleprobe.protocol.spec import (
    FORMULATIONS,
    GRADE_LEVELS,
    GRADES,
    DataError,
    QuestionBank,
    find_overlaps,
    load_axes,
    load_questions,
    normalise_text,
    prompt_set_hash,
)

AXES = [
    "warm_cold",
    "verbose_concise",
    "confident_cautious",
    "proactive_reluctant",
    "empathetic_analytical",
    "formal_casual",
    "patient_irritated",
]


@pytest.fixture(scope="module")
def axes():
    return load_axes()


@pytest.fixture(scope="module")
def bank():
    return load_questions()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    for name in ("axes.yaml", "questions.yaml"):
        shutil.copy(data_dir() / name, tmp_path / name)
    return tmp_path


def test_axes_order_and_poles(axes):
    assert list(axes) == AXES
    for name, spec in axes.items():
        assert spec.name == name
        assert spec.poles == tuple(name.split("_"))


def test_question_counts(bank):
    assert len(bank.baseline) == 30
    for sets, n in ((bank.calibration, 30), (bank.evaluation, 30), (bank.set_b, 20), (bank.set_c, 20)):
        assert list(sets) == AXES
        assert all(len(qs) == n for qs in sets.values())
    assert len(bank.all_questions()) == 730
    assert bank.calibration_set("A") is bank.calibration
    assert bank.calibration_set("B") is bank.set_b
    assert bank.calibration_set("C") is bank.set_c
    with pytest.raises(ValueError):
        bank.calibration_set("D")


def test_all_question_sets_disjoint(bank):
    assert find_overlaps(bank) == []


# sha256 of the first 10 evaluation questions per axis, as the runs with 10 evaluation questions answered them
FIRST_EVALUATION = "afe2651febf81369"


def test_thirty_evaluation_questions_per_axis_the_first_ten_unchanged(bank):
    """A profile takes the first n questions of a list: the list grew at its end, so runs with up to 10
    evaluation questions per axis answered the same questions as before."""
    for name in AXES:
        questions = bank.evaluation[name]
        assert len(questions) == 30, name
        assert len({normalise_text(q) for q in questions}) == 30, name
    first = json.dumps({name: bank.evaluation[name][:10] for name in AXES}, ensure_ascii=False)
    assert hashlib.sha256(first.encode()).hexdigest()[:16] == FIRST_EVALUATION


def test_prompts_non_empty_and_distinct(axes):
    texts = []
    for spec in axes.values():
        assert set(spec.instructions) == {"A", "B", "C"}
        assert tuple(spec.formulations) == FORMULATIONS
        texts += [t for pair in spec.instructions.values() for t in pair]
        texts += [t for pair in spec.formulations.values() for t in pair]
        texts += list(spec.nudges)
    assert all(t.strip() for t in texts)
    assert len({normalise_text(t) for t in texts}) == len(texts)


def test_every_axis_has_four_distinct_graded_instructions(axes):
    """The dose-response set: "very" and "slightly" of each pole, none equal (normalised) to another graded
    instruction or to any other prompt of the data, each a full system prompt as long as set A's."""
    others = set()
    for spec in axes.values():
        others |= {normalise_text(t) for pair in spec.instructions.values() for t in pair}
        others |= {normalise_text(t) for pair in spec.formulations.values() for t in pair}
        others |= {normalise_text(t) for t in spec.nudges}
    graded = []
    for spec in axes.values():
        assert tuple(spec.graded) == GRADES, spec.name
        set_a = sum(len(t.split()) for t in spec.instructions["A"]) / 2
        for grade, text in spec.graded.items():
            strength = grade.split("_")[0]
            assert text.startswith("You are a") and f" {strength} " in text, (spec.name, grade)
            assert 0.6 * set_a <= len(text.split()) <= 1.6 * set_a, (spec.name, grade)
            assert spec.graded_instruction(grade) == text
        assert spec.positive in spec.graded["very_positive"] and spec.negative in spec.graded["very_negative"]
        assert spec.graded_instruction("neutral") is None
        graded += [normalise_text(t) for t in spec.graded.values()]
    assert len(graded) == len(set(graded)) == 4 * len(axes)
    assert not set(graded) & others
    assert sorted(GRADE_LEVELS, key=GRADE_LEVELS.get) == [GRADES[0], GRADES[1], "neutral", *GRADES[2:]]
    with pytest.raises(ValueError, match="unknown grade"):
        axes["warm_cold"].graded_instruction("extremely_positive")


def test_instruction_pole(axes):
    spec = axes["warm_cold"]
    assert spec.instruction(1) == spec.instructions["A"][0]
    assert spec.instruction(-1, "C") == spec.instructions["C"][1]
    with pytest.raises(ValueError):
        spec.instruction(0)


def test_normalise_text():
    assert normalise_text("  What's  the Time?\n") == normalise_text("whats the time")
    assert normalise_text("Café, s'il vous plaît!") == "cafésilvousplaît"


def test_find_overlaps_detects_planted_duplicate(bank):
    planted = "  " + bank.calibration["warm_cold"][0].upper().replace("?", " ?!") + "\t"
    evaluation = {**bank.evaluation, "formal_casual": [*bank.evaluation["formal_casual"], planted]}
    doubled = QuestionBank(bank.calibration, evaluation, bank.baseline, bank.set_b, bank.set_c)
    assert find_overlaps(doubled) == [("calibration/warm_cold", "evaluation/formal_casual", planted)]
    within = QuestionBank({"x": ["Why?", "why"]}, {}, [], {}, {})
    assert find_overlaps(within) == [("calibration/x", "calibration/x", "why")]


def _assert_one_line_error(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


def test_invalid_yaml_raises(tmp_path: Path):
    bad = tmp_path / "axes.yaml"
    bad.write_text("axes: [\n  - name: warm_cold\n  bad: : :\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        load_axes(bad)
    _assert_one_line_error(exc, bad)


def test_missing_file_raises(tmp_path: Path):
    with pytest.raises(DataError) as exc:
        load_axes(tmp_path / "nope.yaml")
    _assert_one_line_error(exc, tmp_path / "nope.yaml")


def test_missing_key_raises(data_copy: Path):
    path = data_copy / "axes.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    del raw["axes"][2]["description"]
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(DataError, match="description") as exc:
        load_axes(path)
    _assert_one_line_error(exc, path)


def test_wrong_instruction_sets_raise(data_copy: Path):
    path = data_copy / "axes.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["axes"][0]["instructions"]["D"] = raw["axes"][0]["instructions"]["A"]
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(DataError, match="instructions") as exc:
        load_axes(path)
    _assert_one_line_error(exc, path)


def _drop_graded(entry: dict) -> None:
    del entry["graded"]


def _drop_grade(entry: dict) -> None:
    del entry["graded"]["slightly_negative"]


def _extra_grade(entry: dict) -> None:
    entry["graded"]["extremely_positive"] = entry["graded"]["very_positive"] + " Extremely so."


def _empty_grade(entry: dict) -> None:
    entry["graded"]["very_negative"] = "  "


def _graded_list(entry: dict) -> None:
    entry["graded"] = list(entry["graded"].values())


@pytest.mark.parametrize("edit", [_drop_graded, _drop_grade, _extra_grade, _empty_grade, _graded_list])
def test_a_missing_or_malformed_graded_entry_is_a_one_line_error(data_copy: Path, edit):
    path = data_copy / "axes.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(raw["axes"][3])
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(DataError, match=r"axes\[3\] \(proactive_reluctant\)\.graded") as exc:
        load_axes(path)
    _assert_one_line_error(exc, path)


def test_empty_question_raises(data_copy: Path):
    path = data_copy / "questions.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["set_c"]["warm_cold"][3] = "   "
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(DataError) as exc:
        load_questions(path)
    _assert_one_line_error(exc, path)


@pytest.mark.parametrize("change", ["missing", "unknown"])
def test_axis_mismatch_raises(data_copy: Path, change: str):
    path = data_copy / "questions.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if change == "missing":
        del raw["evaluation"]["formal_casual"]
    else:
        raw["set_b"]["funny_serious"] = ["Why is a joke funny?"]
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(DataError, match="formal_casual" if change == "missing" else "funny_serious") as exc:
        load_questions(path)
    _assert_one_line_error(exc, path)


def test_prompt_set_hash_stable_and_sensitive(data_copy: Path):
    axes_path, questions_path = data_copy / "axes.yaml", data_copy / "questions.yaml"
    first = prompt_set_hash(axes_path, questions_path)
    assert len(first) == 16 and int(first, 16) >= 0
    assert prompt_set_hash(axes_path, questions_path) == first
    assert prompt_set_hash() == first
    raw = yaml.safe_load(questions_path.read_text(encoding="utf-8"))
    raw["baseline"][0] = raw["baseline"][0].replace("?", " today?")
    questions_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    second = prompt_set_hash(axes_path, questions_path)
    assert second != first
    raw = yaml.safe_load(axes_path.read_text(encoding="utf-8"))
    raw["axes"][5]["graded"]["slightly_positive"] += " Keep it tidy."
    axes_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert prompt_set_hash(axes_path, questions_path) not in (first, second)
