"""Every CLI command against a folder of broken files and bad options: exit status 2, one line on stderr that
names the culprit, no traceback, and nothing written."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from styleprobe.apps.cli import main
from styleprobe.engine.extraction import Aggregation
from styleprobe.protocol.axes import AxisSet

MODEL = ["--model", "random:llama", "--quiet"]
STUDY_NPZ = (
    Path(__file__).parent / "data" / "mood_axis" / "article" / "axis_stability" / "qwen_7b_set_A_axes.npz"
)


def _axes(model_id: str = "random-llama", hidden: int = 64) -> AxisSet:
    vectors = np.random.default_rng(0).normal(size=(2, hidden))
    return AxisSet(
        names=["warm_cold", "verbose_concise"],
        poles=[("warm", "cold"), ("verbose", "concise")],
        vectors=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
        centres=np.zeros(2),
        scales=np.ones(2),
        model_id=model_id,
        hidden_size=hidden,
        layers=[2, 3, 4, 5],
        aggregation=Aggregation().to_dict(),
    )


def _edit_json(path: Path, **changes) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """The fixture folder: one broken file per way a user's file can be wrong, beside a few good ones."""
    root = tmp_path_factory.mktemp("broken")
    (root / "empty.gguf").write_bytes(b"")
    (root / "zeros.gguf").write_bytes(bytes(4096))
    (root / "not-gguf.gguf").write_bytes(b"GGUX" + bytes(200))
    _axes().save(root / "good.json")
    for name, changes in {
        "bad-aggregation": {"aggregation": {"layers": [-1, -2], "layer_weights": [1.0], "decay": 0.9}},
        "bad-decay": {"aggregation": {"layers": [-1], "layer_weights": [1.0], "decay": 2.0}},
        "zero-scale": {"scales": [0.0, 1.0]},
        "nan-centre": {"centres": [float("nan"), 0.0]},
    }.items():
        _axes().save(root / f"{name}.json")
        _edit_json(root / f"{name}.json", **changes)
    _axes().save(root / "truncated.json")
    text = (root / "truncated.json").read_text()
    (root / "truncated.json").write_text(text[: len(text) // 2])
    _axes(model_id="someone-else").save(root / "other-model.json")
    (root / "qwen_7b_set_A_axes.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    (root / "study").mkdir()
    for name in ("qwen_7b_set_A_axes.npz", "other_set_A_axes.npz"):  # the study's real file, and a copy
        shutil.copy(STUDY_NPZ, root / "study" / name)
    (root / "good.jsonl").write_text(json.dumps({"question": "What is rain?", "response": "Water."}) + "\n")
    # past the 4,096 tokens of random:llama's context (one token per byte), which project must not read
    (root / "too-long.jsonl").write_text(json.dumps({"question": "Q?", "response": "word " * 1000}) + "\n")
    (root / "all-bad.jsonl").write_text('{"question": "no response"}\n[1, 2]\n')
    (root / "old-results.json").write_text(
        json.dumps({"baseline": {"per_question": {"0": {"warm_cold": 0.1}}}})
    )
    (root / "a-folder").mkdir()
    manifest = root / "runs" / "random-llama" / "calibration-A-instructed-smoke-warm_cold" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"settings": {"model_id": "random-ll')
    for lock in root.glob("*.lock"):  # a user's files come without the lock files that saving them made
        lock.unlink()
    return root


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# (case, argv with {d} for the fixture folder, what the message must name)
CASES = [
    ("batch size 0", "calibrate {m} --batch-size 0", "--batch-size"),
    ("batch size -1", "project {d}/good.jsonl {m} --batch-size -1", "--batch-size"),
    ("dtype", "calibrate {m} --dtype float8", "float8"),
    ("device", "calibrate {m} --device tpu", "tpu"),
    ("unknown random arch", "calibrate --model random:nosuch --quiet", "nosuch"),
    ("empty gguf", "calibrate --model {d}/empty.gguf --quiet", "empty.gguf"),
    ("zero-filled gguf", "calibrate --model {d}/zeros.gguf --quiet", "zeros.gguf"),
    ("not a gguf", "calibrate --model {d}/not-gguf.gguf --quiet", "not-gguf.gguf"),
    ("unknown axis", "calibrate {m} --axes nosuch", "nosuch"),
    ("missing axes file", "fingerprint {m} --axes-file {d}/nosuch.json", "nosuch.json"),
    ("system prompt without out", "fingerprint {m} --system 'Be brief.'", "--out"),
    ("unknown context", "calibrate {m} --context sideways", "sideways"),
    ("bad aggregation", "project {d}/good.jsonl {m} --axes-file {d}/bad-aggregation.json", "bad-aggregation"),
    ("bad decay", "project {d}/good.jsonl {m} --axes-file {d}/bad-decay.json", "bad-decay"),
    ("zero scale", "project {d}/good.jsonl {m} --axes-file {d}/zero-scale.json", "zero-scale"),
    ("nan centre", "project {d}/good.jsonl {m} --axes-file {d}/nan-centre.json", "nan-centre"),
    ("truncated axes", "project {d}/good.jsonl {m} --axes-file {d}/truncated.json", "truncated"),
    ("axes of another model", "project {d}/good.jsonl {m} --axes-file {d}/other-model.json", "someone-else"),
    ("input is a folder", "project {d}/a-folder {m}", "a-folder"),
    ("output is a folder", "project {d}/good.jsonl {m} --output {d}/a-folder", "a-folder"),  # the old flag
    ("output path is a file", "calibrate {m} --output-path {d}/good.jsonl", "good.jsonl"),
    ("model args not key=value", "calibrate {m} --model-args attn_implementation", "attn_implementation"),
    ("model args repeat an option", "calibrate {m} --model-args torch_dtype=float16", "--dtype"),
    ("model args unknown key", "calibrate {m} --profile smoke --model-args no_such_key=1", "no_such_key"),
    ("limit 0", "fingerprint {m} --limit 0", "--limit"),
    ("seed and seeds", "fingerprint {m} --seed 1 --seeds 0 1", "--seeds"),
    ("seed past 2**32 - 1", "calibrate {m} --profile smoke --seed 4294967296", "4294967296"),
    (
        "fingerprint seed past 2**32 - 1",
        "fingerprint {m} --axes-file {d}/good.json --seed 4294967296",
        "4294967296",
    ),
    ("seeds past 2**32 - 1", "fingerprint {m} --axes-file {d}/good.json --seeds 0 4294967296", "4294967296"),
    ("reproduce seed past 2**32 - 1", "reproduce --dry-run --notebooks 01 --seed 4294967296", "4294967296"),
    ("gpus per model -1 without --ray", "reproduce --dry-run --gpus-per-model -1", "--gpus-per-model"),
    ("verbosity", "calibrate {m} --verbosity LOUD", "LOUD"),
    ("two output roots", "reproduce --dry-run --output-path {d}/x -p root {d}/y", "-p root"),
    ("export without output path", "axes export-gguf {d}/good.json --axis warm_cold", "--output-path"),
    ("no valid line", "project {d}/all-bad.jsonl {m} --axes-file {d}/good.json", "all-bad.jsonl"),
    ("line past the context", "project {d}/too-long.jsonl {m} --axes-file {d}/good.json", "too-long.jsonl"),
    ("compare not a results file", "compare {d}/good.jsonl {d}/good.jsonl", "good.jsonl"),
    (
        "compare an older results file",
        "compare {d}/old-results.json {d}/old-results.json",
        "old-results.json",
    ),
    ("compare n-boot 0", "compare {d}/good.json {d}/good.json --n-boot 0", "--n-boot"),
    ("compare threshold nan", "compare {d}/good.json {d}/good.json --threshold nan", "--threshold"),
    ("compare a folder", "compare {d}/a-folder {d}/good.json", "a-folder"),
    ("bad yaml parameter", "reproduce --dry-run -p sizes [unclosed", "sizes"),
    (
        "yaml alias in a parameter",
        "reproduce --dry-run --notebooks 01 -p model_args '{{a: &x [1], b: *x}}'",
        "aliases",
    ),
    ("unknown notebook", "reproduce --dry-run --notebooks 99", "99"),
    ("misspelt size", "reproduce --dry-run --notebooks 02 -p sizes '{{n_baselin: 3}}'", "n_baselin"),
    ("zero size", "reproduce --dry-run --notebooks 02 -p sizes '{{n_baseline: 0}}'", "n_baseline"),
    ("misspelt parameter", "reproduce --dry-run --notebooks 02 -p sedes [1]", "sedes"),
    (
        "truncated manifest",
        "calibrate {m} --output-path {d} --axes warm_cold --profile smoke",
        "manifest.json",
    ),
    (
        "corrupt npz",
        "axes import-study {d}/qwen_7b_set_A_axes.npz --output-path {d}/out.json",
        "qwen_7b_set_A_axes",
    ),
    (
        "export negative layer",
        "axes export-gguf {d}/good.json --axis warm_cold --output-path {d}/v.gguf --layers -5",
        "-5",
    ),
    (
        "export a layer the axes' model lacks",
        "axes export-gguf {d}/good.json --axis warm_cold --output-path {d}/v.gguf --layers 5 99999",
        "99999",
    ),
    (
        "import-study n-layers not the study model's",
        "axes import-study {d}/study/qwen_7b_set_A_axes.npz --n-layers 999999999 --output-path {d}/out.json",
        "999999999",
    ),
    (
        "import-study n-layers below the 4 read",
        "axes import-study {d}/study/other_set_A_axes.npz --model-id a/b --n-layers 2 --output-path {d}/o",
        "n_layers",
    ),
    (
        "export nan strength",
        "axes export-gguf {d}/good.json --axis warm_cold --output-path {d}/v.gguf --strength nan",
        "nan",
    ),
    (
        "export unknown axis",
        "axes export-gguf {d}/good.json --axis nosuch --output-path {d}/v.gguf",
        "nosuch",
    ),
]


@pytest.mark.parametrize(("argv", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, names, broken, cache, monkeypatch, capsys):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bad-input"))
    monkeypatch.chdir(broken)
    before = _files(broken)
    args = shlex.split(argv.format(d=broken, m=" ".join(MODEL)))
    if "--output-path" not in args and args[0] in ("calibrate", "fingerprint", "project"):
        args += ["--output-path", str(broken)]
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert "Traceback" not in err, err
    # one error line; before it, only the `file:line: skipped: reason` reports of `project`
    *skipped, message = err.splitlines()
    assert all(": skipped: " in line for line in skipped), err
    assert message.startswith("styleprobe") and "error:" in message and names in message, err
    assert _files(broken) == before, "a failed command left files behind"


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML of a few hundred characters whose last list holds width**levels strings when expanded."""
    lists = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lists += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "{" + ", ".join(lists) + "}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [(_alias_bomb(), "aliases"), ("[" * 5000, "nested too deeply"), ("1" * 10_001, "at most 10,000")],
    ids=["alias bomb", "deep nesting", "long value"],
)
def test_a_parameter_is_read_within_bounds(value, reason):
    """-p values are YAML: an alias bomb, a nesting past the recursion limit or an overlong value is refused
    in one line at once (the bomb used to hang `reproduce --dry-run` with growing memory)."""
    from styleprobe.apps.cli import parameter_value
    from styleprobe.errors import UsageError

    with pytest.raises(UsageError, match=reason) as err:
        parameter_value("model_args", value)
    assert "\n" not in str(err.value) and "model_args" in str(err.value)


def test_every_user_error_class_is_reported_by_the_cli():
    """The CLI prints StyleprobeError as one line; every library error meant for users derives from it."""
    from styleprobe.analyses.judge import core as judge
    from styleprobe.apps import reproduce
    from styleprobe.apps.cli import KNOWN_ERRORS
    from styleprobe.engine import extraction, models, store
    from styleprobe.errors import StyleprobeError
    from styleprobe.formats import mood_axis
    from styleprobe.protocol import axes
    from styleprobe.protocol import spec as data
    from styleprobe.report import paper, results

    errors = [
        axes.AxesError,
        data.DataError,
        extraction.NonFiniteStatesError,
        judge.JudgeError,
        models.ModelLoadError,
        mood_axis.StudyFileError,
        paper.PaperError,
        reproduce.NotebookFailed,
        results.ResultsError,
        store.RunMismatchError,
        store.WriteError,
    ]
    assert all(issubclass(e, StyleprobeError) for e in errors) and StyleprobeError in KNOWN_ERRORS


def test_axes_list_skips_a_broken_file_with_one_warning_line(broken, capsys):
    before = _files(broken)
    assert main(["axes", "list", "--axes-dir", str(broken)]) == 0  # listing is not refused for one bad file
    out, err = capsys.readouterr()
    notice, err = err.split("\n", 1)  # the old flag still works, with a notice
    assert notice == "styleprobe: warning: --axes-dir will be removed in the next release; use --output-path"
    assert "good.json" in out and "zero-scale.json" not in out
    assert all(line.startswith("styleprobe: warning: skipped: ") for line in err.splitlines())
    assert "zero-scale.json: scales must be finite and > 0" in err and "Traceback" not in err
    assert _files(broken) == before


def test_a_line_past_the_model_context_is_skipped_before_any_forward_pass(
    broken, tmp_path, cache, monkeypatch, capsys
):
    """`project` refuses a line whose conversation and response exceed the model's context, as it does a
    malformed line: reported as `file:line: skipped: reason`, left out, exit status 1; the model never reads
    it (a 1 MB response used to run without bound)."""
    from styleprobe.engine import pipeline

    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bad-input"))
    src = tmp_path / "long.jsonl"
    responses = ["Fine.", "word " * 1000, "Also fine."]
    src.write_text("".join(json.dumps({"question": "Q?", "response": r}) + "\n" for r in responses))
    read, extract = [], pipeline.extract

    def recording(handle, seqs, *args, **kwargs):
        read.extend(len(s.ids) for s in seqs)
        return extract(handle, seqs, *args, **kwargs)

    monkeypatch.setattr(pipeline, "extract", recording)
    status = main(["project", str(src), *MODEL, "--axes-file", str(broken / "good.json")])
    out, err = capsys.readouterr()
    assert status == 1, err
    assert [json.loads(line)["response"] for line in out.splitlines()] == ["Fine.", "Also fine."]
    skipped, warning = err.strip().splitlines()
    assert skipped.startswith(f"{src}:2: skipped: 5,0") and "the model's context of 4,096" in skipped, err
    assert warning == "styleprobe: warning: 1 of 3 lines skipped"
    assert read and max(read) <= 4096


@pytest.fixture(scope="module")
def populated(tmp_path_factory, cache) -> Path:
    """An output root after a fingerprint: axes, runs, results, paper numbers and the radar figure."""
    root = tmp_path_factory.mktemp("populated")
    _axes().save(root / "axes" / "random-llama.json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STYLEPROBE_CACHE", str(cache / "bad-input"))
        assert main(["fingerprint", *MODEL, "--profile", "smoke", "--output-path", str(root)]) == 0
    return root


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_every_file_whole(
    populated, tmp_path, cache, monkeypatch, capsys
):
    """The disk fills up as the radar is saved, as in a fingerprint run whose batches were all done: one
    line naming the file, exit status 2, no temporary file left, the earlier figure untouched. Every
    output goes through `store.atomic_write_bytes`, where an OSError becomes this one line."""
    from styleprobe.engine import store
    from styleprobe.report import plots

    root = shutil.copytree(populated, tmp_path / "root")
    png = root / "figures" / "random-llama" / "fingerprint_radar.png"
    before, figure = _files(root), png.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def filling(path: Path, data: bytes) -> None:  # from the figure on, nothing fits on the disk
        monkeypatch.setattr(store.os, "fsync", no_space)
        store.atomic_write_bytes(path, data)

    monkeypatch.setattr(plots, "atomic_write_bytes", filling)
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bad-input"))
    status = main(["fingerprint", *MODEL, "--profile", "smoke", "--output-path", str(root)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err == f"styleprobe: error: cannot write {png}: No space left on device", err
    assert _files(root) == before and png.read_bytes() == figure
    assert json.loads((root / "results" / "random-llama.json").read_text())["baseline"]


RUN_COMMANDS = """
import contextlib, io, json, sys, traceback
from styleprobe.apps.cli import main

outcomes = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except BaseException:
            status = None
            traceback.print_exc()
    outcomes.append([status, err.getvalue()])
print(json.dumps(outcomes))
"""


def _run_read_only(folder: Path, commands: list[list[str]], env: dict) -> list[tuple[int | None, str]]:
    """(exit status, stderr) of each command, run in one process while `folder` is read-only: for root,
    whom file permissions do not stop, a read-only bind mount in a mount namespace of the process's own;
    for anyone else, the write permission taken away."""
    argv = [sys.executable, "-c", RUN_COMMANDS, json.dumps(commands)]
    if os.geteuid() == 0:
        mount = ["unshare", "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && shift && exec "$@"']
        if not shutil.which("unshare") or subprocess.run([*mount, str(folder), "--", "true"]).returncode:
            pytest.skip("root cannot mount a folder read-only here (unshare --mount, mount --bind -o ro)")
        done = subprocess.run([*mount, str(folder), "--", *argv], env=env, capture_output=True, text=True)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for path, mode in modes.items():
            path.chmod(mode & ~0o222)
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(o) for o in json.loads(done.stdout.splitlines()[-1])]


def test_a_read_only_output_root_is_refused_before_any_work_and_can_still_be_read(
    broken, populated, tmp_path, cache
):
    """Writing into a read-only root, empty or populated by an earlier run, is one line naming it, before
    any work (no "calibrating first"); reading from it (its axes, by `project` and `axes list`) needs no
    lock file there and works."""
    ro = tmp_path / "ro"
    (ro / "empty").mkdir(parents=True)
    full = shutil.copytree(populated, ro / "populated")
    for lock in full.rglob("*.lock"):  # as a copy of the results would come
        lock.unlink()
    fingerprint = ["fingerprint", *MODEL, "--profile", "smoke", "--output-path"]
    commands = [
        [*fingerprint, str(ro / "empty")],
        [*fingerprint, str(full)],
        ["project", str(broken / "good.jsonl"), *MODEL, "--output-path", str(full)],
        ["axes", "list", "--output-path", str(full)],
        ["reproduce", "--models", "random:llama", "--profile", "smoke", "--output-path", str(ro / "empty")],
    ]
    env = {**os.environ, "STYLEPROBE_CACHE": str(cache / "bad-input"), "STYLEPROBE_TEST_MODELS": "1"}
    before = _files(ro)
    empty, populated_, project, listing, reproduce = _run_read_only(ro, commands, env)
    for (status, err), root in ((empty, ro / "empty"), (populated_, full), (reproduce, ro / "empty")):
        assert status == 2 and err.count("\n") == 1, err
        assert err.startswith(f"styleprobe: error: cannot write {root}/runs: ") and "read-only" in err, err
    assert project[0] == 0 and listing[0] == 0, (project, listing)
    assert _files(ro) == before


def test_reading_an_axes_file_leaves_no_lock_file_beside_it(broken, tmp_path, cache, monkeypatch, capsys):
    """An axes file given as input is only read: nothing appears in its folder, for a good file as for the
    bad ones of CASES (the fixture's files have no lock files either)."""
    inputs = tmp_path / "inputs"
    _axes().save(inputs / "axes.json")
    (inputs / "axes.lock").unlink()  # copied from elsewhere, without the lock that saving it made
    before = _files(inputs)
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bad-input"))
    status = main(["project", str(broken / "good.jsonl"), *MODEL, "--axes-file", str(inputs / "axes.json")])
    assert status == 0, capsys.readouterr().err
    assert _files(inputs) == before


def test_a_gguf_rewritten_in_place_with_its_size_and_mtime_gets_a_new_cache_key(tmp_path, monkeypatch):
    """`cp -p` of a file of the same size over a GGUF keeps its inode, size and mtime; the key of its
    dequantised copy must follow the new content all the same."""
    from styleprobe.engine.gguf import _file_key

    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF one")
    first, old = _file_key(path), path.stat()
    path.write_bytes(b"GGUF two")
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    while path.stat().st_ctime_ns == old.st_ctime_ns:  # rewritten within the clock tick of the first write
        time.sleep(0.001)
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = path.stat()
    assert (new.st_ino, new.st_size, new.st_mtime_ns) == (old.st_ino, old.st_size, old.st_mtime_ns)
    assert first == hashlib.sha256(b"GGUF one").hexdigest()[:16]
    assert _file_key(path) == hashlib.sha256(b"GGUF two").hexdigest()[:16]
