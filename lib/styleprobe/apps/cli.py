"""`styleprobe`: calibrate style axes, fingerprint a model, score conversations, compare fingerprints, manage
axes files and reproduce the notebooks.

Options follow lm-eval-harness where it has one: `--output-path` (one output root, or the one file a command
writes), `--model-args`, `--limit`, `--seed`, `--log-samples`, `--verbosity`. Results tables go to stdout;
where files went, warnings and errors go to stderr through `logging` (errors always, as one line)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from styleprobe import __version__
from styleprobe.engine.models import (
    DEFAULT_MODEL,
    DTYPES,
    ModelHandle,
    ModelLoadError,
    check_device,
    check_model_args,
    load_model,
    load_presets,
    model_slug,
    slugify,
)
from styleprobe.engine.store import atomic_write_text, check_writable, write_json
from styleprobe.errors import StyleprobeError, UsageError
from styleprobe.formats.conversations import BadLine, Conversation, output_line, read_conversations
from styleprobe.paths import folders
from styleprobe.protocol.axes import NORMALISATIONS, AxesError, AxisSet
from styleprobe.protocol.profiles import PROFILES, Profile, drift_profile, get_profile, with_sizes
from styleprobe.protocol.reading import CONTEXTS, DEFAULT_CONTEXT
from styleprobe.protocol.spec import Protocol

if TYPE_CHECKING:
    from styleprobe.engine.pipeline import Item

KNOWN_ERRORS = (StyleprobeError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
"""What the user can cause: printed as one line, exit status 2. Anything else is a bug (traceback)."""

log = logging.getLogger("styleprobe")
VERBOSITY = ("DEBUG", "INFO", "WARNING", "ERROR")
LIMITED_SIZES = ("n_calibration", "n_evaluation", "n_baseline", "n_benchmark")
"""The profile's question counts that `--limit` caps (per axis and pole, or per list)."""
DRIFT_CONVERSATIONS = (
    "n_scenarios",
    "n_controls",
)  # notebook 09's conversations, capped by reproduce --limit
MODEL_HELP = (
    "preset name (data/models.yaml), local directory, .gguf file, hub id, or random:<arch> (a tiny "
    f"random-init llama, qwen2, qwen3, gemma2 or gemma3 for tests) (default: {DEFAULT_MODEL})"
)
PROFILE_HELP = (
    "protocol size: paper (the full protocol; default with a GPU), quick (default without one) or smoke "
    "(a few questions and tokens, for tiny test models)"
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- option types: every numeric option and path is checked before any work ---------------------------------
SEED_MAX = 2**32 - 1  # the largest seed NumPy's global generator takes (`seed_everything`)


def _integer(text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    return _integer(text, 0)


def seed_int(text: str) -> int:
    return _integer(text, 0, SEED_MAX)


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


def _model_arg_value(text: str) -> object:
    """A `--model-args` value as lm-eval reads it: True/False/None, an int, a float, else the string."""
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def model_args(text: str) -> dict[str, object]:
    """`key=value,key=value` -> {key: value}, each key once, none that has an option of its own."""
    parsed: dict[str, object] = {}
    for part in text.split(","):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key.isidentifier():
            raise argparse.ArgumentTypeError(f"expected key=value[,key=value...], got {part.strip()!r}")
        if key in parsed:
            raise argparse.ArgumentTypeError(f"{key!r} is given twice")
        parsed[key] = _model_arg_value(value)
    try:
        check_model_args(parsed)
    except ModelLoadError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return parsed


def verbosity(text: str) -> str:
    if text.upper() not in VERBOSITY:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(VERBOSITY)}, got {text!r}")
    return text.upper()


# -- options shared by several commands ---------------------------------------------------------------------
def _verbosity_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verbosity",
        type=verbosity,
        default="INFO",
        metavar="LEVEL",
        help="messages on stderr from this level up: DEBUG, INFO (default: also where files went), WARNING "
        "or ERROR; results go to stdout and errors are always shown",
    )


def _output_option(p: argparse.ArgumentParser, file: str | None, old: tuple[str, ...] = ()) -> None:
    """`--output-path`: the output root, or (`file` says which) the one file the command writes; the flags
    it replaced stay as hidden aliases for one release (`--root`, and the command's old file flags)."""
    root_help = (
        "output root: runs/, axes/, figures/ and results/ go below it (default: the repository, or the "
        "current folder for an installed wheel, or $STYLEPROBE_ROOT)"
    )
    p.add_argument("--output-path", metavar="PATH", help=f"{root_help}; or {file}" if file else root_help)
    p.add_argument("--root", type=folder, help=argparse.SUPPRESS)  # before --output-path
    if old:
        p.add_argument(*old, dest="out", type=output_file, help=argparse.SUPPRESS)


MODEL_ARGS_HELP = (
    "passed to from_pretrained, e.g. attn_implementation=sdpa,low_cpu_mem_usage=True (values: "
    "True/False/None, numbers, else strings; dtype, revision and trust_remote_code have options)"
)


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--model-args", type=model_args, default={}, metavar="KEY=VALUE,...", help=MODEL_ARGS_HELP)
    p.add_argument("--profile", choices=list(PROFILES), help=PROFILE_HELP)
    p.add_argument("--device", type=device, help="cuda, cuda:1, cpu, mps (default: cuda when available)")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        help="default: bfloat16 where the hardware computes in it (CUDA with bf16, CPUs with AVX512-BF16 or "
        "AMX), float16 on older GPUs, float32 on other CPUs",
    )
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code from the hub")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="answers per batch (default: the largest that fits)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _answer_options(p: argparse.ArgumentParser, seed_help: str) -> None:
    """Options of the commands that answer questions: --limit, --seed, --log-samples."""
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="at most N questions per list (calibration and evaluation questions per axis, baseline "
        "questions): a partial run for testing, marked as limited in what it writes and in its own run "
        "folders, never mixed with full runs",
    )
    p.add_argument("--seed", type=seed_int, metavar="N", help=seed_help)
    p.add_argument(
        "--log-samples",
        action="store_true",
        help="also write every answer (question, system prompt, text, tokens, empty/cut/clipped flags, "
        "projections) as JSON lines to <output>.samples.jsonl beside the axes or results file",
    )


def _axis_fit_options(p: argparse.ArgumentParser) -> None:
    """--reading and --estimator: how calibration answers are read and each axis's direction fitted."""
    from styleprobe.protocol.calibration import DEFAULT_ESTIMATOR, DEFAULT_READING, READINGS
    from styleprobe.protocol.estimators import ESTIMATORS

    p.add_argument(
        "--reading",
        choices=READINGS,
        default=DEFAULT_READING,
        help=f"study (the study's: last 4 blocks, weights 0.1-0.4, decay 0.9) or nested (each axis's "
        f"block and token pooling chosen by cross-validation on the calibration questions); default "
        f"{DEFAULT_READING}",
    )
    p.add_argument(
        "--estimator",
        choices=list(ESTIMATORS),
        default=DEFAULT_ESTIMATOR,
        help=f"how each axis's direction is fitted (default {DEFAULT_ESTIMATOR}; study: the study's "
        "difference of trimmed means; --reading study --estimator study writes the study's axes)",
    )


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
        description="Generate answers under each axis' two pole instructions, fit one unit vector per axis "
        "and save it to <output-path>/axes/<model>.json + .safetensors.",
    )
    _model_options(cal)
    _output_option(cal, "an axes .json file to write instead of <output-path>/axes/<model>.json", ("--out",))
    _answer_options(cal, "sampling seed of the calibration answers (default 0)")
    cal.add_argument("--axes", nargs="+", metavar="AXIS", help="only these axes (default: all 7)")
    cal.add_argument("--set", default="A", choices=["A", "B", "C"], help="instruction and question set")
    _axis_fit_options(cal)
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
    _verbosity_option(cal)

    fp = sub.add_parser(
        "fingerprint",
        help="the model's default style (calibrates first if needed)",
        description="Calibrate if no axes exist for the model, answer the baseline questions with no "
        "system prompt, print the 7-axis table, save it as the baseline section of "
        "<output-path>/results/<model>.json (with its paper numbers and table, as notebook 02 does) and "
        "draw <output-path>/figures/<model>/fingerprint_radar.png.",
    )
    _model_options(fp)
    _output_option(
        fp,
        "a results .json file for this fingerprint alone (its baseline section, no paper numbers; radar "
        "beside it)",
        ("--out",),
    )
    _answer_options(
        fp,
        "answer the baseline once, with this sampling seed (default: the profile's seeds; --seeds for "
        "several); also the seed of a calibration run first",
    )
    fp.add_argument(
        "--axes-file", type=input_file, help="use these axes instead of <output-path>/axes/<model>.json"
    )
    fp.add_argument("--seeds", type=seed_int, nargs="+", help="baseline seeds (default: the profile's)")
    fp.add_argument(
        "--system",
        help="answer under this system prompt (read without it), e.g. to test `compare`; needs "
        "--output-path FILE.json, as such a fingerprint is not the model's baseline",
    )
    _verbosity_option(fp)

    cp = sub.add_parser(
        "compare",
        help="compare two fingerprints; exit status 1 when a shift is flagged",
        description="Per axis, the shift from A to B (the difference B - A) with a t CI (paired t; Welch "
        "when A and B share no question), the CIs simultaneous over the axes compared (Bonferroni: "
        "together at 95 %); a shift is flagged when its CI excludes 0 and |difference| exceeds the "
        "threshold, so with no real difference some axis is flagged at most 5 % of the time. Exit "
        "status 0: nothing flagged, 1: a shift flagged, 2: bad input or an axis not comparable.",
    )
    fingerprint_file = (
        "a results file with a baseline section: results/<model>.json (notebook 02 or `styleprobe "
        "fingerprint`) or a `fingerprint --output-path FILE.json`"
    )
    cp.add_argument("a", type=input_file, metavar="A", help=f"the reference fingerprint, {fingerprint_file}")
    cp.add_argument("b", type=input_file, metavar="B", help="the fingerprint compared with it (same kinds)")
    cp.add_argument(
        "--threshold", type=non_negative_float, default=0.2, help="flag |difference| above this (default 0.2)"
    )
    cp.add_argument(
        "--figure", type=output_file, help="also draw the differences with their CIs (png and pdf)"
    )
    _verbosity_option(cp)

    pr = sub.add_parser(
        "project",
        help="score responses in a JSONL file with existing axes",
        description="Each input line is a JSON object with `response` and optionally `question`, `system` "
        "and `history` ([[user, assistant], ...]), or a chat log with `messages`. Writes the input lines "
        "with a `projection` object added; malformed lines, and lines longer than the model's context, are "
        "reported and skipped.",
    )
    _model_options(pr)
    _output_option(pr, "a .jsonl file for the scored lines (default: stdout)", ("--output",))
    pr.add_argument("input", type=input_file, help="JSONL file")
    pr.add_argument(
        "--axes-file", type=input_file, help="axes to use (default: <output-path>/axes/<model>.json)"
    )
    _verbosity_option(pr)

    rp = sub.add_parser(
        "reproduce",
        help="execute the notebooks with papermill for each model",
        description="Run every per-model notebook for each model, in the order their results need "
        "(executed copies under <output-path>/runs/<model>/notebooks/), then the cross-model notebooks "
        "10 and 12. 03 runs for models with a base model, 06 for models with a thinking switch, 00 only "
        "when named. Finished generations are reused.",
    )
    rp.add_argument(
        "--models", nargs="+", default=[DEFAULT_MODEL], help=f"{MODEL_HELP.split(' (default')[0]}"
    )
    rp.add_argument("--all-presets", action="store_true", help="every model preset in data/models.yaml")
    rp.add_argument("--notebooks", nargs="+", metavar="NB", help="only these, e.g. 02 or 02_baseline")
    rp.add_argument(
        "--skip",
        nargs="+",
        metavar="NB",
        default=[],
        help="leave these out, e.g. 03 (make reproduce leaves out 03, the longest on a CPU)",
    )
    rp.add_argument("--profile", choices=list(PROFILES), help=f"{PROFILE_HELP}; passed to every notebook")
    rp.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="extra notebook parameter (value parsed as YAML)",
    )
    rp.add_argument(
        "--output-path",
        metavar="DIR",
        help="output root of the notebooks (their `root` parameter) and of their executed copies "
        "(default: the repository, or $STYLEPROBE_ROOT)",
    )
    rp.add_argument("--runs-dir", type=folder, help=argparse.SUPPRESS)  # before --output-path
    rp.add_argument(
        "--model-args",
        type=model_args,
        default={},
        metavar="KEY=VALUE,...",
        help=MODEL_ARGS_HELP + "; the notebooks' `model_args` parameter",
    )
    rp.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="at most N questions per list in every notebook (its `sizes`) and N drift conversations: a "
        "partial run for testing, marked in each result by its profile name (e.g. quick+n_baseline=N)",
    )
    rp.add_argument(
        "--seed",
        type=seed_int,
        metavar="N",
        help="the `seed` parameter of the notebooks that take one (calibration and drift sampling); "
        "baseline repetitions are -p seeds",
    )
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
        "--gpus-per-model",
        type=non_negative_float,
        help="with --ray: GPUs per model (default: the preset's gpus)",
    )
    _verbosity_option(rp)

    ax = sub.add_parser("axes", help="list, export and import axes files")
    ax_sub = ax.add_subparsers(dest="axes_command", required=True)
    ls = ax_sub.add_parser("list", help="list the axes files and their calibration accuracy")
    ls.add_argument(
        "--output-path", metavar="DIR", help="output root whose axes/ to list (default: the repository)"
    )
    ls.add_argument("--axes-dir", type=folder, help=argparse.SUPPRESS)  # before --output-path
    _verbosity_option(ls)
    ex = ax_sub.add_parser("export-gguf", help="write one axis as a llama.cpp control vector (GGUF)")
    ex.add_argument("axes_file", type=input_file, help="an axes .json file (e.g. axes/<model>.json)")
    ex.add_argument("--axis", required=True, help="the axis to export, e.g. formal_casual")
    ex.add_argument("--output-path", metavar="FILE.gguf", help="the control vector file to write (required)")
    ex.add_argument("--out", type=output_file, help=argparse.SUPPRESS)  # before --output-path
    ex.add_argument(
        "--layers", type=non_negative_int, nargs="+", help="decoder blocks, 0-based (default: the axes' own)"
    )
    ex.add_argument(
        "--strength", type=finite_float, help="vector length (default: the axis's normalisation scale)"
    )
    _verbosity_option(ex)
    im = ax_sub.add_parser("import-study", help="the original study's .npz axes as an axes file")
    im.add_argument("npz", type=input_file, help="<model>_set_<X>_axes.npz")
    im.add_argument(
        "--output-path",
        metavar="PATH",
        help="an axes .json file to write, or an output root: <output-path>/axes/<model>.json, where "
        "fingerprint finds it (default: the repository's axes/)",
    )
    im.add_argument("--out", type=output_file, help=argparse.SUPPRESS)  # before --output-path
    im.add_argument("--model-id", help="the model's id (default: from the file name, qwen_7b or llama_8b)")
    im.add_argument(
        "--n-layers",
        type=positive_int,
        help="decoder blocks of the model (default: from the file name; for a file named for the study's "
        "qwen_7b or llama_8b, that model's own)",
    )
    _verbosity_option(im)
    return parser


# -- where outputs go ---------------------------------------------------------------------------------------
OLD_FLAGS = {"root": "--root", "out": "--out/--output", "runs_dir": "--runs-dir", "axes_dir": "--axes-dir"}


def _checked(check, text: str, option: str):
    try:
        return check(text)
    except argparse.ArgumentTypeError as err:
        raise UsageError(f"{option} {text}: {err}") from None


def outputs(args, suffix: str | None) -> tuple[Path | None, Path | None]:
    """(output root, output file) from --output-path (a path ending in `suffix` names the file, anything
    else the root) or the old flags; None: the default."""
    for dest, flags in OLD_FLAGS.items():
        if getattr(args, dest, None) is not None:
            log.warning(f"{flags} will be removed in the next release; use --output-path")
    root, out = getattr(args, "root", None), getattr(args, "out", None)
    if args.output_path is None:
        return root, out
    path = Path(args.output_path)
    if suffix is not None and path.suffix.lower() == suffix:
        if out is not None:
            raise UsageError(f"--output-path {path} and {OLD_FLAGS['out']} {out} both name the output file")
        return root, _checked(output_file, args.output_path, "--output-path")
    if root is not None:
        raise UsageError(f"--output-path {path} and --root {root} both name the output root")
    return _checked(folder, args.output_path, "--output-path"), out


# -- --limit and --seed -------------------------------------------------------------------------------------
def limited_sizes(profile: Profile, limit: int | None) -> dict[str, int]:
    """The question counts of `profile` that `limit` lowers, set to it."""
    if limit is None:
        return {}
    return {name: limit for name in LIMITED_SIZES if getattr(profile, name) > limit}


def _profile(args) -> Profile:
    """The profile asked for, its question counts capped by --limit (then named e.g. quick+n_baseline=3, so
    its run folders are its own: a limited run never resumes a full one or the other way round)."""
    profile = get_profile(args.profile)
    limited = with_sizes(profile, **limited_sizes(profile, args.limit))
    if args.limit is not None:
        if limited is profile:
            log.info(f"--limit {args.limit} caps nothing in the {profile.name} profile: a full run")
        else:
            log.warning(f"--limit {args.limit}: a partial run for testing (profile {limited.name})")
    return limited


def limit_of(args) -> int | None:
    """--limit when it lowered the profile's sizes (None: a full run)."""
    return args.limit if limited_sizes(get_profile(args.profile), args.limit) else None


def limit_parameters(parameters: dict, limit: int) -> dict:
    """Notebook parameters that cap every question list at `limit` (`sizes`, on top of any given) and the
    drift conversations (`n_scenarios`, `n_controls`); the profile is named, so that every notebook caps
    the same one."""
    sizes = parameters.get("sizes") or {}
    if not isinstance(sizes, dict):
        raise UsageError(f"parameter sizes must be a mapping like {{n_baseline: 10}}, got {sizes!r}")
    try:
        profile = get_profile(parameters.get("profile"), **sizes)
    except ValueError as err:
        raise UsageError(str(err)) from None
    extra = {"profile": profile.name.split("+")[0], "sizes": {**sizes, **limited_sizes(profile, limit)}}
    drift = drift_profile(profile)
    for name in DRIFT_CONVERSATIONS:
        if (parameters.get(name) or getattr(drift, name)) > limit:
            extra[name] = limit
    return extra


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's global generators (answers are sampled with keys of their own)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- the commands -------------------------------------------------------------------------------------------
def _load(args) -> object:
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" and the like
    smoke = (getattr(args, "profile", None) or "").startswith("smoke")
    if args.model.startswith("random:") and (smoke or os.environ.get("STYLEPROBE_TEST_MODELS") == "1"):
        import styleprobe.testing  # noqa: F401  (registers the tiny random-init test models)
    log.debug(f"loading {args.model} (model arguments {args.model_args or 'none'})")
    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        model_args=args.model_args,
    )


def _workspace(args, profile: Profile, root: Path | None, protocol: Protocol | None = None):
    """The loaded model's Workspace, its files under the output root."""
    from styleprobe.workspace import Workspace

    handle = _load(args)
    return Workspace(handle, profile, protocol or Protocol.load(), handle.slug, folders(root))


def _calibrate(
    ws,
    args: argparse.Namespace,
    path: Path,
    *,
    axes: list[str] | None = None,
    instruction_set: str = "A",
    normalisation: str = "crossfit",
    context: str = DEFAULT_CONTEXT,
) -> AxisSet:
    """Calibrate in `ws`, print the held-out table, save the axes to `path` (marked when --limit lowered
    the profile) and, with --log-samples, every answer beside them."""
    from styleprobe.protocol.calibration import DEFAULT_ESTIMATOR, DEFAULT_READING, calibrate

    seed = args.seed or 0
    seed_everything(seed)
    cal = calibrate(
        ws,
        axes=axes,
        reading=getattr(args, "reading", DEFAULT_READING),
        estimator=getattr(args, "estimator", DEFAULT_ESTIMATOR),
        instruction_set=instruction_set,
        normalisation=normalisation,
        seed=seed,
        batch_size=args.batch_size,
        context=context,
        progress=not args.quiet,
    )
    limit = limit_of(args)
    if limit is not None:
        cal.axes.meta["limit"] = limit
    saved = cal.axes.save(path)
    print(cal.evaluation.round(3).to_string())
    log.info(f"axes written to {saved}")
    if args.log_samples:
        parts = [cal.result] + ([cal.neutral] if cal.neutral is not None else [])
        _log_samples(saved, parts, cal.axes, ws.model.model_id)
    return cal.axes


def _log_samples(beside: Path, results, axes: AxisSet, model_id: str) -> None:
    from styleprobe.report.samples import sample_rows, samples_path, write_samples

    rows = [row for result in results for row in sample_rows(result, axes, model_id)]
    log.info(f"{len(rows)} answers logged to {write_samples(samples_path(beside), rows)}")


def cmd_calibrate(args) -> AxisSet:
    from styleprobe.protocol.calibration import calibration_items

    root, out = outputs(args, ".json")
    check_writable(folders(root).runs, out.parent if out else folders(root).axes)
    protocol = Protocol.load()
    profile = _profile(args)
    calibration_items(profile, protocol, args.axes, args.set)  # unknown axes fail here, before any work
    ws = _workspace(args, profile, root, protocol)
    return _calibrate(
        ws,
        args,
        out or ws.axes_file,
        axes=args.axes,
        instruction_set=args.set,
        normalisation=args.normalisation,
        context=args.context,
    )


def _fingerprint_axes(ws, args, path: Path) -> AxisSet:
    """The axes at `path`, calibrated first when there are none; axes made with --limit only for a limited
    run, so that a full fingerprint never rests on partial axes."""
    if not path.exists():
        log.info(f"no axes at {path}: calibrating first")
        return _calibrate(ws, args, path)
    axes = AxisSet.load(path)
    made_with = axes.meta.get("limit")
    if made_with is not None and args.limit is None:
        raise UsageError(
            f"{path}: calibrated with --limit {made_with} (a partial run); calibrate without --limit "
            "first, or fingerprint with --limit too"
        )
    return axes


def cmd_fingerprint(args) -> pd.DataFrame:
    from styleprobe.protocol import fingerprint
    from styleprobe.report.plots import radar, save_figure
    from styleprobe.report.results import update_results

    root, out = outputs(args, ".json")
    if args.system is not None and out is None:
        raise UsageError(
            "--system needs --output-path FILE.json: a fingerprint under a system prompt is not the baseline"
        )
    if args.seed is not None and args.seeds is not None:
        raise UsageError("give --seed (one baseline run) or --seeds (several), not both")
    seeds = [args.seed] if args.seed is not None else args.seeds
    where = folders(root)
    calibrates = not (args.axes_file or where.axes / f"{model_slug(args.model)}.json").exists()
    saves = [out.parent] if out else [where.results, where.figures]
    check_writable(where.runs, *([where.axes] if calibrates else []), *saves)
    start = time.perf_counter()
    ws = _workspace(args, _profile(args), root)
    axes = _fingerprint_axes(ws, args, args.axes_file or ws.axes_file)
    seed_everything(seeds[0] if seeds else 0)
    result = fingerprint.run(
        ws, axes=axes, seeds=seeds, batch_size=args.batch_size, system=args.system, progress=not args.quiet
    )
    limit = limit_of(args) or axes.meta.get("limit")
    section = {**result.to_dict(), **({"limit": limit} if limit is not None else {})}
    table = result.fingerprint
    shown = table[["mean", "ci_low", "ci_high"]].clip(-1, 1)
    profile = ws.profile.name.split("+")[0] + (f", limit {limit}" if limit is not None else "")
    ax = radar(
        {ws.slug: shown["mean"]},
        title=f"{ws.slug} default style, 95 % CI\n({profile} profile, shown within ±1)",
        valid=result.validated(),
        intervals={ws.slug: (shown["ci_low"], shown["ci_high"])},
    )
    if out:  # a results file of this fingerprint alone, its radar beside it
        write_json(out, {"model": ws.slug, result.name: section})
        saved, figs = out, save_figure(ax.figure, out.with_suffix(""))
    elif limit is not None:  # its section, marked; no paper numbers from a partial run
        saved = update_results(ws.slug, result.name, section, ws.results_dir)
        figs = ws.save_figure(ax.figure, "fingerprint_radar")
    else:
        saved, figs = ws.save(result), ws.save_figure(ax.figure, "fingerprint_radar")
    if args.log_samples:
        answers = fingerprint.baseline(  # the stored answers of the run above, read back
            ws, seeds=tuple(result.seeds), aggregation=axes.reading(), system=args.system, progress=False
        )
        _log_samples(saved, answers.values(), axes, result.model_id)
    print(
        f"\nfingerprint of {result.model_id} ({result.profile} profile, {table['n'].max()} questions, "
        f"seeds {result.seeds}); 0 = calibration midpoint, +1/-1 = towards the first/second pole"
    )
    if limit is not None:
        print(f"LIMITED RUN (--limit {limit}): at most {limit} questions per list; not a full fingerprint")
    print(table.round(3).to_string())
    log.info(f"results: {saved}\nradar chart: {figs[0]}\nwall time: {time.perf_counter() - start:.0f} s")
    return table


def _report_skipped(source: Path, skipped: list[BadLine], left: int, total: int) -> None:
    """`file:line: skipped: reason` on stderr for each refused line; with no line `left`, a UsageError."""
    for line in skipped:
        print(f"{source}:{line.line}: skipped: {line.reason}", file=sys.stderr)
    if not left:
        raise UsageError(f"{source}: no line can be scored ({total} skipped, see above)")


def _past_context(handle: ModelHandle, items: list[Item], conversations: list[Conversation]) -> list[BadLine]:
    """The lines whose conversation with its response exceeds the model's context, as BadLines: refused
    before any forward pass (each text tokenized once), since reading them runs the model past its trained
    positions (and, for a long one, without bound)."""
    from styleprobe.engine.pipeline import context_length, conversation_lengths

    limit = context_length(handle)
    if not limit:
        return []
    lengths = conversation_lengths(handle, items, [c.response for c in conversations])
    return [
        BadLine(c.line, f"{n:,} tokens with its conversation, more than the model's context of {limit:,}")
        for c, n in zip(conversations, lengths, strict=True)
        if n > limit
    ]


def cmd_project(args) -> int:
    from styleprobe.engine.pipeline import Item, read_responses

    root, out = outputs(args, ".jsonl")
    if out:
        check_writable(out.parent)
    conversations, bad = read_conversations(args.input)  # every line checked on its own, before any work
    _report_skipped(args.input, bad, len(conversations), len(bad))
    path = args.axes_file or folders(root).axes / f"{model_slug(args.model)}.json"
    axes = AxisSet.load(path)
    handle = _load(args)
    if axes.model_id != handle.model_id:
        raise AxesError(f"axes in {path} belong to {axes.model_id!r}, not {handle.model_id!r}")
    items = [Item(f"{args.input}:{c.line}", c.question, c.system, c.history) for c in conversations]
    too_long = _past_context(handle, items, conversations)  # before any forward pass
    if too_long:
        refused = {line.line for line in too_long}
        kept = [k for k, c in enumerate(conversations) if c.line not in refused]
        conversations, items = [conversations[k] for k in kept], [items[k] for k in kept]
        bad += too_long
        _report_skipped(args.input, too_long, len(conversations), len(bad))
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
    if out:
        atomic_write_text(out, text)
        log.info(f"{len(conversations)} lines scored into {out}")
    else:
        sys.stdout.write(text)
    if bad:
        log.warning(f"{len(bad)} of {len(bad) + len(conversations)} lines skipped")
    return 1 if bad else 0


def cmd_axes_list(args) -> None:
    root, _ = outputs(args, None)
    folder_ = args.axes_dir or folders(root).axes
    rows = []
    for path in sorted(Path(folder_).glob("*.json")):
        try:
            axes = AxisSet.load(path)
        except AxesError as err:
            log.warning(f"skipped: {one_line(err)}")
            continue
        acc = [v.get("pairwise_accuracy") for v in axes.calibration.values()]
        rows.append(
            {
                "file": path.name,
                "model_id": axes.model_id,
                "axes": len(axes.names),
                "hidden": axes.hidden_size,
                "profile": axes.meta.get("profile", {}).get("name"),
                "limit": axes.meta.get("limit"),
                "normalisation": axes.normalisation,
                "mean_accuracy": round(float(np.nanmean(acc)), 3) if acc else None,
            }
        )
    print(pd.DataFrame(rows).to_string(index=False) if rows else f"no axes in {folder_}")


def cmd_compare(args) -> int:
    from styleprobe.analyses.compare import ALPHA, compare_fingerprints, load_fingerprint
    from styleprobe.protocol.validity import MARK, mark

    table = compare_fingerprints(load_fingerprint(args.a), load_fingerprint(args.b), threshold=args.threshold)
    models, ids = table.attrs["models"], table.attrs["axes_ids"]
    for side, path, i in (("A", args.a, 0), ("B", args.b, 1)):
        print(f"{side} = {path} (model {models[i] or 'not recorded'}, axes id {ids[i] or 'not recorded'})")
    family = len(table) - len(table.attrs["not_comparable"])
    print(
        f"(shift from A to B = mean_b - mean_a, t CI at {table.attrs['ci']:.2%} each: {1 - ALPHA:.0%} "
        f"together over the {family} axes compared (Bonferroni); paired: {table.attrs['paired']})"
    )
    if models[0] and models[0] == models[1] and ids[0] and ids[0] == ids[1]:
        print("A and B: same model, same axes")
    if table.attrs["notes"]:
        print("\n".join(table.attrs["notes"]))
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
        log.info(f"figure: {save_figure(fig, stem)[0]}")
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
        _, out = outputs(args, ".gguf")
        if out is None:
            raise UsageError("axes export-gguf needs --output-path FILE.gguf")
        check_writable(out.parent)
        axes = AxisSet.load(args.axes_file)
        path = interop.export_control_vector(axes, args.axis, out, layers=args.layers, strength=args.strength)
        log.info(f"control vector for {args.axis} written to {path}")
    else:
        root, out = outputs(args, ".json")
        check_writable(out.parent if out else folders(root).axes)
        axes = interop.import_study_axes(args.npz, Protocol.load(), args.model_id, args.n_layers)
        path = axes.save(out or folders(root).axes / f"{slugify(axes.model_id)}.json")
        log.info(f"{len(axes.names)} axes for {axes.model_id} written to {path}")


PARAMETER_MAX_CHARS = 10_000
"""The longest -p value read: notebook parameters are short (seeds, sizes, a model name, model arguments)."""


class _NoAliases(yaml.SafeLoader):
    """YAML without aliases (`*name`): a notebook parameter needs none, and a few nested ones expand to
    billions of values (an "alias bomb") in whatever walks the value later."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)


def parameter_value(name: str, value: str) -> object:
    """A -p value parsed as YAML within bounds (its length, no aliases, its nesting); else a UsageError."""
    shown = value if len(value) <= 60 else f"{value[:57]}..."
    if len(value) > PARAMETER_MAX_CHARS:
        raise UsageError(f"-p {name}: {len(value):,} characters; at most {PARAMETER_MAX_CHARS:,} are read")
    try:
        return yaml.load(value, Loader=_NoAliases)  # a SafeLoader
    except yaml.YAMLError as err:
        reason = " ".join(str(getattr(err, "problem", None) or err).split())
    except RecursionError:
        reason = "nested too deeply"
    raise UsageError(f"-p {name} {shown!r}: not valid YAML ({reason})")


def _notebook_parameters(args) -> tuple[dict, Path | None]:
    """The -p parameters (YAML values) with --profile, --output-path (as `root`), --limit, --model-args and
    --seed folded in, the last three only where the notebooks take them; and the --output-path root."""
    from styleprobe.apps.reproduce import declared_parameters

    parameters = {name: parameter_value(name, value) for name, value in args.parameter}
    if args.profile:
        parameters["profile"] = args.profile
    root, _ = outputs(args, None)
    if root is not None:  # absolute: the notebooks run in notebooks/
        given = parameters.get("root")
        if given is not None and Path(given).resolve() != root.resolve():
            raise UsageError(f"--output-path {root} and -p root {given} name two output roots; give one")
        parameters["root"] = str(root.resolve())
    extra = limit_parameters(parameters, args.limit) if args.limit is not None else {}
    if args.model_args:
        extra["model_args"] = args.model_args
    if args.seed is not None:
        extra["seed"] = args.seed
    if args.limit is not None:
        log.warning(f"--limit {args.limit}: a partial run for testing (notebook sizes {extra['sizes']})")
    declared = declared_parameters(args.notebooks)
    return {**parameters, **{k: v for k, v in extra.items() if k in declared}}, root


def cmd_reproduce(args) -> int:
    from styleprobe.apps.reproduce import reproduce

    models = list(load_presets()) if args.all_presets else args.models
    parameters, root = _notebook_parameters(args)
    if not (args.dry_run or args.prepare_only):
        where = folders(root)
        check_writable(args.runs_dir or where.runs, where.results, where.figures, where.axes)
    if args.ray is not None:
        from styleprobe.apps.cluster import run_on_ray, summary

        runs = run_on_ray(
            models,
            parameters,
            args.notebooks,
            address=args.ray,
            shared_root=not args.no_shared_root,
            gpus_per_model=args.gpus_per_model,
            skip=args.skip,
        )
        print(summary(runs))
        return 1 if any(r.status != "done" for r in runs) else 0
    reproduce(
        models,
        parameters,
        args.notebooks,
        runs_dir=args.runs_dir or (folders(root).runs if root is not None else None),
        out_dir=args.out_dir,
        dry_run=args.dry_run,
        prepare_only=args.prepare_only,
        jobs=args.jobs,
        skip=args.skip,
    )
    return 0


def one_line(err: BaseException) -> str:
    """The error's message on one line (an OSError's message names its file)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text


class _Format(logging.Formatter):
    """`styleprobe: warning: ...` and the like; INFO lines as they are."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return "\n".join(
            f"styleprobe: {level}{line}" if level else line for line in record.getMessage().splitlines()
        )


@contextlib.contextmanager
def logging_to_stderr(level: str) -> Iterator[None]:
    """The `styleprobe` logger's messages from `level` up on stderr while a command runs; warnings meant for
    the user (ContextWarning and the like) go through it as `styleprobe: warning:` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    previous = log.level
    log.addHandler(handler)
    log.setLevel(level)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, UserWarning) and category.__module__.startswith("styleprobe"):
            log.warning(str(message))
        else:
            default(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():  # restores the usual warning display when the command ends
        default = warnings.showwarning
        warnings.showwarning = show_warning
        try:
            yield
        finally:
            log.removeHandler(handler)
            log.setLevel(previous)


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
    with logging_to_stderr(args.verbosity):
        try:
            status = commands[args.command](args)
        except KNOWN_ERRORS as err:
            print(f"styleprobe: error: {one_line(err)}", file=sys.stderr)
            return 2
    return status if isinstance(status, int) else 0  # compare and project return their own status


if __name__ == "__main__":
    sys.exit(main())
