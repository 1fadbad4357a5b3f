import json

import numpy as np
import pytest

from styleprobe.apps.cli import main
from styleprobe.protocol.axes import AxisSet, axes_id

MODEL = ["--quiet", "--model", "random:llama"]


@pytest.fixture
def dirs(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "cli"))
    monkeypatch.setenv("STYLEPROBE_ROOT", str(tmp_path))  # the root of the commands that name one file
    return ["--output-path", str(tmp_path), *MODEL]


def test_help_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("calibrate", "fingerprint", "project", "axes"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["fingerprint", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "baseline section of <output-path>/results/<model>.json" in out and "--output-path PATH" in out
    assert "--root" not in out and "--out " not in out  # the flags --output-path replaced are hidden


def test_unknown_model_is_a_one_line_error(capsys, tmp_path):
    assert main(["calibrate", "--model", "nonexistent-model", "--output-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("styleprobe: error: unknown model 'nonexistent-model'") and "\n" not in err


def test_calibrate_fingerprint_project_and_list(dirs, tmp_path, capsys):
    two = ["--axes", "warm_cold", "verbose_concise", "--profile", "quick"]
    assert main(["calibrate", *dirs, *two]) == 0
    axes = AxisSet.load(tmp_path / "axes" / "random-llama.json")
    assert axes.names == ["warm_cold", "verbose_concise"] and axes.meta["profile"]["name"] == "quick"
    assert set(axes.calibration["warm_cold"]) >= {"pairwise_accuracy", "dprime", "sign_accuracy"}

    assert main(["fingerprint", *dirs, "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    assert "fingerprint of" in out and "verbose_concise" in out
    assert (tmp_path / "figures" / "random-llama" / "fingerprint_radar.png").exists()
    saved = json.loads((tmp_path / "results" / "random-llama.json").read_text())["baseline"]  # as notebook 02
    assert list(saved["fingerprint"]) == axes.names and saved["seeds"] == [0] and saved["icc"] == {}
    assert saved["axes_id"] == axes_id(axes) and saved["model_id"] == axes.model_id
    numbers = tmp_path / "paper" / "generated" / "random-llama" / "numbers-02_baseline@baseline.tex"
    assert "02_baseline/n_seeds}{1}" in numbers.read_text()
    results = (tmp_path / "results" / "random-llama.json").read_text()
    system = tmp_path / "system.json"  # a fingerprint under a system prompt: its own file, not the baseline
    assert (
        main(
            [
                "fingerprint",
                *MODEL,
                "--profile",
                "quick",
                "--system",
                "Be casual.",
                "--output-path",
                str(system),
            ]
        )
        == 0
    )
    assert (tmp_path / "results" / "random-llama.json").read_text() == results and system.with_suffix(
        ".png"
    ).exists()
    assert main(["compare", str(tmp_path / "results" / "random-llama.json"), str(system)]) in (0, 1)
    assert "A and B: same model, same axes" in capsys.readouterr().out

    lines = [
        json.dumps({"question": "What is rain?", "response": "Water falling from clouds."}),
        "{not json",
        json.dumps({"question": "x"}),
        json.dumps({"response": "Sure, here you go."}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out_path = tmp_path / "out.jsonl"
    assert main(["project", str(src), *MODEL, "--output-path", str(out_path)]) == 1  # 1: lines were skipped
    err = capsys.readouterr().err
    assert f"{src}:2: skipped" in err and f"{src}:3: skipped" in err
    scored = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(scored) == 2 and all(np.isfinite(v) for s in scored for v in s["projection"].values())

    assert main(["axes", "list", "--output-path", str(tmp_path)]) == 0
    assert "random-llama.json" in capsys.readouterr().out


def test_project_refuses_axes_of_another_model(dirs, tmp_path, capsys, cache):
    assert main(["calibrate", *dirs, "--axes", "warm_cold", "--profile", "quick"]) == 0
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"response": "Hello."}) + "\n")
    axes_file = str(tmp_path / "axes" / "random-llama.json")
    other = [a if a != "random:llama" else "random:qwen2" for a in dirs]
    assert main(["project", str(src), *other, "--axes-file", axes_file]) == 2
    assert "not" in capsys.readouterr().err


def test_reproduce_paper_dry_run_prints_every_step(capsys):
    from styleprobe.apps.reproduce import cross_model_notebooks, per_model_notebooks
    from styleprobe.engine.models import load_presets

    assert main(["reproduce", "--all-presets", "--profile", "paper", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    presets = load_presets()
    pairs = sum(p.base is not None for p in presets.values())  # notebook 03
    thinking = sum(p.thinking for p in presets.values())  # notebook 06
    per_model = len(per_model_notebooks())
    cross = len(cross_model_notebooks())
    assert len(lines) == per_model * len(presets) + pairs + thinking + cross  # then the cross-model ones
    assert all(line.startswith("would run: papermill notebooks/") for line in lines)
    assert "-p model qwen3-8b -p profile paper" in "\n".join(lines)
    assert lines[-2].startswith("would run: papermill notebooks/10_cross_model.py")
    assert lines[-1].startswith("would run: papermill notebooks/12_statistics_check.py")


def test_a_subset_calibration_does_not_block_the_full_one(dirs, tmp_path):
    assert main(["calibrate", *dirs, "--axes", "warm_cold", "--profile", "smoke"]) == 0
    assert main(["calibrate", *dirs, "--profile", "smoke"]) == 0
    assert len(AxisSet.load(tmp_path / "axes" / "random-llama.json").names) == 7


def test_the_reading_context_is_chosen_by_name(dirs, tmp_path, capsys):
    out = tmp_path / "instructed.json"
    argv = ["calibrate", *MODEL, "--axes", "warm_cold", "--profile", "smoke", "--output-path", str(out)]
    assert main([*argv, "--context", "instructed"]) == 0
    assert AxisSet.load(out).meta["context"] == "instructed"
    assert (tmp_path / "runs" / "random-llama" / "calibration-A-instructed-smoke-warm_cold").is_dir()
    with pytest.raises(SystemExit):
        main([*argv, "--context", "with-instruction"])
    assert "invalid choice: 'with-instruction'" in capsys.readouterr().err


def test_calibrate_chooses_the_reading_and_the_estimator_by_name(dirs, tmp_path, capsys):
    study = tmp_path / "study.json"
    argv = ["calibrate", *MODEL, "--axes", "warm_cold", "--profile", "smoke", "--output-path"]
    assert main([*argv, str(study), "--reading", "study", "--estimator", "study"]) == 0
    assert AxisSet.load(study).readings is None  # the study's reading, one for all axes
    assert AxisSet.load(study).estimators == ["study"]
    chosen = tmp_path / "nested.json"
    assert main([*argv, str(chosen), "--reading", "nested", "--estimator", "zscore"]) == 0
    axes = AxisSet.load(chosen)
    assert axes.estimators == ["zscore"] and axes.readings is not None and len(axes.readings) == 1
    with pytest.raises(SystemExit):
        main([*argv, str(chosen), "--estimator", "median"])
    assert "invalid choice: 'median'" in capsys.readouterr().err


def test_project_scores_chat_logs_as_the_plain_format_and_skips_bad_lines(dirs, tmp_path, capsys):
    assert main(["calibrate", *dirs, "--axes", "warm_cold", "--profile", "smoke"]) == 0
    history = [["Hi!", "Hello, how can I help?"]]
    plain = {"question": "What is rain?", "system": "Be brief.", "history": history, "response": "Water."}
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "What is rain?"},
            {"role": "assistant", "content": "Water."},
        ]
    }
    unanswered = {"messages": [{"role": "user", "content": "What is rain?"}]}
    src = tmp_path / "log.jsonl"
    src.write_bytes(
        b"\xef\xbb\xbf"  # a UTF-8 BOM must not cost line 1
        + "\n".join(json.dumps(r) for r in (plain, chat, unanswered)).encode()
        + b"\n\xff\xfe broken bytes\n"
    )
    out = tmp_path / "scored.jsonl"
    assert main(["project", str(src), *MODEL, "--output-path", str(out)]) == 1  # some lines were skipped
    err = capsys.readouterr().err
    assert f"{src}:3: skipped: conversation must end with an assistant message" in err
    assert f"{src}:4: skipped: line is not valid UTF-8" in err and "2 of 4 lines skipped" in err
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [set(s) - {"projection"} for s in scored] == [set(plain), set(chat)]  # the rows as given
    assert scored[0]["projection"] == scored[1]["projection"]  # one conversation, two formats

    src.write_text(json.dumps(chat) + "\n")
    assert main(["project", str(src), *MODEL, "--output-path", str(out)]) == 0  # 0: every line scored


def test_dotted_local_model_names_keep_their_own_axes(tmp_path, cache, capsys, monkeypatch):
    """`tiny-v1.5` and `tiny-v1.6` once shared `axes/tiny-v1.json`; fingerprint then recalibrated."""
    from styleprobe.testing import build_random_model

    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "cli"))
    folders = ["--output-path", str(tmp_path), "--quiet", "--profile", "smoke"]
    for version in ("1.5", "1.6"):
        model = build_random_model("llama", tmp_path / f"tiny-v{version}")
        assert main(["calibrate", "--model", str(model), *folders, "--axes", "warm_cold"]) == 0
    assert sorted(p.name for p in (tmp_path / "axes").glob("*.json")) == ["tiny-v1.5.json", "tiny-v1.6.json"]
    assert AxisSet.load(tmp_path / "axes" / "tiny-v1.5.json").model_id == "tiny-v1.5"
    capsys.readouterr()
    assert main(["fingerprint", "--model", str(tmp_path / "tiny-v1.5"), *folders]) == 0
    assert "calibrating first" not in capsys.readouterr().err
