"""`styleprobe`: calibrate style axes, fingerprint a model, score conversations, list axes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe import __version__
from styleprobe.axes import NORMALISATIONS, AxesError, AxisSet
from styleprobe.data import DataError
from styleprobe.extraction import Aggregation, NonFiniteStatesError
from styleprobe.models import DEFAULT_MODEL, ModelLoadError, load_model
from styleprobe.paths import AXES_DIR, FIGURES_DIR, RUNS_DIR
from styleprobe.profiles import PROFILES, get_profile
from styleprobe.store import RunMismatchError, atomic_write_text, write_json

KNOWN_ERRORS = (
    ModelLoadError,
    AxesError,
    DataError,
    RunMismatchError,
    NonFiniteStatesError,
    FileNotFoundError,
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"preset name, local directory, .gguf file or hub id (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--profile",
        choices=list(PROFILES),
        help="protocol size: paper (full) or quick (default on a machine without a GPU)",
    )
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    p.add_argument("--dtype", help="bfloat16, float16, float32 (default: bfloat16 on CUDA, float32 on CPU)")
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code from the hub")
    p.add_argument("--batch-size", type=int, help="answers per batch (default: the largest that fits)")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where runs are kept (default: runs/)")
    p.add_argument("--axes-dir", type=Path, default=AXES_DIR, help="where axes are kept (default: axes/)")
    p.add_argument(
        "--figures-dir", type=Path, default=FIGURES_DIR, help="where figures go (default: figures/)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="styleprobe",
        description="Measure the default response style of a chat model on 7 bipolar axes from its hidden "
        "states. Start with `styleprobe fingerprint` (embedded SmolLM2-135M, runs on a CPU).",
    )
    parser.add_argument("--version", action="version", version=f"styleprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    cal = sub.add_parser(
        "calibrate",
        help="answer questions under opposite style instructions; fit the axes",
        description="Generate answers under each axis' two pole instructions, fit one unit "
        "vector per axis and save it to axes/<model>.safetensors + .json.",
    )
    _common(cal)
    cal.add_argument("--axes", nargs="+", metavar="AXIS", help="only these axes (default: all 7)")
    cal.add_argument("--set", default="A", choices=["A", "B", "C"], help="instruction and question set")
    cal.add_argument(
        "--normalisation",
        default="median_iqr",
        choices=NORMALISATIONS,
        help="median_iqr (centred, default) or uncentred_iqr (the original study)",
    )
    cal.add_argument(
        "--instructed",
        action="store_true",
        help="read the answers with the style instruction still in context (the original study's way); "
        "default: question + answer only",
    )
    cal.add_argument("--out", type=Path, help="axes file to write (default: <axes-dir>/<model>.json)")
    cal.add_argument("--seed", type=int, default=0)

    fp = sub.add_parser(
        "fingerprint",
        help="the model's default style (calibrates first if needed)",
        description="Calibrate if no axes exist for the model, answer the baseline questions "
        "with no system prompt, print the 7-axis table and draw a radar chart.",
    )
    _common(fp)
    fp.add_argument("--axes-file", type=Path, help="use these axes instead of <axes-dir>/<model>.json")
    fp.add_argument("--seeds", type=int, nargs="+", help="baseline seeds (default: the profile's)")
    fp.add_argument(
        "--system", help="answer under this system prompt (read without it), e.g. to test `compare`"
    )

    cp = sub.add_parser(
        "compare",
        help="compare two fingerprints; exit status 1 when a shift is flagged",
        description="Per axis, the difference B - A with a bootstrap 95 %% CI; a shift is flagged when the "
        "CI excludes 0 and |difference| exceeds the threshold. A and B are results/<model>.json files or "
        "projections .csv files written by `styleprobe fingerprint`.",
    )
    cp.add_argument("a", type=Path)
    cp.add_argument("b", type=Path)
    cp.add_argument("--threshold", type=float, default=0.2, help="flag |difference| above this (default 0.2)")
    cp.add_argument("--n-boot", type=int, default=2000)
    cp.add_argument("--figure", type=Path, help="also draw the differences with their CIs (png and pdf)")

    pr = sub.add_parser(
        "project",
        help="score responses in a JSONL file with existing axes",
        description="Each input line is a JSON object with `response` and optionally "
        "`question`, `system` and `history` ([[user, assistant], ...]). Writes the input "
        "lines with a `projection` object added; malformed lines are reported and skipped.",
    )
    _common(pr)
    pr.add_argument("input", type=Path, help="JSONL file")
    pr.add_argument("--axes-file", type=Path, help="axes to use (default: <axes-dir>/<model>.json)")
    pr.add_argument("--output", type=Path, help="output JSONL (default: print to stdout)")

    rp = sub.add_parser(
        "reproduce",
        help="execute the notebooks with papermill for each model",
        description="Run notebooks 01, 02, 04 for every model (executed copies under "
        "runs/<model>/notebooks/), then 10_cross_model. Finished generations are reused.",
    )
    rp.add_argument("--models", nargs="+", default=[DEFAULT_MODEL], help="models (default: the embedded one)")
    rp.add_argument("--all-presets", action="store_true", help="every model preset in data/models.yaml")
    rp.add_argument("--notebooks", nargs="+", metavar="NB", help="only these, e.g. 02 or 02_baseline")
    rp.add_argument("--profile", choices=list(PROFILES), help="protocol size passed to every notebook")
    rp.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="extra notebook parameter (value parsed as YAML)",
    )
    rp.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    rp.add_argument("--out-dir", type=Path, help="write the notebooks here instead of under the run store")
    rp.add_argument("--dry-run", action="store_true", help="print every step without running it")
    rp.add_argument(
        "--prepare-only",
        action="store_true",
        help="only inject the parameters (for executing them later, e.g. with nbval)",
    )

    ax = sub.add_parser("axes", help="manage axis files")
    ax_sub = ax.add_subparsers(dest="axes_command", required=True)
    ls = ax_sub.add_parser("list", help="list the axis files and their calibration accuracy")
    ls.add_argument("--axes-dir", type=Path, default=AXES_DIR)
    ex = ax_sub.add_parser("export-gguf", help="write one axis as a llama.cpp control vector (GGUF)")
    ex.add_argument("axes_file", type=Path, help="an axes .json file (e.g. axes/<model>.json)")
    ex.add_argument("--axis", required=True)
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--layers", type=int, nargs="+", help="decoder blocks, 0-based (default: the axes' own)")
    ex.add_argument("--strength", type=float, help="vector length (default: the axis's normalisation scale)")
    im = ax_sub.add_parser("import-study", help="the original study's .npz axes as an axes file")
    im.add_argument("npz", type=Path, help="<model>_set_<X>_axes.npz")
    im.add_argument("--out", type=Path, required=True, help="axes .json file to write")
    im.add_argument("--model-id", help="the model's id (default: from the file name, qwen_7b or llama_8b)")
    im.add_argument("--n-layers", type=int, help="decoder blocks of the model (default: from the file name)")
    return parser


def _load(args) -> object:
    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
    )


def _axes_path(args, handle) -> Path:
    return (
        getattr(args, "axes_file", None)
        or getattr(args, "out", None)
        or args.axes_dir / f"{handle.slug}.json"
    )


def cmd_calibrate(args, handle=None) -> AxisSet:
    from styleprobe.calibration import calibrate

    handle = handle or _load(args)
    cal = calibrate(
        handle,
        get_profile(args.profile),
        args.runs_dir / handle.slug,
        axes=args.axes,
        instruction_set=args.set,
        normalisation=args.normalisation,
        seed=args.seed,
        batch_size=args.batch_size,
        read_with_system=args.instructed,
        progress=not args.quiet,
    )
    path = cal.axes.save(_axes_path(args, handle))
    print(cal.evaluation.round(3).to_string())
    print(f"axes written to {path}")
    return cal.axes


def cmd_fingerprint(args) -> pd.DataFrame:
    from styleprobe.calibration import baseline, fingerprint_table, project_results
    from styleprobe.plots import radar, save_figure

    start = time.perf_counter()
    handle = _load(args)
    profile = get_profile(args.profile)
    path = _axes_path(args, handle)
    if path.with_suffix(".json").exists():
        axes = AxisSet.load(path)
    else:
        print(f"no axes at {path}: calibrating first")
        ns = argparse.Namespace(
            **{
                **vars(args),
                "axes": None,
                "set": "A",
                "normalisation": "median_iqr",
                "instructed": False,
                "out": path,
                "seed": 0,
            }
        )
        axes = cmd_calibrate(ns, handle)
    results = baseline(
        handle,
        profile,
        args.runs_dir / handle.slug,
        seeds=tuple(args.seeds or profile.seeds),
        batch_size=args.batch_size,
        system=args.system,
        progress=not args.quiet,
    )
    projections = project_results(axes, results, handle.model_id)
    table = fingerprint_table(projections, axes.names)
    out_dir = args.runs_dir / handle.slug
    label = "" if args.system is None else "-system"
    csv = out_dir / f"baseline-{profile.name}{label}-projections.csv"
    atomic_write_text(csv, projections.to_csv(index=False))
    print(f"projections: {csv}")
    write_json(
        out_dir / f"fingerprint-{profile.name}.json",
        {
            "model_id": handle.model_id,
            "profile": profile.name,
            "axes_file": str(path),
            "fingerprint": table.reset_index().to_dict(orient="records"),
        },
    )
    ax = radar({handle.slug: table["mean"]}, title=f"{handle.slug} default style ({profile.name})")
    figs = save_figure(ax.figure, args.figures_dir / handle.slug / "fingerprint_radar")
    print(
        f"\nfingerprint of {handle.model_id} ({profile.name} profile, {table['n'].max()} questions, "
        f"seeds {list(results)}); 0 = calibration midpoint, +1/-1 = towards the first/second pole"
    )
    print(table.round(3).to_string())
    print(f"radar chart: {figs[0]}\nwall time: {time.perf_counter() - start:.0f} s")
    return table


def cmd_project(args) -> None:
    from styleprobe.pipeline import Item, read_responses

    handle = _load(args)
    axes = AxisSet.load(_axes_path(args, handle))
    if axes.model_id != handle.model_id:
        raise AxesError(
            f"axes in {_axes_path(args, handle)} belong to {axes.model_id!r}, not {handle.model_id!r}"
        )
    rows, items, responses = [], [], []
    for number, line in enumerate(args.input.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            response = row["response"]
            if not isinstance(response, str) or not response.strip():
                raise ValueError("empty `response`")
            item = Item(
                str(number),
                row.get("question", ""),
                row.get("system"),
                tuple(tuple(t) for t in row.get("history", ())),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            print(f"{args.input}:{number}: skipped: {err}", file=sys.stderr)
            continue
        rows.append(row)
        items.append(item)
        responses.append(response)
    if not rows:
        raise AxesError(f"{args.input} has no valid lines")
    per_layer = read_responses(
        handle,
        items,
        responses,
        Aggregation(**axes.aggregation),
        batch_size=args.batch_size or 16,
        progress=not args.quiet,
    )
    values = axes.project(Aggregation(**axes.aggregation).combine(per_layer), handle.model_id)
    lines = [
        json.dumps({**r, "projection": dict(zip(axes.names, np.round(v, 4).tolist(), strict=True))})
        for r, v in zip(rows, values, strict=True)
    ]
    text = "\n".join(lines) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
        print(f"{len(lines)} lines scored into {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def cmd_axes_list(args) -> None:
    rows = []
    for path in sorted(Path(args.axes_dir).glob("*.json")):
        try:
            axes = AxisSet.load(path)
        except AxesError as err:
            print(f"{path}: {err}", file=sys.stderr)
            continue
        acc = [v.get("pairwise_accuracy") for v in axes.calibration.values()]
        rows.append(
            {
                "file": path.name,
                "model_id": axes.model_id,
                "axes": len(axes.names),
                "hidden": axes.hidden_size,
                "profile": axes.meta.get("profile", {}).get("name"),
                "normalisation": axes.normalisation,
                "mean_accuracy": round(float(np.nanmean(acc)), 3) if acc else None,
            }
        )
    print(pd.DataFrame(rows).to_string(index=False) if rows else f"no axes in {args.axes_dir}")


def cmd_compare(args) -> int:
    from styleprobe.compare import compare_fingerprints, load_fingerprint

    table = compare_fingerprints(
        load_fingerprint(args.a), load_fingerprint(args.b), threshold=args.threshold, n_boot=args.n_boot
    )
    print(
        f"B = {args.b}\nA = {args.a}\n(difference B - A, bootstrap 95 % CI, paired: {table.attrs['paired']})"
    )
    print(table.round(3).to_string())
    if args.figure:
        import matplotlib.pyplot as plt

        from styleprobe.plots import save_figure

        fig, ax = plt.subplots(figsize=(7, 3.5))
        err = [table["difference"] - table["ci_low"], table["ci_high"] - table["difference"]]
        colours = ["C3" if f else "C0" for f in table["flagged"]]
        ax.bar(range(len(table)), table["difference"], yerr=err, color=colours, capsize=3)
        ax.axhline(0, color="k", lw=0.8)
        for sign in (-1, 1):
            ax.axhline(sign * args.threshold, color="grey", ls=":", lw=0.8)
        ax.set_xticks(range(len(table)), table.index, rotation=30, ha="right")
        ax.set_ylabel("difference B - A")
        print(f"figure: {save_figure(fig, args.figure.with_suffix(''))[0]}")
    flagged = list(table.index[table["flagged"]])
    print(f"flagged: {', '.join(flagged) if flagged else 'none'}")
    return 1 if flagged else 0


def cmd_axes(args) -> None:
    from styleprobe import interop

    if args.axes_command == "list":
        cmd_axes_list(args)
    elif args.axes_command == "export-gguf":
        axes = AxisSet.load(args.axes_file)
        path = interop.export_control_vector(
            axes, args.axis, args.out, layers=args.layers, strength=args.strength
        )
        print(f"control vector for {args.axis} written to {path}")
    else:
        axes = interop.import_study_axes(args.npz, args.model_id, args.n_layers)
        print(f"{len(axes.names)} axes for {axes.model_id} written to {axes.save(args.out)}")


def cmd_reproduce(args) -> None:
    import yaml

    from styleprobe.models import load_presets
    from styleprobe.reproduce import reproduce

    models = list(load_presets()) if args.all_presets else args.models
    parameters = {name: yaml.safe_load(value) for name, value in args.parameter}
    if args.profile:
        parameters["profile"] = args.profile
    reproduce(
        models,
        parameters,
        args.notebooks,
        runs_dir=args.runs_dir,
        out_dir=args.out_dir,
        dry_run=args.dry_run,
        prepare_only=args.prepare_only,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "calibrate": cmd_calibrate,
        "fingerprint": cmd_fingerprint,
        "project": cmd_project,
        "axes": cmd_axes,
        "reproduce": cmd_reproduce,
        "compare": cmd_compare,
    }
    try:
        status = commands[args.command](args)
    except KNOWN_ERRORS as err:
        print(f"styleprobe: error: {err}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0  # only compare returns an exit status


if __name__ == "__main__":
    sys.exit(main())
