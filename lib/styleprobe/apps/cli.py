"""`styleprobe`: calibrate style axes, fingerprint a model, score conversations, list axes."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe import __version__
from styleprobe.engine.models import (
    DEFAULT_MODEL,
    DTYPES,
    ModelLoadError,
    check_device,
    load_model,
    load_presets,
    slugify,
)
from styleprobe.engine.store import atomic_write_text, write_json
from styleprobe.errors import StyleprobeError, UsageError
from styleprobe.paths import folders
from styleprobe.protocol.axes import NORMALISATIONS, AxesError, AxisSet
from styleprobe.protocol.profiles import PROFILES, get_profile
from styleprobe.protocol.reading import CONTEXTS, DEFAULT_CONTEXT
from styleprobe.protocol.spec import Protocol

KNOWN_ERRORS = (StyleprobeError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
"""What the user can cause: printed as one line, exit status 2. Anything else is a bug (traceback)."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- option types: every numeric option and path is checked before any work ---------------------------------
def _integer(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    return _integer(text, 0)


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def device(text: str) -> str:
    try:
        return check_device(text)
    except ModelLoadError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def input_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    return path


def output_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory, not a file")
    if any(p.exists() and not p.is_dir() for p in path.parents):
        raise argparse.ArgumentTypeError(f"cannot write {path}: a parent of it is a file")
    return path


def folder(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    return path


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
    p.add_argument("--device", type=device, help="cuda, cuda:1, cpu, mps (default: cuda when available)")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        help="default: bfloat16 on CUDA (float16 without native bf16), float32 on CPU",
    )
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code from the hub")
    p.add_argument(
        "--batch-size", type=positive_int, help="answers per batch (default: the largest that fits)"
    )
    p.add_argument(
        "--root",
        type=folder,
        help="folder of runs/, axes/, figures/ and results/ (default: the checkout, or STYLEPROBE_ROOT; "
        "without --root each can be moved by STYLEPROBE_RUNS_DIR, _AXES_DIR, _FIGURES_DIR, _RESULTS_DIR)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
        "vector per axis and save it to <root>/axes/<model>.safetensors + .json.",
    )
    _common(cal)
    cal.add_argument("--axes", nargs="+", metavar="AXIS", help="only these axes (default: all 7)")
    cal.add_argument("--set", default="A", choices=["A", "B", "C"], help="instruction and question set")
    cal.add_argument(
        "--normalisation",
        default="crossfit",
        choices=NORMALISATIONS,
        help="crossfit (default: -1/+1 = held-out pole means, 0 halfway), median_iqr (in-sample median "
        "and IQR, earlier versions' default) or uncentred_iqr (the original study)",
    )
    cal.add_argument(
        "--context",
        choices=CONTEXTS,
        default=DEFAULT_CONTEXT,
        help="read the answers as question + answer only (uninstructed, default) or with the style "
        "instruction still in context (instructed: the original study's way)",
    )
    cal.add_argument("--out", type=output_file, help="axes file to write (default: <root>/axes/<model>.json)")
    cal.add_argument("--seed", type=non_negative_int, default=0)

    fp = sub.add_parser(
        "fingerprint",
        help="the model's default style (calibrates first if needed)",
        description="Calibrate if no axes exist for the model, answer the baseline questions with no "
        "system prompt, print the 7-axis table, save it as the baseline section of "
        "<root>/results/<model>.json (with its paper numbers and table, as notebook 02 does) and draw "
        "<root>/figures/<model>/fingerprint_radar.png.",
    )
    _common(fp)
    fp.add_argument("--axes-file", type=input_file, help="use these axes instead of <root>/axes/<model>.json")
    fp.add_argument(
        "--seeds", type=non_negative_int, nargs="+", help="baseline seeds (default: the profile's)"
    )
    fp.add_argument(
        "--system",
        help="answer under this system prompt (read without it), e.g. to test `compare`; needs --out, as "
        "such a fingerprint is not the model's baseline",
    )
    fp.add_argument(
        "--out",
        type=output_file,
        help="write the fingerprint to this results file (its baseline section; no paper numbers) and "
        "its radar beside it, instead of <root>/results/<model>.json and <root>/figures/",
    )

    cp = sub.add_parser(
        "compare",
        help="compare two fingerprints; exit status 1 when a shift is flagged",
        description="Per axis, the difference B - A with a t CI (paired t; Welch when A and B share no "
        "question), the CIs simultaneous over the axes compared (Bonferroni: together at 95 %); a shift is "
        "flagged when its CI excludes 0 and |difference| exceeds the threshold, so with no real difference "
        "some axis is flagged at most 5 % of the time. A and B are results files with a baseline "
        "section: results/<model>.json (notebook 02 or `styleprobe fingerprint`) or `fingerprint --out` "
        "files.",
    )
    cp.add_argument("a", type=input_file)
    cp.add_argument("b", type=input_file)
    cp.add_argument(
        "--threshold", type=non_negative_float, default=0.2, help="flag |difference| above this (default 0.2)"
    )
    cp.add_argument(
        "--figure", type=output_file, help="also draw the differences with their CIs (png and pdf)"
    )

    pr = sub.add_parser(
        "project",
        help="score responses in a JSONL file with existing axes",
        description="Each input line is a JSON object with `response` and optionally "
        "`question`, `system` and `history` ([[user, assistant], ...]). Writes the input "
        "lines with a `projection` object added; malformed lines are reported and skipped.",
    )
    _common(pr)
    pr.add_argument("input", type=input_file, help="JSONL file")
    pr.add_argument("--axes-file", type=input_file, help="axes to use (default: <root>/axes/<model>.json)")
    pr.add_argument("--output", type=output_file, help="output JSONL (default: print to stdout)")

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
    rp.add_argument("--runs-dir", type=folder, default=folders().runs)
    rp.add_argument("--out-dir", type=folder, help="write the notebooks here instead of under the run store")
    rp.add_argument("--dry-run", action="store_true", help="print every step without running it")
    rp.add_argument(
        "--prepare-only",
        action="store_true",
        help="only inject the parameters (for executing them later, e.g. with nbval)",
    )
    rp.add_argument("--jobs", type=positive_int, default=1, help="notebooks run at once when independent (1)")
    rp.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="one Ray task per model on the cluster at ADDRESS ('auto': the running one; none given: "
        "$RAY_ADDRESS, else a local cluster); the cross-model notebooks then run here",
    )
    rp.add_argument(
        "--no-shared-root",
        action="store_true",
        help="with --ray: the nodes share no folder; each task sends its model's outputs back",
    )
    rp.add_argument(
        "--gpus-per-model", type=float, help="with --ray: GPUs per model (default: the preset's gpus)"
    )

    ax = sub.add_parser("axes", help="manage axis files")
    ax_sub = ax.add_subparsers(dest="axes_command", required=True)
    ls = ax_sub.add_parser("list", help="list the axis files and their calibration accuracy")
    ls.add_argument("--axes-dir", type=folder, default=folders().axes)
    ex = ax_sub.add_parser("export-gguf", help="write one axis as a llama.cpp control vector (GGUF)")
    ex.add_argument("axes_file", type=input_file, help="an axes .json file (e.g. axes/<model>.json)")
    ex.add_argument("--axis", required=True)
    ex.add_argument("--out", type=output_file, required=True)
    ex.add_argument(
        "--layers", type=non_negative_int, nargs="+", help="decoder blocks, 0-based (default: the axes' own)"
    )
    ex.add_argument(
        "--strength", type=finite_float, help="vector length (default: the axis's normalisation scale)"
    )
    im = ax_sub.add_parser("import-study", help="the original study's .npz axes as an axes file")
    im.add_argument("npz", type=input_file, help="<model>_set_<X>_axes.npz")
    im.add_argument("--out", type=output_file, required=True, help="axes .json file to write")
    im.add_argument("--model-id", help="the model's id (default: from the file name, qwen_7b or llama_8b)")
    im.add_argument(
        "--n-layers", type=positive_int, help="decoder blocks of the model (default: from the file name)"
    )
    return parser


def _load(args) -> object:
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" and the like
    smoke = (getattr(args, "profile", None) or "").startswith("smoke")
    if args.model.startswith("random:") and (smoke or os.environ.get("STYLEPROBE_TEST_MODELS") == "1"):
        import styleprobe.testing  # noqa: F401  (registers the tiny random-init test models)
    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
    )


def model_slug(model: str) -> str:
    """The name a model's files go under (axes/<slug>.json, runs/<slug>/), known before it loads."""
    return model if model in load_presets() else slugify(model)


def _workspace(args, protocol: Protocol | None = None):
    """The loaded model's Workspace, its files under --root."""
    from styleprobe.workspace import Workspace

    handle = _load(args)
    profile = get_profile(args.profile)
    return Workspace(handle, profile, protocol or Protocol.load(), handle.slug, folders(args.root))


def cmd_calibrate(args, ws=None) -> AxisSet:
    from styleprobe.protocol.calibration import calibrate, calibration_items

    protocol = ws.protocol if ws else Protocol.load()
    # unknown axes fail here, before the model loads
    calibration_items(get_profile(args.profile), protocol, args.axes, args.set)
    ws = ws or _workspace(args, protocol)
    cal = calibrate(
        ws,
        axes=args.axes,
        instruction_set=args.set,
        normalisation=args.normalisation,
        seed=args.seed,
        batch_size=args.batch_size,
        context=args.context,
        progress=not args.quiet,
    )
    path = cal.axes.save(args.out or ws.axes_file)
    print(cal.evaluation.round(3).to_string())
    print(f"axes written to {path}")
    return cal.axes


def cmd_fingerprint(args) -> pd.DataFrame:
    from styleprobe.protocol import fingerprint
    from styleprobe.report.plots import radar, save_figure

    if args.system is not None and args.out is None:
        raise UsageError("--system needs --out: a fingerprint under a system prompt is not the baseline")
    start = time.perf_counter()
    ws = _workspace(args)
    path = args.axes_file or ws.axes_file
    if path.exists():
        axes = AxisSet.load(path)
    else:
        print(f"no axes at {path}: calibrating first")
        defaults = {"axes": None, "set": "A", "normalisation": "crossfit", "context": DEFAULT_CONTEXT}
        axes = cmd_calibrate(argparse.Namespace(**{**vars(args), **defaults, "out": path, "seed": 0}), ws)
    result = fingerprint.run(
        ws,
        axes=axes,
        seeds=args.seeds,
        batch_size=args.batch_size,
        system=args.system,
        progress=not args.quiet,
    )
    table = result.fingerprint
    shown = table[["mean", "ci_low", "ci_high"]].clip(-1, 1)
    ax = radar(
        {ws.slug: shown["mean"]},
        title=f"{ws.slug} default style, 95 % CI\n({ws.profile.name} profile, shown within ±1)",
        valid=result.validated(),
        intervals={ws.slug: (shown["ci_low"], shown["ci_high"])},
    )
    if args.out:  # a results file of this fingerprint alone, its radar beside it
        write_json(args.out, {"model": ws.slug, result.name: result.to_dict()})
        saved, figs = args.out, save_figure(ax.figure, args.out.with_suffix(""))
    else:
        saved, figs = ws.save(result), ws.save_figure(ax.figure, "fingerprint_radar")
    print(
        f"\nfingerprint of {result.model_id} ({result.profile} profile, {table['n'].max()} questions, "
        f"seeds {result.seeds}); 0 = calibration midpoint, +1/-1 = towards the first/second pole"
    )
    print(table.round(3).to_string())
    print(f"results: {saved}\nradar chart: {figs[0]}\nwall time: {time.perf_counter() - start:.0f} s")
    return table


def cmd_project(args) -> int:
    from styleprobe.engine.pipeline import Item, read_responses
    from styleprobe.formats.conversations import output_line, read_conversations

    conversations, bad = read_conversations(args.input)  # every line checked on its own, before any work
    for line in bad:
        print(f"{args.input}:{line.line}: skipped: {line.reason}", file=sys.stderr)
    if not conversations:
        raise UsageError(f"{args.input}: no line can be scored ({len(bad)} malformed, see above)")
    path = args.axes_file or folders(args.root).axes / f"{model_slug(args.model)}.json"
    axes = AxisSet.load(path)
    handle = _load(args)
    if axes.model_id != handle.model_id:
        raise AxesError(f"axes in {path} belong to {axes.model_id!r}, not {handle.model_id!r}")
    items = [Item(f"{args.input}:{c.line}", c.question, c.system, c.history) for c in conversations]
    aggregation = axes.reading()
    per_layer = read_responses(
        handle,
        items,
        [c.response for c in conversations],
        aggregation,
        batch_size=args.batch_size or 16,
        progress=not args.quiet,
    )
    values = axes.project(aggregation.combine(per_layer), handle.model_id)
    text = "".join(
        output_line(c.row, dict(zip(axes.names, v.tolist(), strict=True))) + "\n"
        for c, v in zip(conversations, values, strict=True)
    )
    if args.output:
        atomic_write_text(args.output, text)
        print(f"{len(conversations)} lines scored into {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if bad:
        print(f"{len(bad)} of {len(bad) + len(conversations)} lines skipped", file=sys.stderr)
    return 1 if bad else 0


def cmd_axes_list(args) -> None:
    rows = []
    for path in sorted(Path(args.axes_dir).glob("*.json")):
        try:
            axes = AxisSet.load(path)
        except AxesError as err:
            print(f"styleprobe: warning: skipped: {one_line(err)}", file=sys.stderr)
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
    from styleprobe.analyses.compare import ALPHA, compare_fingerprints, load_fingerprint
    from styleprobe.protocol.validity import MARK, mark

    table = compare_fingerprints(load_fingerprint(args.a), load_fingerprint(args.b), threshold=args.threshold)
    models, ids = table.attrs["models"], table.attrs["axes_ids"]
    for side, path, i in (("A", args.a, 0), ("B", args.b, 1)):
        print(f"{side} = {path} (model {models[i] or 'not recorded'}, axes id {ids[i] or 'not recorded'})")
    family = len(table) - len(table.attrs["not_comparable"])
    print(
        f"(difference B - A, t CI at {table.attrs['ci']:.2%} each: {1 - ALPHA:.0%} together over the "
        f"{family} axes compared (Bonferroni); paired: {table.attrs['paired']})"
    )
    print("\n".join(table.attrs["notes"]) or "A and B: same model, same axes")
    print(table.round(3).to_string())
    if args.figure:
        from styleprobe.report import style
        from styleprobe.report.plots import axis_labels, save_figure

        with style.context():
            fig, ax = style.figure("two_thirds", 2.6)
            err = [table["difference"] - table["ci_low"], table["ci_high"] - table["difference"]]
            colours = ["C1" if f else "C0" for f in table["flagged"]]
            ax.bar(range(len(table)), table["difference"], yerr=err, color=colours, capsize=2)
            ax.axhline(0, color="k", lw=0.8)
            for sign in (-1, 1):
                ax.axhline(sign * args.threshold, color="grey", ls=":", lw=0.8)
            ax.set_xticks(range(len(table)), axis_labels(table.index), rotation=30, ha="right")
            ax.set_ylabel("difference B − A (normalised units)")
        stem = args.figure.with_suffix("") if args.figure.suffix in (".png", ".pdf") else args.figure
        print(f"figure: {save_figure(fig, stem)[0]}")
    flagged = list(table.index[table["flagged"]])
    valid = {axis: table.loc[axis, "validation"] == "valid" for axis in flagged}
    print(f"flagged: {', '.join(mark(axis, valid[axis]) for axis in flagged) if flagged else 'none'}")
    if not all(valid.values()):
        print(
            f"{MARK} failed held-out validation (or not recorded): the projection on this axis moved, but "
            "the axis is not shown to measure its style, so this is no evidence of a change in that style"
        )
    if table.attrs["not_comparable"]:  # exit status 2: the gate cannot pass on an axis it could not check
        reasons = "; ".join(f"{axis} ({status})" for axis, status in table.attrs["not_comparable"].items())
        raise AxesError(f"not comparable: {reasons} (A = {args.a}, B = {args.b})")
    return 1 if flagged else 0


def cmd_axes(args) -> None:
    from styleprobe.formats import interop

    if args.axes_command == "list":
        cmd_axes_list(args)
    elif args.axes_command == "export-gguf":
        axes = AxisSet.load(args.axes_file)
        path = interop.export_control_vector(
            axes, args.axis, args.out, layers=args.layers, strength=args.strength
        )
        print(f"control vector for {args.axis} written to {path}")
    else:
        axes = interop.import_study_axes(args.npz, Protocol.load(), args.model_id, args.n_layers)
        print(f"{len(axes.names)} axes for {axes.model_id} written to {axes.save(args.out)}")


def cmd_reproduce(args) -> int:
    import yaml

    from styleprobe.apps.reproduce import reproduce

    models = list(load_presets()) if args.all_presets else args.models
    parameters = {}
    for name, value in args.parameter:
        try:
            parameters[name] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            reason = " ".join(str(getattr(err, "problem", None) or err).split())
            raise UsageError(f"-p {name} {value!r}: not valid YAML ({reason})") from None
    if args.profile:
        parameters["profile"] = args.profile
    if args.ray is not None:
        from styleprobe.apps.cluster import run_on_ray, summary

        runs = run_on_ray(
            models,
            parameters,
            args.notebooks,
            address=args.ray,
            shared_root=not args.no_shared_root,
            gpus_per_model=args.gpus_per_model,
        )
        print(summary(runs))
        return 1 if any(r.status != "done" for r in runs) else 0
    reproduce(
        models,
        parameters,
        args.notebooks,
        runs_dir=args.runs_dir,
        out_dir=args.out_dir,
        dry_run=args.dry_run,
        prepare_only=args.prepare_only,
        jobs=args.jobs,
    )
    return 0


def one_line(err: BaseException) -> str:
    """The error's message on one line (an OSError's message names its file)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings meant for the user (ContextWarning and the like) as one `styleprobe: warning:` line."""
    if issubclass(category, UserWarning) and category.__module__.startswith("styleprobe"):
        print(f"styleprobe: warning: {message}", file=sys.stderr)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


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
    with warnings.catch_warnings():  # restores the usual warning display when the command ends
        warnings.showwarning = _show_warning
        try:
            status = commands[args.command](args)
        except KNOWN_ERRORS as err:
            print(f"styleprobe: error: {one_line(err)}", file=sys.stderr)
            return 2
    return status if isinstance(status, int) else 0  # compare and project return their own status


if __name__ == "__main__":
    sys.exit(main())
