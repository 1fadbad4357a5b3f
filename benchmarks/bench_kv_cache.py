"""Decoding throughput with the engine's preallocated KV cache against transformers' concatenating one.

`generate` builds its cache with `new_cache(model, capacity)`: full-attention layers write each step into a
buffer allocated once. The `dynamic` way is the same call without the capacity, i.e. transformers'
`DynamicCache`, whose layers concatenate, so every decoding step copies the whole cache. The two ways run
alternately (`--repeats` each, after a warm-up) on one sampled calibration workload (instructed prompts,
both poles of every axis, the `quick` token budget, states captured), since tokens/s on a shared CPU drifts
from run to run. Both ways must give identical tokens, or the script exits with status 1.

    .venv/bin/python benchmarks/bench_kv_cache.py --threads 2 --out benchmarks/results-cpu-kv-cache.json
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import statistics
import time
from pathlib import Path
from unittest import mock

import bench_pipeline as bp
import torch
import transformers

from styleprobe.engine import compat
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.generation import SamplingConfig, generate
from styleprobe.engine.models import load_model
from styleprobe.engine.store import write_json
from styleprobe.protocol.profiles import PROFILES
from styleprobe.protocol.spec import load_axes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="as for `styleprobe --model`")
    p.add_argument("--answers", type=int, default=128, help="answers per run, one batch (default 128)")
    p.add_argument("--new-tokens", type=int, default=PROFILES["quick"].calibration_tokens)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each way, alternating")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument("--out", type=Path, help="JSON results (default: print only)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    handle = load_model(args.model)
    per_question = 2 * len(load_axes())  # the pipeline benchmark's calibration workload, question-major
    n_questions = math.ceil(args.answers / per_question)
    work = argparse.Namespace(workload="calibration", questions=n_questions, new_tokens=args.new_tokens)
    ids = bp.workloads(handle, work)[0].prompts[: args.answers]
    cfg, keys = SamplingConfig(args.new_tokens), list(range(len(ids)))
    capture = (Aggregation().absolute_layers(handle.n_layers), 0.9)

    def run(way: str) -> tuple[float, list[list[int]], list[str]]:
        made = []  # the caches generate builds, to record which layer classes each way really used

        def cache_for(model: torch.nn.Module, capacity: int):
            made.append(compat.new_cache(model, capacity if way == "preallocated" else None))
            return made[-1]

        with mock.patch("styleprobe.engine.generation.new_cache", cache_for):
            start = time.perf_counter()
            gens, _ = generate(handle, ids, cfg, keys, capture=capture)
            wall = time.perf_counter() - start
        return (
            wall,
            [g.response_ids for g in gens],
            sorted({type(x).__name__ for c in made for x in c.layers}),
        )

    generate(handle, ids[:4], SamplingConfig(4), keys[:4], capture=capture)  # warm-up
    walls: dict[str, list[float]] = {"preallocated": [], "dynamic": []}
    tokens: dict[str, list[list[int]]] = {}
    layer_classes: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for way, times in walls.items():
            wall, tokens[way], layer_classes[way] = run(way)
            times.append(wall)
    n_tokens = sum(map(len, tokens["preallocated"]))
    rates = {way: [n_tokens / w for w in times] for way, times in walls.items()}
    result = {
        "date": f"{datetime.date.today()}",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "model": handle.model_id,
        "answers": len(ids),
        "max_new_tokens": args.new_tokens,
        "generated_tokens": n_tokens,
        "identical_tokens": tokens["preallocated"] == tokens["dynamic"],
        "cache_layer_classes": layer_classes,
        "tokens_per_s": rates,
        "median_tokens_per_s": {way: statistics.median(r) for way, r in rates.items()},
    }
    med = result["median_tokens_per_s"]
    result["speedup_median"] = med["preallocated"] / med["dynamic"]
    for way, r in rates.items():
        print(f"{way:13} tokens/s {' '.join(f'{x:6.1f}' for x in r)}  median {med[way]:6.1f}")
    same = result["identical_tokens"]
    print(f"preallocated / dynamic: {result['speedup_median']:.3f}; identical tokens: {same}")
    if args.out:
        write_json(args.out, result)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
