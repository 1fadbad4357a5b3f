"""The benchmark script runs end to end on a tiny model and its two ways agree (the real numbers live in
benchmarks/RESULTS.md, not in a test)."""

import importlib.util
import json
import sys

from styleprobe.paths import NOTEBOOKS_DIR


def _script(name: str, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench", NOTEBOOKS_DIR.parent / "benchmarks" / name)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_smoke(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bench"))
    bench = _script("bench_pipeline.py", monkeypatch)
    out = tmp_path / "bench.json"
    args = [
        "--model",
        "random:llama",
        "--questions",
        "1",
        "--new-tokens",
        "12",
        "--reference-limit",
        "4",
        "--out",
        str(out),
    ]
    assert bench.main(args) == 0  # non-zero when the reference and our pipeline disagree
    result = json.loads(out.read_text())["workloads"]["calibration"]
    assert result["agreement"]["ok"] and result["agreement"]["identical_share"] == 1.0
    assert result["ways"]["ours_generate_online"]["tokens_per_s"] > 0
    assert result["agreement"]["online_vs_reforward_max_abs"] < 1e-3


def test_kv_cache_benchmark_smoke(tmp_path, cache, monkeypatch):
    """Both caches decode the same tokens (the script fails otherwise) and each way is timed."""
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bench"))
    monkeypatch.syspath_prepend(str(NOTEBOOKS_DIR.parent / "benchmarks"))  # it imports bench_pipeline
    bench = _script("bench_kv_cache.py", monkeypatch)
    out = tmp_path / "kv.json"
    argv = ["--model", "random:llama", "--answers", "6", "--new-tokens", "10", "--repeats", "2"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["identical_tokens"] and result["generated_tokens"] > 0
    assert result["cache_layer_classes"] == {
        "preallocated": ["PreallocatedLayer"],
        "dynamic": ["DynamicLayer"],
    }
    assert all(len(r) == 2 and min(r) > 0 for r in result["tokens_per_s"].values())


def test_dtype_benchmark_smoke(tmp_path, cache, monkeypatch):
    """Both dtypes answer and read; axes from the two readings of the same answers are compared."""
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bench"))
    monkeypatch.syspath_prepend(str(NOTEBOOKS_DIR.parent / "benchmarks"))  # it imports bench_pipeline
    bench = _script("bench_dtype.py", monkeypatch)
    out = tmp_path / "dtype.json"
    assert (
        bench.main(["--model", "random:llama", "--questions", "3", "--new-tokens", "8", "--out", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert set(result["decode_tokens_per_s"]) == {"float32", "bfloat16"}
    assert all(
        r > 0 for r in [*result["decode_tokens_per_s"].values(), *result["read_tokens_per_s"].values()]
    )
    cosines = result["axis_cosine_bf16_vs_float32_reading"]
    assert len(cosines) == 7 and all(-1 - 1e-6 <= c <= 1 + 1e-6 for c in cosines.values())
    assert all(sd > 0 for sd in result["within_pole_sd_normalised"].values())
