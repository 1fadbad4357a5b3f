r"""bfloat16 against float32 on a CPU: decoding and reading speed, and what reading in bf16 does to the axes.

The CPU default dtype is bfloat16 where the CPU has bf16 matrix instructions (AVX512-BF16 or AMX,
`styleprobe.engine.models.default_dtype`), as on a GPU. This script measures what that choice buys and
costs on one calibration workload (instructed prompts, both poles of every axis, the `quick` token budget,
the pipeline's sampling):

1. speed: the same prompts answered in each dtype (same sampling keys), then the float32 answers re-read
   teacher-forced in each dtype; tokens per second of both;
2. the axes: fitted (`fit_axes`, all answers) from each dtype's reading of the *same* float32 answers, so
   only the arithmetic differs: per-axis cosine between the two, and the difference between the
   normalised projections of all the answers on the float32 axes (largest and median), beside the spread of
   the projections within a pole (SD) that it is to be compared with.

The answers generated in bf16 differ from the float32 ones after the first near-tie in sampling; they are a
different sample, not a worse one, so only their share of identical answers is reported.

    .venv/bin/python benchmarks/bench_dtype.py --questions 15 --threads 2 \
        --out benchmarks/results-cpu-dtype.json
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import bench_pipeline as bp
import numpy as np
import torch
import transformers

from styleprobe.engine.extraction import Aggregation, TokenSequence, extract, measure_mask
from styleprobe.engine.generation import SamplingConfig, generate
from styleprobe.engine.models import ModelHandle, cpu_computes_bf16, load_model
from styleprobe.engine.sampling import row_key
from styleprobe.engine.store import write_json
from styleprobe.protocol.axes import fit_axes
from styleprobe.protocol.profiles import PROFILES
from styleprobe.protocol.spec import load_axes

AGG = Aggregation()
DTYPES = ("float32", "bfloat16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="as for `styleprobe --model`")
    p.add_argument("--questions", type=int, default=5, help="calibration questions per axis (default 5)")
    p.add_argument("--new-tokens", type=int, default=PROFILES["quick"].calibration_tokens)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--out", type=Path, help="JSON results (default: print only)")
    return p.parse_args(argv)


def answer(handle: ModelHandle, work: bp.Work, batch_size: int) -> tuple[float, list[list[int]]]:
    cfg, layers = SamplingConfig(work.max_new_tokens), AGG.absolute_layers(handle.n_layers)
    out: list[list[int]] = []
    start = time.perf_counter()
    for s in range(0, len(work.prompts), batch_size):
        keys = [row_key(0, i) for i in work.ids[s : s + batch_size]]
        # states captured as the pipeline does, so that the time includes that cost
        gens, _ = generate(handle, work.prompts[s : s + batch_size], cfg, keys, capture=(layers, AGG.decay))
        out += [g.response_ids for g in gens]
    return time.perf_counter() - start, out


def read(handle: ModelHandle, seqs: list[TokenSequence], batch_size: int) -> tuple[float, np.ndarray]:
    layers = AGG.absolute_layers(handle.n_layers)
    start = time.perf_counter()
    states = np.concatenate(
        [
            extract(handle, seqs[s : s + batch_size], layers, (AGG.decay,))[:, 0]
            for s in range(0, len(seqs), batch_size)
        ]
    )
    return time.perf_counter() - start, AGG.combine(states)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    handles = {d: load_model(args.model, device="cpu", dtype=d) for d in DTYPES}
    work = bp.workloads(handles["float32"], argparse.Namespace(workload="calibration", **vars(args)))[0]
    for h in handles.values():  # warm-up
        generate(h, work.prompts[:2], SamplingConfig(2), [0, 1])
    answers = {d: answer(h, work, args.batch_size) for d, h in handles.items()}
    kept = [i for i, r in enumerate(answers["float32"][1]) if r]
    seqs = [
        TokenSequence(
            work.prompts[i] + answers["float32"][1][i],
            measure_mask(handles["float32"], len(work.prompts[i]), answers["float32"][1][i]),
        )
        for i in kept
    ]
    reads = {d: read(h, seqs, args.batch_size) for d, h in handles.items()}
    axis, pole, specs = np.array(work.axis)[kept], np.array(work.pole)[kept], load_axes()
    question = np.array([int(work.ids[i].rsplit("/", 1)[1]) for i in kept])  # ids are axis/pole/question
    names = [str(a) for a in dict.fromkeys(axis)]
    sides = {a: ((axis == a) & (pole == 1), (axis == a) & (pole == -1)) for a in names}

    def axes_from(states: np.ndarray):
        return fit_axes(
            {a: (states[p], states[n]) for a, (p, n) in sides.items()},
            {a: specs[a].poles for a in names},
            questions={a: (question[p], question[n]) for a, (p, n) in sides.items()},
            model_id=args.model,
            layers=AGG.absolute_layers(handles["float32"].n_layers),
            aggregation=AGG.to_dict(),
        )

    f32_axes, bf16_axes = (axes_from(reads[d][1]) for d in DTYPES)
    n_tokens = {d: sum(map(len, a[1])) for d, a in answers.items()}
    read_tokens = sum(len(s.ids) for s in seqs)
    f32_proj = f32_axes.project(reads["float32"][1], clip=False)
    diff = np.abs(f32_axes.project(reads["bfloat16"][1], clip=False) - f32_proj)
    within = [  # spread of the answers' projections within a pole, to size the difference against
        float(np.sqrt(np.mean([f32_proj[m, k].var(ddof=1) for m in sides[a]]))) for k, a in enumerate(names)
    ]
    result = {
        "date": f"{datetime.date.today()}",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "cpu_computes_bf16": cpu_computes_bf16(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "model": handles["float32"].model_id,
        "answers": len(work.prompts),
        "max_new_tokens": work.max_new_tokens,
        "decode_tokens_per_s": {d: n_tokens[d] / answers[d][0] for d in DTYPES},
        "read_tokens_per_s": {d: read_tokens / reads[d][0] for d in DTYPES},
        "identical_answers_share": float(
            np.mean([a == b for a, b in zip(answers["float32"][1], answers["bfloat16"][1], strict=True)])
        ),
        "axis_cosine_bf16_vs_float32_reading": {
            a: float(f32_axes.vectors[k] @ bf16_axes.vectors[k]) for k, a in enumerate(names)
        },
        "max_abs_normalised_projection_diff": dict(zip(names, diff.max(0).tolist(), strict=True)),
        "median_abs_normalised_projection_diff": dict(zip(names, np.median(diff, 0).tolist(), strict=True)),
        "within_pole_sd_normalised": dict(zip(names, within, strict=True)),
    }
    for key in ("decode_tokens_per_s", "read_tokens_per_s"):
        rates = result[key]
        print(
            f"{key:20} "
            + "  ".join(f"{d} {r:7.1f}" for d, r in rates.items())
            + f"  ratio {rates['bfloat16'] / rates['float32']:.2f}"
        )
    cos = result["axis_cosine_bf16_vs_float32_reading"]
    print(f"axis cosine, same answers read in bf16 vs float32: min {min(cos.values()):.4f}")
    largest = max(result["max_abs_normalised_projection_diff"].values())
    print(f"largest normalised projection difference: {largest:.4f}")
    ratio = max(diff.max(0)[k] / within[k] for k in range(len(names)))
    print(f"largest difference / within-pole SD of the projections, worst axis: {ratio:.3f}")
    print(f"identical answers generated in both dtypes: {result['identical_answers_share']:.0%}")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
