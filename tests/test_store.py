import json
import os
import stat

import numpy as np
import pytest
from safetensors.numpy import load, save

from styleprobe.engine.store import (
    RunMismatchError,
    Stage,
    atomic_directory,
    atomic_write_text,
    build_once,
    canonical_safetensors,
    read_manifest,
)


def test_atomic_writes_get_the_permissions_of_an_ordinary_new_file(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_text(path, "{}")
    with open(tmp_path / "plain.json", "w") as fh:  # what the umask gives an ordinary new file
        fh.write("{}")
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain.json").st_mode)
    assert path.read_text() == "{}" and not list(tmp_path.glob(".*.tmp"))


def test_a_directory_finished_by_another_process_is_kept(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as mine:
        (mine / "weights").write_text("mine")
        other = tmp_path / "other"  # another process finishes first and renames its folder into place
        other.mkdir()
        (other / "weights").write_text("theirs")
        other.rename(target)
    assert (target / "weights").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # our partial folder is gone


def test_build_once_builds_a_folder_once(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "config.json").write_text("{}")

    target = tmp_path / "cache" / "thing"
    assert build_once(target, build) == target and build_once(target, build) == target
    assert len(calls) == 1 and (target / "config.json").exists()
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "failed") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("build failed")
    assert not (tmp_path / "failed").exists() and not list(tmp_path.glob(".failed*"))


def test_read_manifest(tmp_path):
    assert read_manifest(tmp_path / "manifest.json") is None
    Stage(tmp_path, {"seed": 1, "layers": (1, 2)})
    assert read_manifest(tmp_path / "manifest.json") == {"settings": {"seed": 1, "layers": [1, 2]}}
    Stage(tmp_path, {"seed": 1, "layers": [1, 2]})  # the same settings reopen the stage
    with pytest.raises(RunMismatchError, match=r"other settings \(seed\)"):
        Stage(tmp_path, {"seed": 2, "layers": [1, 2]})


def test_a_stage_from_before_dtype_was_recorded_reopens_but_a_new_dtype_does_not(tmp_path):
    Stage(tmp_path / "old", {"seed": 1})  # as earlier versions wrote it
    Stage(tmp_path / "old", {"seed": 1, "dtype": "float32"})
    Stage(tmp_path / "new", {"seed": 1, "dtype": "float32"})
    with pytest.raises(RunMismatchError, match=r"other settings \(dtype\)"):
        Stage(tmp_path / "new", {"seed": 1, "dtype": "bfloat16"})


@pytest.mark.parametrize("text", ["", '{"settings": {"seed"', "[1, 2]", '{"plan": 1}', "\xff\xfe"])
def test_a_corrupt_manifest_is_a_one_line_error_naming_it(tmp_path, text):
    manifest = tmp_path / "stage" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_bytes(text.encode("latin-1"))
    for call in (lambda: Stage(manifest.parent, {"seed": 1}), lambda: read_manifest(manifest)):
        with pytest.raises(RunMismatchError) as err:
            call()
        assert "\n" not in str(err.value) and str(manifest) in str(err.value)
    assert manifest.read_bytes() == text.encode("latin-1")  # left as it was


def test_canonical_safetensors_sorts_the_header_and_keeps_the_content():
    tensors = {"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), dtype=np.float64)}
    meta = {"model_id": "org/model-ü", "format": "x", "z": "1", "c": "2"}
    blobs = {canonical_safetensors(save(tensors, metadata=meta)) for _ in range(20)}
    assert len(blobs) == 1  # safetensors alone writes the metadata in a varying order
    blob = blobs.pop()
    n = int.from_bytes(blob[:8], "little")
    assert n % 8 == 0 and list(json.loads(blob[8 : 8 + n])["__metadata__"]) == sorted(meta)
    back = load(blob)
    assert set(back) == {"a", "b"} and all(np.array_equal(back[k], v) for k, v in tensors.items())


@pytest.mark.parametrize("text", ['{"model": "m", "calib', "[]", "\xff"])
def test_a_corrupt_results_file_is_a_one_line_error_and_is_kept(tmp_path, text):
    from styleprobe.errors import StyleprobeError
    from styleprobe.report.results import ResultsError, all_results, load_results, update_results

    path = tmp_path / "m.json"
    path.write_bytes(text.encode("latin-1"))
    for call in (
        lambda: load_results("m", tmp_path),
        lambda: update_results("m", "drift", {"a": 1}, tmp_path),
        lambda: all_results(tmp_path),
    ):
        with pytest.raises(ResultsError) as err:
            call()
        assert "\n" not in str(err.value) and str(path) in str(err.value)
        assert isinstance(err.value, StyleprobeError)  # the command line prints it as one line
    assert path.read_bytes() == text.encode("latin-1")  # not overwritten with one section


def test_results_sections_are_replaced_one_at_a_time(tmp_path):
    from styleprobe.report.results import load_results, update_results

    update_results("m", "a", {"x": np.float32(1.5), "y": float("nan")}, tmp_path)
    update_results("m", "b", [1, 2], tmp_path)
    update_results("m", "a", {"x": 2}, tmp_path)
    assert load_results("m", tmp_path) == {"model": "m", "a": {"x": 2}, "b": [1, 2]}
