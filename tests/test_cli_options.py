"""The options every command shares, as lm-eval-harness names them: --output-path (and the old flags it
replaced), --model-args, --limit, --seed, --log-samples, --verbosity; the help texts; the Python API."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import styleprobe
from styleprobe.apps import cli
from styleprobe.apps.cli import build_parser, main
from styleprobe.engine.models import ModelLoadError
from styleprobe.protocol.axes import AxisSet
from styleprobe.workspace import Workspace

MODEL = ["--model", "random:llama", "--profile", "smoke", "--quiet"]
STUDY_NPZ = Path(__file__).parent / "data/mood_axis/article/axis_stability/qwen_7b_set_A_axes.npz"
SAMPLE_FIELDS = {"id", "question", "system", "response", "n_tokens", "empty", "cut", "clipped", "projection"}


@pytest.fixture(autouse=True)
def _cache(cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "cli"))


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf command's parser, by its name (`axes list`)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{prefix}{name} ") or {f"{prefix}{name}": sub})
    return found


@pytest.fixture
def axes_file(tmp_path) -> Path:
    """Smoke axes of random:llama, calibrated under a root of their own."""
    assert main(["calibrate", *MODEL, "--output-path", str(tmp_path / "calibrated")]) == 0
    return tmp_path / "calibrated" / "axes" / "random-llama.json"


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- help --------------------------------------------------------------------------------------------------
def test_every_option_and_argument_of_every_command_has_help():
    commands = _commands(build_parser())
    assert {"calibrate", "fingerprint", "compare", "project", "reproduce", "axes list"} <= set(commands)
    for name, parser in commands.items():
        for action in parser._actions:
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = parser.format_help()
        assert "%%" not in text and "%(" not in text, name
        assert "--verbosity" in text, name


def test_help_names_what_each_option_takes():
    commands = _commands(build_parser())
    calibrate = " ".join(commands["calibrate"].format_help().split())
    assert "random:<arch>" in calibrate and "smoke" in calibrate and "--output-path PATH" in calibrate
    reproduce = " ".join(commands["reproduce"].format_help().split())
    assert "01, 02, 04" not in reproduce and "then the cross- model notebooks 10 and 12" in reproduce
    assert "--runs-dir" not in reproduce and "--output-path DIR" in reproduce
    listing = commands["axes list"].format_help()
    assert "--axes-dir" not in listing and "--output-path" in listing


# -- --model-args ------------------------------------------------------------------------------------------
def test_model_args_are_read_like_lm_eval():
    parsed = cli.model_args("attn_implementation=sdpa, load_in_8bit=True,n=3,x=0.5,y=none,z=False")
    assert parsed == {
        "attn_implementation": "sdpa",
        "load_in_8bit": True,
        "n": 3,
        "x": 0.5,
        "y": None,
        "z": False,
    }
    assert type(parsed["n"]) is int
    for bad in ("sdpa", "=1", "a=1,a=2", "dtype=float16", "revision=main", "trust_remote_code=True", "a b=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.model_args(bad)


def test_model_args_reach_from_pretrained(tmp_path, monkeypatch):
    """The CLI hands --model-args to load_model, and load_model to from_pretrained (eager is not the default
    attention, so the loaded model shows whether it got there)."""
    seen = []
    real = cli.load_model

    def spy(*args, **kwargs):
        handle = real(*args, **kwargs)
        seen.append((kwargs["model_args"], handle.model.config._attn_implementation))
        return handle

    monkeypatch.setattr(cli, "load_model", spy)
    argv = ["calibrate", *MODEL, "--axes", "warm_cold", "--output-path", str(tmp_path)]
    assert main([*argv, "--model-args", "attn_implementation=eager"]) == 0
    assert main(argv) == 0
    assert seen[0] == ({"attn_implementation": "eager"}, "eager") and seen[1][1] != "eager"
    with pytest.raises(ModelLoadError, match="--dtype"):  # the library refuses a keyword with an option
        real("random:llama", model_args={"torch_dtype": "float16"})


# -- --output-path -----------------------------------------------------------------------------------------
def test_output_path_is_the_one_root_or_the_one_file(tmp_path, axes_file, monkeypatch, capsys):
    root = tmp_path / "root"
    assert main(["fingerprint", *MODEL, "--output-path", str(root), "--axes-file", str(axes_file)]) == 0
    assert (root / "results" / "random-llama.json").is_file()
    assert (root / "figures" / "random-llama" / "fingerprint_radar.png").is_file()
    assert (root / "runs" / "random-llama").is_dir()
    err = capsys.readouterr().err
    assert f"results: {root / 'results' / 'random-llama.json'}" in err  # where files went: logged, stderr

    monkeypatch.setenv("STYLEPROBE_ROOT", str(root))  # the root of a command that writes one named file
    one = tmp_path / "one.json"
    assert (
        main(
            ["fingerprint", *MODEL, "--seeds", "1", "--output-path", str(one), "--axes-file", str(axes_file)]
        )
        == 0
    )
    assert json.loads(one.read_text())["baseline"]["seeds"] == [1] and one.with_suffix(".png").is_file()

    imported = tmp_path / "imported"
    assert main(["axes", "import-study", str(STUDY_NPZ), "--output-path", str(imported)]) == 0
    assert AxisSet.load(imported / "axes" / "qwen2.5-7b-instruct.json").model_id == "Qwen/Qwen2.5-7B-Instruct"
    gguf = tmp_path / "w.gguf"
    assert main(["axes", "export-gguf", str(imported / "axes" / "qwen2.5-7b-instruct.json"), "--axis",
                 "warm_cold", "--output-path", str(gguf)]) == 0  # fmt: skip
    assert gguf.is_file()


def test_the_old_output_flags_still_work_with_a_notice(tmp_path, capsys):
    out = tmp_path / "axes.json"
    argv = ["calibrate", *MODEL, "--axes", "warm_cold", "--root", str(tmp_path / "r"), "--out", str(out)]
    assert main(argv) == 0
    assert AxisSet.load(out).names == ["warm_cold"] and (tmp_path / "r" / "runs" / "random-llama").is_dir()
    err = capsys.readouterr().err
    assert "styleprobe: warning: --root will be removed in the next release; use --output-path" in err
    assert "styleprobe: warning: --out/--output will be removed" in err
    assert main(["calibrate", *MODEL, "--output-path", str(tmp_path), "--root", str(tmp_path)]) == 2
    assert "both name the output root" in capsys.readouterr().err


# -- --limit, --seed, --log-samples ------------------------------------------------------------------------
def test_a_limited_run_is_marked_and_kept_apart_from_full_runs(tmp_path, capsys):
    root = ["--output-path", str(tmp_path)]
    assert main(["fingerprint", *MODEL, *root, "--limit", "2"]) == 0  # calibrates first, limited too
    out, err = capsys.readouterr()
    limited = "smoke+n_baseline=2+n_calibration=2+n_evaluation=2"  # smoke's n_benchmark is 2 already
    assert "LIMITED RUN (--limit 2)" in out and f"({limited} profile, 2 questions" in out
    assert f"styleprobe: warning: --limit 2: a partial run for testing (profile {limited})" in err
    axes = AxisSet.load(tmp_path / "axes" / "random-llama.json")
    assert axes.meta["limit"] == 2 and axes.meta["profile"]["n_calibration"] == 2
    saved = json.loads((tmp_path / "results" / "random-llama.json").read_text())["baseline"]
    assert saved["limit"] == 2 and saved["profile"] == limited
    assert not (tmp_path / "paper").exists()  # a partial run writes no paper numbers
    runs = sorted(p.name for p in (tmp_path / "runs" / "random-llama").iterdir())
    assert all(limited in name for name in runs)
    assert main(["axes", "list", *root]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split()[5] == "limit" and listed[1].split()[5] == "2"  # axes list shows it too

    # a full fingerprint does not rest on limited axes; a full calibration runs in folders of its own
    assert main(["fingerprint", *MODEL, *root]) == 2
    assert "calibrated with --limit 2" in capsys.readouterr().err
    assert main(["calibrate", *MODEL, *root]) == 0
    assert "limit" not in AxisSet.load(tmp_path / "axes" / "random-llama.json").meta
    assert main(["fingerprint", *MODEL, *root]) == 0
    saved = json.loads((tmp_path / "results" / "random-llama.json").read_text())["baseline"]
    assert "limit" not in saved and saved["profile"] == "smoke" and "LIMITED" not in capsys.readouterr().out
    full = {p.name for p in (tmp_path / "runs" / "random-llama").iterdir()} - set(runs)
    assert full and not any("+" in name for name in full)

    assert main(["calibrate", *MODEL, *root, "--limit", "50"]) == 0  # caps nothing: a full run, unmarked
    assert "limit" not in AxisSet.load(tmp_path / "axes" / "random-llama.json").meta
    assert "--limit 50 caps nothing in the smoke profile: a full run" in capsys.readouterr().err


def test_samples_log_every_answer_with_its_projection(tmp_path, axes_file):
    root = ["--output-path", str(tmp_path), "--axes-file", str(axes_file)]
    assert main(["fingerprint", *MODEL, *root, "--seed", "3", "--log-samples"]) == 0
    saved = json.loads((tmp_path / "results" / "random-llama.json").read_text())["baseline"]
    assert saved["seeds"] == [3]
    rows = _lines(tmp_path / "results" / "random-llama.samples.jsonl")
    assert len(rows) == 6 and all(SAMPLE_FIELDS | {"seed", "q_index"} == set(r) for r in rows)  # smoke: 6
    assert {r["seed"] for r in rows} == {3} and all(r["system"] is None for r in rows)
    assert sum(r["cut"] for r in rows) == saved["n_cut"]
    axes = AxisSet.load(axes_file)
    for axis, stats in saved["fingerprint"].items():  # the table is the mean of the logged projections,
        values = [r["projection"][axis] for r in rows if r["projection"][axis] is not None]
        i = axes.index(axis)  # in the axis's unit: the log's normalised one, or within-pole spreads
        to_unit = axes.scales[i] / axes.spreads[i] if stats["unit"] == "spreads" else 1.0
        assert np.mean(values) * to_unit == pytest.approx(stats["mean"])
        assert all(
            (axis in r["clipped"]) == (abs(r["projection"][axis]) >= 1) for r in rows if not r["empty"]
        )

    assert (
        main(["calibrate", *MODEL, "--output-path", str(tmp_path), "--axes", "warm_cold", "--log-samples"])
        == 0
    )
    rows = _lines(tmp_path / "axes" / "random-llama.samples.jsonl")
    splits = {(r["split"], r["pole"]) for r in rows}
    assert splits == {
        ("calibration", 1),
        ("calibration", -1),
        ("evaluation", 1),
        ("evaluation", -1),
        ("neutral", 0),
    }
    assert len(rows) == 2 * (4 + 3) + 4  # smoke: 4 calibration and 3 evaluation questions per pole, neutral
    assert all(r["system"] for r in rows if r["pole"] != 0) and all(r["axis"] == "warm_cold" for r in rows)


def test_verbosity_sets_what_reaches_stderr(tmp_path, capsys):
    argv = ["calibrate", *MODEL, "--axes", "warm_cold", "--output-path", str(tmp_path)]
    assert main([*argv, "--verbosity", "WARNING"]) == 0
    out, err = capsys.readouterr()
    assert "pairwise_accuracy" in out and err == ""
    assert main(argv) == 0  # INFO: where files went
    assert capsys.readouterr().err.startswith("axes written to ")
    assert main([*argv, "--verbosity", "debug"]) == 0
    assert "styleprobe: debug: loading random:llama (model arguments none)" in capsys.readouterr().err


def test_reproduce_folds_output_path_limit_seed_and_model_args_into_the_notebooks(tmp_path, capsys):
    argv = [
        "reproduce",
        "--dry-run",
        "--models",
        "random:qwen2",
        "--profile",
        "quick",
        "--output-path",
        str(tmp_path),
    ]
    assert main([*argv, "--limit", "2", "--seed", "5", "--model-args", "attn_implementation=eager"]) == 0
    found = (re.search(r"notebooks/(\d\d)_", line) for line in capsys.readouterr().out.splitlines())
    lines = {m.group(1): m.string for m in found}
    sizes = "{'n_calibration': 2, 'n_evaluation': 2, 'n_baseline': 2, 'n_benchmark': 2}"
    for nb in ("01", "02", "09"):
        assert f"-p root {tmp_path.resolve()}" in lines[nb] and "-p profile quick" in lines[nb]
        assert f"-p sizes {sizes}" in lines[nb]
        assert f" {tmp_path / 'runs' / 'random-qwen2' / 'notebooks'}/{nb}_" in lines[nb]  # the executed copy
    assert "-p seed 5" in lines["01"] and "seed 5" not in lines["02"]
    assert "-p n_scenarios 2" in lines["09"] and "-p n_controls 2" in lines["09"]  # quick: 8 and 4
    assert f"-p root {tmp_path.resolve()}" in lines["10"] and "sizes" not in lines["10"]  # takes no sizes
    assert "-p model_args {'attn_implementation': 'eager'}" in lines["01"] and "model_args" not in lines["10"]


def test_a_notebook_s_model_args_reach_from_pretrained(tmp_path):
    ws = Workspace.open(
        "random:llama", profile="smoke", root=tmp_path, model_args={"attn_implementation": "eager"}
    )
    assert ws.model.model.config._attn_implementation == "eager"


def test_the_makefile_flags_still_plan_the_nbval_notebooks(tmp_path, capsys):
    """`make test-notebooks` prepares the notebooks with --out-dir and -p root; those keep working."""
    argv = ["reproduce", "--models", "random:qwen2", "--notebooks", "01", "02", "--profile", "smoke"]
    argv += ["--prepare-only", "--out-dir", str(tmp_path / "nb"), "-p", "root", str(tmp_path)]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == [
        "01_calibration.ipynb",
        "02_baseline.ipynb",
    ]
    assert "running: papermill notebooks/01_calibration.py" in capsys.readouterr().out


# -- the Python API ----------------------------------------------------------------------------------------
def test_the_api_snippet_runs(tmp_path, monkeypatch):
    """The five lines of styleprobe's docstring (the README's API snippet) on a tiny model."""
    snippet = textwrap.dedent(styleprobe.__doc__.split("radar chart):\n\n")[1].split("\n\nThe names")[0])
    assert snippet.startswith("import styleprobe\n") and len(snippet.splitlines()) == 5
    shipped = 'Workspace.open("smollm2-135m-instruct")'
    tiny = f'Workspace.open("random:qwen2", profile="smoke", root={str(tmp_path)!r})'
    assert shipped in snippet
    assert (
        main(
            [
                "calibrate",
                "--model",
                "random:qwen2",
                "--profile",
                "smoke",
                "--quiet",
                "--output-path",
                str(tmp_path),
            ]
        )
        == 0
    )
    monkeypatch.chdir(tmp_path)
    exec(snippet.replace(shipped, tiny), {})
    assert (tmp_path / "fingerprint.png").stat().st_size > 0


def test_import_styleprobe_stays_light():
    code = "import styleprobe, sys; print(styleprobe.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [styleprobe.__version__, "False"]
    assert styleprobe.Workspace.__name__ == "Workspace" and callable(styleprobe.fingerprint)
    with pytest.raises(AttributeError):
        styleprobe.no_such_name  # noqa: B018
