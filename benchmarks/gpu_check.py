"""The GPU check: one command that measures the engine on one GPU in minutes (`gpu_check.sh`, README.md here).

It runs where only torch, transformers, numpy and safetensors are installed (PYTHONPATH=lib, no network, no
weights): every model is random-init, built in memory from a config, and answers at fixed length (no
end-of-turn token), so both ways do equal work.

1. throughput: a Qwen2-7B-shaped model in bf16 answers the paper profile's calibration and evaluation
   prompts (7 axes x 2 poles x (30 + 10) questions, 200 tokens). Ours (batched generation with online
   capture, then the teacher-forced re-read of the same answers) against the reference (HF
   `generate(output_hidden_states=True)`, batch 1) on the first few answers, extrapolated to all.
2. protocol: the same model's paper-profile generation work timed without the load: (1)'s generation and
   re-read plus the 5-seed baseline (30 questions x 5 seeds, 384 tokens, greedy); peak GPU memory; batch size.
3. batch invariance in bf16: one prompt alone and in a batch of 64 (the others longer, so it is padded):
   whether the tokens are identical and how far the captured states are apart.
4. cross-device: a small model of SmolLM2-135M's shape; the same answers read in bf16 on the GPU and in
   float32 on the CPU, projected on axes fitted from the float32 states (unit mean difference of the poles,
   normalised by half the pole separation, so 1 = the distance from the midpoint to a pole's mean).

`--smoke` runs all four on a CPU with the tiny qwen2 model in seconds (the test of this script)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import re
import time
from pathlib import Path

import bench_pipeline as bp
import numpy as np
import torch
import transformers

from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import TokenSequence, extract, measure_mask
from styleprobe.engine.generation import SamplingConfig, auto_batch_size, generate, tokenize_prompts
from styleprobe.engine.models import ModelHandle
from styleprobe.protocol.profiles import PROFILES, Profile
from styleprobe.protocol.spec import load_axes, load_questions
from styleprobe.testing import random_model

STATE_TOLERANCE = 0.05
"""Batch invariance in bf16: the largest state difference, relative to the largest state, must stay below
this (bf16 keeps 8 bits of mantissa; padding changes the order of the reductions)."""
PROJECTION_TOLERANCE = 0.05  # bf16 GPU vs float32 CPU: largest difference in normalised units


def load(arch: str, device: str, dtype: torch.dtype) -> ModelHandle:
    model, tok = random_model(arch, dtype=dtype, device=device)
    return ModelHandle(model, tok, f"random:{arch}", f"random-{arch}", end_of_turn_ids=[])  # fixed length


def calibration_work(handle: ModelHandle, profile: Profile) -> bp.Work:
    """The calibration and evaluation prompts of the profile: every axis, both poles (instruction set A)."""
    bank, specs = load_questions(), load_axes()
    rows = [
        (
            f"{axis}/{pole:+d}/{split}/{q}",
            build_prompt(handle, question, specs[axis].instruction(pole)),
            axis,
            pole,
        )
        for split, n in (("calibration", profile.n_calibration), ("evaluation", profile.n_evaluation))
        for axis in specs
        for q, question in enumerate(getattr(bank, split)[axis][:n])
        for pole in (1, -1)
    ]
    ids, prompts, axes, poles = map(list, zip(*rows, strict=True))
    return bp.Work(
        "calibration", ids, tokenize_prompts(handle, prompts), axes, poles, profile.calibration_tokens
    )


def baseline_work(handle: ModelHandle, profile: Profile) -> bp.Work:
    """The baseline prompts of the profile (no system prompt), once per seed."""
    questions = load_questions().baseline[: profile.n_baseline]
    prompts = tokenize_prompts(handle, [build_prompt(handle, q) for q in questions])
    ids = [f"baseline/{seed}/{i}" for seed in profile.seeds for i in range(len(questions))]
    n = len(ids)
    return bp.Work("baseline", ids, prompts * len(profile.seeds), [""] * n, [0] * n, profile.baseline_tokens)


def batch_size(handle: ModelHandle, work: bp.Work) -> int:
    """`auto_batch_size` on a GPU; 64 on a CPU (the smoke run), whose free memory needs psutil."""
    if handle.device.type != "cuda":
        return 64
    return auto_batch_size(handle, max(len(p) for p in work.prompts) + work.max_new_tokens, cap=256)


def throughput(handle: ModelHandle, work: bp.Work, reference_answers: int) -> dict:
    """Ours on all of `work`, the reference on its first `reference_answers`; tokens/s at equal work."""
    bs = batch_size(handle, work)
    bp.reference_one(handle, work.prompts[0], 2, [])  # warm-up (kernels, allocator) before any timing
    generate(handle, work.prompts[:2], SamplingConfig(2, greedy=True), [0, 0], capture=([0], bp.AGG.decay))
    with bp.measure(handle.device) as ref_rec:
        ref = [bp.reference_one(handle, p, work.max_new_tokens, []) for p in work.prompts[:reference_answers]]
    ours = bp.run_ours(handle, work, bs)
    ref_tokens = sum(len(r["resp"]) for r in ref)
    our_tokens = sum(len(g.response_ids) for g in ours["gens"])
    ref_rate = ref_tokens / ref_rec["wall_s"]
    gen_rate = our_tokens / ours["generate"]["wall_s"]
    return {
        "answers": len(work.ids),
        "max_new_tokens": work.max_new_tokens,
        "batch_size": bs,
        "reference": {**ref_rec, "answers": len(ref), "tokens": ref_tokens, "tokens_per_s": ref_rate},
        "ours_generate": {**ours["generate"], "tokens": our_tokens, "tokens_per_s": gen_rate},
        "ours_reread": {**ours["reforward_pass"], "tokens": our_tokens},
        "ratio_tokens_per_s": gen_rate / ref_rate,
        "reference_extrapolated_s": our_tokens / ref_rate,
        "identical_answers": sum(
            r["resp"] == g.response_ids for r, g in zip(ref, ours["gens"], strict=False)
        ),
    }, ours


def baseline_time(handle: ModelHandle, work: bp.Work) -> dict:
    bs = batch_size(handle, work)
    ours = bp.run_ours(handle, work, bs)
    return {
        "answers": len(work.ids),
        "batch_size": bs,
        "generate": ours["generate"],
        "reread": ours["reforward_pass"],
    }


def batch_invariance(handle: ModelHandle, work: bp.Work, size: int, new_tokens: int) -> dict:
    """The shortest prompt alone and with the `size` - 1 longest others (so it is left-padded), greedy."""
    order = sorted(range(len(work.prompts)), key=lambda i: len(work.prompts[i]))
    target, others = order[0], order[::-1][: size - 1]
    cfg, layers = SamplingConfig(new_tokens, greedy=True), bp.AGG.absolute_layers(handle.n_layers)
    alone, s_alone = generate(handle, [work.prompts[target]], cfg, [0], capture=(layers, bp.AGG.decay))
    batch, s_batch = generate(
        handle, [work.prompts[i] for i in [target, *others]], cfg, [0] * size, capture=(layers, bp.AGG.decay)
    )
    same = alone[0].response_ids == batch[0].response_ids
    diff = float(np.abs(s_alone[0] - s_batch[0]).max())
    scale = float(np.abs(s_alone[0]).max())
    return {
        "batch": size,
        "padding_tokens": max(len(work.prompts[i]) for i in others) - len(work.prompts[target]),
        "identical_tokens": same,
        "first_difference": next(
            (
                i
                for i, (a, b) in enumerate(zip(alone[0].response_ids, batch[0].response_ids, strict=True))
                if a != b
            ),
            None,
        ),
        "max_abs_state_diff": diff,
        "relative_state_diff": diff / scale,
        "tolerance": STATE_TOLERANCE,
        "ok": same and diff / scale <= STATE_TOLERANCE,
    }


def _projections(states: np.ndarray, reference: np.ndarray, axis: np.ndarray, pole: np.ndarray) -> np.ndarray:
    """Per axis, `states` projected on the unit mean difference of `reference`'s poles, centred on their
    midpoint and scaled by half their separation: [n answers, n axes]."""
    out = []
    for name in dict.fromkeys(axis):
        pos, neg = (
            reference[(axis == name) & (pole == 1)].mean(0),
            reference[(axis == name) & (pole == -1)].mean(0),
        )
        unit = (pos - neg) / np.linalg.norm(pos - neg)
        centre, half = (pos + neg) @ unit / 2, (pos - neg) @ unit / 2
        out.append((states @ unit - centre) / half)
    return np.stack(out, axis=1)


def cross_device(arch: str, device: str, dtype: torch.dtype, work_of, new_tokens: int) -> dict:
    """The same answers read with the model in `dtype` on `device` and in float32 on the CPU."""
    fast = load(arch, device, dtype)
    cpu = load(arch, "cpu", torch.float32)
    cpu.model.load_state_dict({k: v.float().cpu() for k, v in fast.model.state_dict().items()})
    work = work_of(fast)
    layers = bp.AGG.absolute_layers(fast.n_layers)
    gens, _ = generate(fast, work.prompts, SamplingConfig(new_tokens, greedy=True), [0] * len(work.prompts))
    seqs = [
        TokenSequence(p + g.response_ids, measure_mask(fast, len(p), g.response_ids))
        for p, g in zip(work.prompts, gens, strict=True)
    ]
    read = {}
    for name, handle in (("fast", fast), ("cpu", cpu)):
        parts = [
            extract(handle, seqs[s : s + 16], layers, (bp.AGG.decay,))[:, 0] for s in range(0, len(seqs), 16)
        ]
        read[name] = bp.AGG.combine(np.concatenate(parts)).astype(np.float64)
    axis, pole = np.array(work.axis), np.array(work.pole)
    diff = np.abs(
        _projections(read["fast"], read["cpu"], axis, pole)
        - _projections(read["cpu"], read["cpu"], axis, pole)
    )
    return {
        "model": f"random:{arch}",
        "fast": f"{dtype} on {device}",
        "answers": len(seqs),
        "max_abs_normalised_diff": float(diff.max()),
        "per_axis": dict(zip(dict.fromkeys(work.axis), diff.max(0).tolist(), strict=True)),
        "tolerance": PROJECTION_TOLERANCE,
        "ok": float(diff.max()) <= PROJECTION_TOLERANCE,
    }


def protocol_time(throughput_entry: dict, baseline: dict) -> dict:
    """The paper profile's generation work for one model, without the load (seconds)."""
    parts = {
        "calibration_generate_s": throughput_entry["ours_generate"]["wall_s"],
        "calibration_reread_s": throughput_entry["ours_reread"]["wall_s"],
        "baseline_generate_s": baseline["generate"]["wall_s"],
    }
    peaks = [throughput_entry["ours_generate"]["peak_mb"], baseline["generate"]["peak_mb"]]
    return {**parts, "total_s": sum(parts.values()), "peak_mb": max(peaks), "target_s": 60.0}


def markdown(results: dict) -> str:
    """The rows for RESULTS.md."""
    t, p, b, c = (results[k] for k in ("throughput", "protocol", "batch_invariance", "cross_device"))
    return "\n".join(
        [
            f"## GPU check, {results['device']}, {results['date']}",
            "",
            f"- Command: `benchmarks/gpu_check.sh`; torch {results['torch']}, transformers "
            f"{results['transformers']}; model {results['model']} ({results['dtype']}, random-init, fixed "
            f"length); load {results['load']['wall_s']:.0f} s.",
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| reference: HF generate, batch 1 ({t['reference']['answers']} answers) | "
            f"{t['reference']['tokens_per_s']:.1f} tokens/s |",
            f"| ours: batched generate + capture (batch {t['batch_size']}, {t['answers']} answers) | "
            f"{t['ours_generate']['tokens_per_s']:.1f} tokens/s |",
            f"| ratio ours / reference (target >= 100x) | {t['ratio_tokens_per_s']:.0f}x |",
            f"| {results['profile']['name']}-profile calibration generate / re-read / "
            f"{len(results['profile']['seeds'])}-seed baseline | "
            f"{p['calibration_generate_s']:.1f} / {p['calibration_reread_s']:.1f} / "
            f"{p['baseline_generate_s']:.1f} s |",
            f"| total, excluding load (target <= 60 s) | {p['total_s']:.1f} s |",
            f"| peak memory ({t['ours_generate']['memory']}) | {p['peak_mb'] / 1024:.1f} GiB |",
            f"| batch invariance, 1 vs {b['batch']} ({b['padding_tokens']} padding tokens) | tokens "
            f"{'identical' if b['identical_tokens'] else 'differ'}, states relative difference "
            f"{b['relative_state_diff']:.2e} |",
            f"| {c['fast']} vs float32 CPU, {c['model']} ({c['answers']} answers) | max "
            f"{c['max_abs_normalised_diff']:.4f} normalised units |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny models on the CPU, seconds: tests the script"
    )
    parser.add_argument(
        "--reference-answers", type=int, help="answers the reference runs (default 4; smoke 2)"
    )
    parser.add_argument("--out", type=Path, help="JSON (default benchmarks/results-gpu-<date>.json)")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --smoke to test the script on a CPU")
    device = "cpu" if args.smoke else "cuda"
    big, small = ("qwen2", "llama") if args.smoke else ("qwen2-7b", "llama-135m")
    profile = PROFILES["smoke" if args.smoke else "paper"]
    dtype = torch.bfloat16
    name = (
        "cpu" if args.smoke else re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-")
    )
    today = datetime.date.today()
    out = args.out or Path(__file__).parent / f"results-gpu-{today:%Y%m%d}.json"
    results: dict = {
        "date": str(today),
        "device": name,
        "model": f"random:{big}",
        "dtype": str(dtype),
        "profile": profile.to_dict(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    start = time.perf_counter()
    with bp.measure(torch.device(device)) as results["load"]:
        handle = load(big, device, dtype)
    calibration = calibration_work(handle, profile)
    results["throughput"], _ = throughput(
        handle, calibration, args.reference_answers or (2 if args.smoke else 4)
    )
    results["baseline"] = baseline_time(handle, baseline_work(handle, profile))
    results["protocol"] = protocol_time(results["throughput"], results["baseline"])
    results["batch_invariance"] = batch_invariance(
        handle, calibration, 8 if args.smoke else 64, 16 if args.smoke else 64
    )
    del handle
    if device == "cuda":
        torch.cuda.empty_cache()
    few = dataclasses.replace(profile, n_calibration=min(profile.n_calibration, 5), n_evaluation=0)
    results["cross_device"] = cross_device(
        small, device, dtype, lambda h: calibration_work(h, few), 16 if args.smoke else 64
    )
    results["wall_s"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    rows = markdown(results)
    out.with_suffix(".md").write_text(rows + "\n")
    print(rows)
    print(f"\nwrote {out} and {out.with_suffix('.md')} in {results['wall_s']:.0f} s")
    ok = results["batch_invariance"]["ok"] and results["cross_device"]["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
