"""The benchmark script runs end to end on a tiny model and its two ways agree (the real numbers live in
benchmarks/RESULTS.md, not in a test)."""

import importlib.util
import json
import sys

from styleprobe.paths import NOTEBOOKS_DIR


def test_benchmark_smoke(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("STYLEPROBE_CACHE", str(cache / "bench"))
    spec = importlib.util.spec_from_file_location(
        "bench", NOTEBOOKS_DIR.parent / "benchmarks" / "bench_pipeline.py"
    )
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
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
