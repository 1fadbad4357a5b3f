"""Throughput of the original study's generate-and-read loop against styleprobe's, on the same workload.

reference: one answer at a time with HF `generate(output_hidden_states=True)`, then the original's
  aggregation of the last 4 `hidden_states` entries (the last entry is after the final norm: the original's
  quirk, kept here) with token decay 0.9 and layer weights 0.1..0.4.
ours: `styleprobe.engine.generation.generate`, batched, prompts sorted by length, online capture; then,
  timed on its own, the teacher-forced re-read `styleprobe.engine.extraction.extract` of the same answers.
Decoding is greedy in both ways so that the answers can be compared token for token. See README.md here.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm

from styleprobe.engine.chat import build_prompt
from styleprobe.engine.extraction import Aggregation, TokenSequence, extract, measure_mask
from styleprobe.engine.generation import (
    Generation,
    SamplingConfig,
    auto_batch_size,
    generate,
    tokenize_prompts,
)
from styleprobe.engine.models import ModelHandle, end_of_turn_ids, load_model
from styleprobe.engine.sampling import row_key
from styleprobe.engine.store import write_json
from styleprobe.protocol.axes import axis_direction, fit_axes
from styleprobe.protocol.spec import load_axes, load_questions
from styleprobe.testing import random_model

AGG = Aggregation()  # layers -4..-1 before the final norm, decay 0.9, layer weights 0.1..0.4
TOLERANCE = 0.99  # cosine between the two ways' axes (same layer definition) must exceed this


@dataclass
class Work:
    name: str
    ids: list[str]
    prompts: list[list[int]]
    axis: list[str]  # "" for baseline answers
    pole: list[int]  # +1 / -1, 0 for baseline answers
    max_new_tokens: int


def workloads(handle: ModelHandle, args: argparse.Namespace) -> list[Work]:
    bank, specs, out = load_questions(), load_axes(), []
    if args.workload in ("calibration", "both"):
        rows = [  # question-major, so that the first K answers (--reference-limit) cover every axis
            (f"{a}/{p:+d}/{q}", build_prompt(handle, bank.calibration[a][q], specs[a].instruction(p)), a, p)
            for q in range(args.questions)
            for a in specs
            if q < len(bank.calibration[a])
            for p in (1, -1)
        ]
        ids, prompts, axis, pole = map(list, zip(*rows, strict=True))
        out.append(Work("calibration", ids, tokenize_prompts(handle, prompts), axis, pole, args.new_tokens))
    if args.workload in ("baseline", "both"):
        qs = bank.baseline[: args.questions]
        prompts = tokenize_prompts(handle, [build_prompt(handle, q) for q in qs])
        ids = [f"baseline/{i}" for i in range(len(qs))]
        out.append(Work("baseline", ids, prompts, [""] * len(qs), [0] * len(qs), args.baseline_tokens))
    return out


def _process():
    """This process for sampling its resident set size, or None where psutil is absent (a bare GPU box)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process()


@contextmanager
def measure(device: torch.device) -> Iterator[dict]:
    """Wall seconds and peak memory of the block: CUDA max_memory_allocated (absolute, weights included),
    on CPU the peak resident set size above the level at entry, sampled every 20 ms with psutil (None
    without psutil)."""
    rec: dict = {}
    cuda = device.type == "cuda"
    proc = None if cuda else _process()
    stop = threading.Event()
    peak = [proc.memory_info().rss if proc else 0]
    base = peak[0]

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    elif proc:
        sampler.start()
    start = time.perf_counter()
    yield rec
    if cuda:
        torch.cuda.synchronize(device)
    rec["wall_s"] = time.perf_counter() - start
    if cuda:
        rec.update(
            peak_mb=torch.cuda.max_memory_allocated(device) / 2**20,
            memory="torch.cuda.max_memory_allocated, absolute",
        )
    elif proc:
        stop.set()
        sampler.join()
        peak_mb = (max(peak[0], proc.memory_info().rss) - base) / 2**20
        rec.update(peak_mb=peak_mb, memory="CPU peak RSS above the phase's start (psutil, every 20 ms)")
    else:
        rec.update(peak_mb=float("nan"), memory="not measured (no psutil)")


def decayed_mean(x: torch.Tensor) -> torch.Tensor:
    """[T, d] -> [d] with weights 0.9**(T-1-t), normalised (zeros when T = 0)."""
    if len(x) == 0:
        return torch.zeros(x.shape[1])
    w = AGG.decay ** torch.arange(len(x) - 1, -1, -1, dtype=torch.float64)
    return ((w / w.sum()).float()[:, None] * x.float().cpu()).sum(0)


@torch.inference_mode()
def reference_one(handle: ModelHandle, prompt: list[int], max_new: int, eot: list[int]) -> dict:
    """One answer the original way. generate() is asked for max_new + 1 tokens and the answer cut to
    max_new, so that the state of an answer's last token exists for the matched reading (HF never runs
    the token it samples last); the cost is one decoding step per answer, which `generate` pays too."""
    ids = torch.tensor([prompt], device=handle.device)
    out = handle.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new + 1,
        do_sample=False,
        output_hidden_states=True,
        return_dict_in_generate=True,
        pad_token_id=handle.tokenizer.pad_token_id,
        eos_token_id=eot,  # [] with --fixed-length: HF then never stops before max_new_tokens
    )
    new = out.sequences[0, len(prompt) :].tolist()[:max_new]
    end = next((i for i, t in enumerate(new) if t in eot), None)
    resp, finished = (new, False) if end is None else (new[:end], True)
    n_gen = len(resp) + finished  # tokens an original max_new-token generate() returns (its steps)
    entries = len(out.hidden_states[0])
    # per entry: the input position's state at each step (step 0 = the prompt's last position)
    per_step = [torch.cat([hs[e][0, -1:] for hs in out.hidden_states]) for e in range(entries - 4, entries)]
    w = np.asarray(AGG.layer_weights) / sum(AGG.layer_weights)
    # the original: last n_gen positions = last prompt token + answer tokens 0..n_gen-2, entries n-3..n
    original = sum(float(wi) * decayed_mean(s[:n_gen]) for wi, s in zip(w, per_step, strict=True))
    # matched: answer tokens 0..len-1 (step j+1 reads token j), as styleprobe reads them
    matched = torch.stack([decayed_mean(s[1 : len(resp) + 1]) for s in per_step])
    return {"resp": resp, "finished": finished, "original": original.numpy(), "matched": matched.numpy()}


def decode_waste(gens: list[Generation], max_new: int) -> tuple[int, int]:
    """(row-steps decoded, row-steps spent on rows already finished) of one batch of `generate` with
    capture, replaying its rule: finished rows are dropped once they make up a quarter of the batch."""
    end = [len(g.response_ids) if g.finished else math.inf for g in gens]  # step that sampled end-of-turn
    live, total, wasted = list(range(len(gens))), 0, 0
    for step in range(max_new):
        if all(end[r] < step for r in live):
            break
        if 4 * sum(end[r] < step for r in live) >= len(live):
            live = [r for r in live if end[r] >= step]
        total += len(live)
        wasted += sum(end[r] <= step for r in live)
    return total, wasted


def run_ours(handle: ModelHandle, work: Work, batch_size: int) -> dict:
    layers = AGG.absolute_layers(handle.n_layers)
    order = sorted(range(len(work.ids)), key=lambda i: (len(work.prompts[i]), work.ids[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    cfg = SamplingConfig(work.max_new_tokens, greedy=True)
    gens: list[Generation] = [None] * len(order)  # type: ignore[list-item]
    online = np.zeros((len(order), len(layers), handle.hidden_size), np.float32)
    counted = [0]  # decoding row-steps seen by a pre-hook on the model, to check the replay above

    def count(_module: torch.nn.Module, _args: tuple, kwargs: dict) -> None:
        if kwargs.get("input_ids") is not None and kwargs["input_ids"].shape[1] == 1:
            counted[0] += kwargs["input_ids"].shape[0]

    hook = handle.model.register_forward_pre_hook(count, with_kwargs=True)
    bar = tqdm(total=len(order), desc=f"ours {work.name}", unit="answer")
    try:
        with measure(handle.device) as gen_rec:
            for b in batches:
                keys = [row_key(0, work.ids[i]) for i in b]
                out, states = generate(
                    handle, [work.prompts[i] for i in b], cfg, keys, capture=(layers, AGG.decay)
                )
                for i, g, s in zip(b, out, states, strict=True):
                    gens[i], online[i] = g, s
                bar.update(len(b))
    finally:
        hook.remove()
        bar.close()
    seqs = [
        TokenSequence(p + g.response_ids, measure_mask(handle, len(p), g.response_ids))
        for p, g in zip(work.prompts, gens, strict=True)
    ]
    reforward = np.zeros_like(online)
    with measure(handle.device) as re_rec:
        for b in tqdm(batches, desc=f"re-forward {work.name}", unit="batch"):
            reforward[b] = extract(handle, [seqs[i] for i in b], layers, (AGG.decay,))[:, 0]
    steps = [decode_waste([gens[i] for i in b], work.max_new_tokens) for b in batches]
    padded = sum(len(b) * max(len(work.prompts[i]) for i in b) for b in batches)  # prefill slots
    return {
        "gens": gens,
        "online": online,
        "reforward": reforward,
        "generate": gen_rec,
        "reforward_pass": re_rec,
        "decode_row_steps": sum(t for t, _ in steps),
        "decode_row_steps_counted": counted[0],
        "finished_row_share": sum(w for _, w in steps) / max(1, sum(t for t, _ in steps)),
        "prompt_padding_share": 1 - sum(len(p) for p in work.prompts) / padded,
    }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def agreement(work: Work, ref: list[dict], ours: dict) -> dict:
    """On the answers identical both ways: states and axes from 3 layers with equal weights (blocks
    n-4..n-2 before the final norm, the same definition both ways), and from the original 4-layer
    definition against ours (ours reads block n-1 before the final norm, the original after it)."""
    k = len(ref)
    same = [i for i in range(k) if ref[i]["resp"] == ours["gens"][i].response_ids]
    use = [i for i in same if ref[i]["resp"]]  # something to measure
    measured = [i for i, g in enumerate(ours["gens"]) if g.response_ids]
    res: dict = {
        "compared": k,
        "identical_share": len(same) / max(1, k),
        "online_vs_reforward_max_abs": float(
            np.abs(ours["online"] - ours["reforward"])[measured].max(initial=0)
        ),
        "online_max_abs": float(np.abs(ours["online"][measured]).max(initial=0)),
        **{f"min_state_cosine_{d}_definition": None for d in ("same", "original")},
        **{f"axis_cosine_{d}_definition": {} for d in ("same", "original")},
    }
    res["ok"] = res["identical_share"] >= 0.5
    if not use:
        return res
    defs = {
        "same": (np.stack([ref[i]["matched"][:3].mean(0) for i in use]), ours["online"][use, :3].mean(1)),
        "original": (np.stack([ref[i]["original"] for i in use]), AGG.combine(ours["online"][use])),
    }
    pole, axis = np.array(work.pole)[use], np.array(work.axis)[use]
    for key, (r, o) in defs.items():
        res[f"min_state_cosine_{key}_definition"] = min(cosine(a, b) for a, b in zip(r, o, strict=True))
        for name in dict.fromkeys(axis[axis != ""]):
            pos, neg = (axis == name) & (pole == 1), (axis == name) & (pole == -1)
            if pos.any() and neg.any():
                ref_axis, our_axis = axis_direction(r[pos], r[neg]), axis_direction(o[pos], o[neg])
                res[f"axis_cosine_{key}_definition"][str(name)] = cosine(ref_axis, our_axis)
    res["ok"] &= all(c > TOLERANCE for c in res["axis_cosine_same_definition"].values())
    return res


def cross_device(handle: ModelHandle, args: argparse.Namespace, work: Work, ours: dict) -> dict | None:
    """Teacher-forced states of the same answers on the GPU (the model's dtype, from the re-forward above)
    and in float32 on the CPU, projected on axes fitted from the float32 states."""
    if handle.device.type != "cuda" or work.name != "calibration":
        print("--cross-device skipped: it needs CUDA and the calibration workload")
        return None
    if args.random_arch:  # the GPU model's weights, upcast: only the arithmetic differs
        model, tok = random_model(args.random_arch, dtype=torch.float32, device="cpu")
        model.load_state_dict({k: v.float().cpu() for k, v in handle.model.state_dict().items()})
        cpu = ModelHandle(model, tok, handle.model_id, handle.slug, end_of_turn_ids=handle.end_of_turn_ids)
    else:
        cpu = load_model(args.model, device="cpu", dtype=torch.float32)
    layers = AGG.absolute_layers(handle.n_layers)
    seqs = [
        TokenSequence(p + g.response_ids, measure_mask(cpu, len(p), g.response_ids))
        for p, g in zip(work.prompts, ours["gens"], strict=True)
    ]
    f32 = np.zeros_like(ours["reforward"])
    for s in tqdm(range(0, len(seqs), 8), desc="float32 on CPU", unit="batch"):
        f32[s : s + 8] = extract(cpu, seqs[s : s + 8], layers, (AGG.decay,))[:, 0]
    use = np.array([bool(g.response_ids) for g in ours["gens"]])
    f32_s, gpu_s = AGG.combine(f32[use]), AGG.combine(ours["reforward"][use])
    axis, pole, specs = np.array(work.axis)[use], np.array(work.pole)[use], load_axes()
    names = [str(a) for a in dict.fromkeys(axis)]
    axes = fit_axes(
        {a: (f32_s[(axis == a) & (pole == 1)], f32_s[(axis == a) & (pole == -1)]) for a in names},
        {a: specs[a].poles for a in names},
        model_id=handle.model_id,
        layers=layers,
        aggregation=AGG.to_dict(),
    )
    diff = np.abs(axes.project(gpu_s, clip=False) - axes.project(f32_s, clip=False)).max(0)
    return {
        "gpu_dtype": str(handle.model.dtype),
        "max_abs_normalised_diff": dict(zip(names, diff.tolist(), strict=True)),
    }


def load(args: argparse.Namespace) -> ModelHandle:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    # float32 on any CPU, whatever its default: decoding answers one by one must match batched decoding
    dtype = getattr(torch, args.dtype) if args.dtype else (None if cuda else torch.float32)
    if not args.random_arch:
        return load_model(args.model, device=device, dtype=dtype)
    model, tok = random_model(args.random_arch, dtype=dtype or torch.bfloat16, device=device)
    eot = end_of_turn_ids(model, tok)
    return ModelHandle(
        model, tok, f"random:{args.random_arch}", f"random-{args.random_arch}", end_of_turn_ids=eot
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="as for `styleprobe --model`")
    p.add_argument("--random-arch", help="a random-init model built in memory, e.g. qwen2-7b (bf16 on CUDA)")
    p.add_argument("--device", help="cuda, cpu (default: cuda when available)")
    p.add_argument("--dtype", help="bfloat16, float32, ... (default: bfloat16 on CUDA, float32 on CPU)")
    p.add_argument("--workload", choices=["calibration", "baseline", "both"], default="calibration")
    p.add_argument("--questions", type=int, help="questions per axis / baseline questions (5 CPU, 30 CUDA)")
    p.add_argument("--new-tokens", type=int, default=200, help="token budget of calibration answers")
    p.add_argument("--baseline-tokens", type=int, default=384, help="token budget of baseline answers")
    p.add_argument("--batch-size", type=int, help="ours (default: generation.auto_batch_size)")
    p.add_argument("--reference-limit", type=int, help="run the reference on the first K answers only")
    p.add_argument("--fixed-length", action="store_true", help="no end-of-turn: every answer is max length")
    p.add_argument("--cross-device", action="store_true", help="GPU model dtype vs CPU float32 projections")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument(
        "--out",
        type=Path,
        help="JSON results (default: benchmarks/results-<device>-<date>-<model>-<workload>.json)",
    )
    return p.parse_args(argv)


def bench(handle: ModelHandle, args: argparse.Namespace, work: Work, eot: list[int]) -> dict:
    n, dev = len(work.ids), handle.device
    longest = max(len(p) for p in work.prompts) + work.max_new_tokens
    bs = args.batch_size or auto_batch_size(handle, longest, cap=64 if dev.type == "cpu" else 256)
    k = min(n, args.reference_limit or n)
    reference_one(handle, work.prompts[0], 2, eot)  # warm-up (kernels, allocator) before any timing
    generate(handle, work.prompts[:2], SamplingConfig(2, greedy=True), [0, 0][:n], capture=([0], AGG.decay))
    with measure(dev) as ref_rec:
        ref = [
            reference_one(handle, work.prompts[i], work.max_new_tokens, eot)
            for i in tqdm(range(k), desc=f"reference {work.name}", unit="answer")
        ]
    ours = run_ours(handle, work, bs)
    ref_tok = sum(len(r["resp"]) + r["finished"] for r in ref)  # decoded tokens, end-of-turn included
    our_tok = sum(len(g.response_ids) + g.finished for g in ours["gens"])
    ways = {
        "reference": {**ref_rec, "answers": k, "tokens": ref_tok},
        "ours_generate_online": {**ours.pop("generate"), "answers": n, "tokens": our_tok},
        "ours_reforward_pass": {**ours.pop("reforward_pass"), "answers": n, "tokens": our_tok},
    }
    for r in ways.values():
        r["tokens_per_s"], r["answers_per_s"] = r["tokens"] / r["wall_s"], r["answers"] / r["wall_s"]
    entry = {
        "answers": n,
        "max_new_tokens": work.max_new_tokens,
        "batch_size": bs,
        "ways": ways,
        "ratio_tokens_per_s": ways["ours_generate_online"]["tokens_per_s"]
        / ways["reference"]["tokens_per_s"],
        "reference_extrapolated_wall_s": our_tok / ways["reference"]["tokens_per_s"] if k < n else None,
        "agreement": agreement(work, ref, ours),
        **{key: v for key, v in ours.items() if key not in ("gens", "online", "reforward")},
    }
    if args.cross_device:
        entry["cross_device"] = cross_device(handle, args, work, ours)
    return entry


def report(name: str, e: dict, model_id: str, device: str) -> None:
    w, a, k, cd = e["ways"], e["agreement"], e["ways"]["reference"]["answers"], e.get("cross_device") or {}
    same, orig = a["min_state_cosine_same_definition"], a["min_state_cosine_original_definition"]
    labels = ["reference: HF generate, batch 1", f"ours: generate + capture, batch {e['batch_size']}"]
    lines = [
        f"\n== {name}: {e['answers']} answers, <= {e['max_new_tokens']} new tokens, {device}, {model_id}",
        f"{'way':40} {'wall s':>9} {'tokens':>8} {'tok/s':>9} {'answers/s':>9} {'peak MB':>9}",
        *(
            f"{label:40} {r['wall_s']:9.2f} {r['tokens']:8d} {r['tokens_per_s']:9.1f} "
            f"{r['answers_per_s']:9.3f} {r['peak_mb']:9.1f}"
            for label, r in zip([*labels, "ours: re-forward pass alone"], w.values(), strict=True)
        ),
        f"memory: {w['reference']['memory']}",
        f"ours / reference tokens/s: {e['ratio_tokens_per_s']:.2f}x",
        f"ours: {e['finished_row_share']:.1%} of {e['decode_row_steps']} decoding row-steps on finished rows"
        f" (hook counted {e['decode_row_steps_counted']}); prompt padding {e['prompt_padding_share']:.1%}",
        f"agreement on {k} answers: {a['identical_share']:.0%} identical token sequences; min state cosine "
        f"{same if same is None else f'{same:.6f}'} (same layers), "
        f"{orig if orig is None else f'{orig:.4f}'} (original definition)",
        *(
            f"  axis {axis:22} cosine {c:.6f} {'ok' if c > TOLERANCE else f'FLAG (<= {TOLERANCE})'}; "
            f"original definition {a['axis_cosine_original_definition'][axis]:.4f}"
            for axis, c in a["axis_cosine_same_definition"].items()
        ),
        f"online capture vs re-forward: max abs diff {a['online_vs_reforward_max_abs']:.2e} "
        f"(values up to {a['online_max_abs']:.2e})",
        *(
            f"  cross-device {axis:22} max |GPU {cd['gpu_dtype']} - CPU float32| normalised value {d:.4f}"
            for axis, d in cd.get("max_abs_normalised_diff", {}).items()
        ),
    ]
    if e["reference_extrapolated_wall_s"]:
        lines.insert(
            5,
            f"reference ran on the first {k} answers only; at its tok/s all {e['answers']} would "
            f"take ~{e['reference_extrapolated_wall_s']:.0f} s (extrapolated)",
        )
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    handle = load(args)
    dev = handle.device
    args.questions = args.questions or (30 if dev.type == "cuda" else 5)
    tag = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(dev).lower()) if dev.type == "cuda" else "cpu"
    name = f"results-{tag}-{datetime.date.today():%Y%m%d}-{handle.slug}-{args.workload}.json"
    out_path = args.out or Path(__file__).parent / name  # one file per model and workload
    if args.fixed_length:
        handle.end_of_turn_ids = []  # `generate` then never stops early; HF gets eos_token_id=[]
    results: dict = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **{"model_id": handle.model_id, "device": tag, "dtype": str(handle.model.dtype)},
        **{"torch": torch.__version__, "transformers": transformers.__version__},
        **{"threads": torch.get_num_threads(), "tolerance_axis_cosine": TOLERANCE, "workloads": {}},
    }
    for work in workloads(handle, args):
        entry = bench(handle, args, work, list(handle.end_of_turn_ids))
        report(work.name, entry, handle.model_id, str(dev))
        results["workloads"][work.name] = entry
    ok = all(e["agreement"]["ok"] for e in results["workloads"].values())
    write_json(out_path, results)
    print(f"\nwrote {out_path}; agreement {'ok' if ok else 'FLAGGED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
