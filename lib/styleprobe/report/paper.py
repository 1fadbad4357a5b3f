"""The paper's inputs and its build.

Saving a typed result (`ws.save(result)`) writes what the paper reads into `paper/generated/<model>/` (or
`generated/cross_model/`): its numbers as `numbers-<notebook>@<result>.tex`, a file of
`\\defresult{<model>/<notebook>/<key>}{<value>}` lines, and its tables as booktabs `<name>.tex` files.
Figures are written once, to `figures/<model>/<name>.pdf` (`ws.save_figure`), and the text includes them
from there as `\\includegraphics{\\figuresdir/<model>/<name>}`. The text reads a number only through
`\\result{<model>/<notebook>/<key>}`. `python -m styleprobe.report.paper` collects which models have outputs,
writes `generated/index.tex` (which also defines `\\figuresdir`), checks that every number, table and figure
the text needs exists (naming the notebook that makes anything missing) and runs latexmk."""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from styleprobe import paths
from styleprobe.engine.store import atomic_write_text
from styleprobe.errors import StyleprobeError
from styleprobe.protocol.validity import MARK
from styleprobe.result import Result

PAPER_DIR = paths.NOTEBOOKS_DIR.parent / "paper"  # in a checkout
MAIN_MODEL = "smollm2-135m-instruct"
CROSS_MODEL = "cross_model"  # the folder of notebook 10's outputs, in place of a model
NUMBERS_PREFIX = "numbers-"
INDEX = "generated/index"  # written by write_index, input by main.tex
FIGURES = r"\figuresdir"  # the figures folder, as the text names it (defined in the index)
_KEY = re.compile(r"^[A-Za-z0-9_.+=-]+(/[A-Za-z0-9_.+=-]+)*$")
DAGGER = r"\textdagger{}"  # how the paper prints validity.MARK
MARKED = r"\spmarked"  # ends a table with a marked row: \resulttable then prints the validity note
_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    MARK: DAGGER,
}


class PaperError(StyleprobeError, RuntimeError):
    """Something the paper needs is missing or malformed; the message is one line per problem."""


def generated_dir(results_dir: str | Path | None = None) -> Path:
    """`paper/generated` beside the results folder: the repository's own by default, a scratch folder's
    when a test run writes its results elsewhere."""
    return Path(results_dir or paths.folders().results).resolve().parent / "paper" / "generated"


def figures_dir(generated: str | Path) -> Path:
    """The figures folder of the outputs whose paper files are in `generated`: the default one for the
    default generated folder, else `figures/` beside that `paper/` folder (a test root's)."""
    generated = Path(generated).resolve()
    if generated == generated_dir():
        return paths.folders().figures.resolve()
    return generated.parents[1] / "figures"


def escape(text: str) -> str:
    """Plain text -> LaTeX text (special characters escaped)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def format_value(value, digits: int = 2) -> str:
    """A number or a string as LaTeX: floats with `digits` decimals (a true minus sign, no "-0.00"), NaN
    and None as "n/a", booleans as yes/no, strings escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value)).replace("-", r"\ensuremath{-}")
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return "n/a"
        text = f"{float(value):.{digits}f}"
        if float(text) == 0:
            text = text.lstrip("-")
        return text.replace("-", r"\ensuremath{-}")
    return escape(value)


def axis_label(name, axes: Collection[str] = ()) -> str:
    """`warm_cold` -> `warm/cold` for a name in `axes`, also when marked (`warm_cold†` -> `warm/cold†`, see
    `validity.mark`); other labels unchanged."""
    text = str(name)
    bare = text.removesuffix(MARK)
    return bare.replace("_", "/") + text[len(bare) :] if bare in axes else text


def flatten(values: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested mappings (and Series) -> {"a/b/c": value}."""
    out: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, pd.Series):
            value = value.to_dict()
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def write_numbers(
    folder: str,
    notebook: str,
    values: Mapping,
    *,
    digits: int = 2,
    root: Path | None = None,
    part: str | None = None,
) -> Path:
    """Write `<root>/<folder>/numbers-<notebook>.tex` (`numbers-<notebook>@<part>.tex` for one of several
    results of a notebook): one `\\defresult{<folder>/<notebook>/<key>}{value}` per (flattened) entry of
    `values`. It replaces that file's previous numbers as a whole."""
    lines = [f"% numbers of notebook {notebook} for {folder}; written by styleprobe, do not edit"]
    for key, value in flatten(values).items():
        full = f"{folder}/{notebook}/{key}"
        if not _KEY.match(full):
            raise ValueError(f"result key {full!r} may hold only letters, digits, _ . + = - and /")
        lines.append(rf"\defresult{{{full}}}{{{format_value(value, digits)}}}")
    stem = f"{NUMBERS_PREFIX}{notebook}" + (f"@{part}" if part else "")
    path = Path(root or generated_dir()) / folder / f"{stem}.tex"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_table(
    folder: str,
    name: str,
    frame: pd.DataFrame,
    *,
    digits: int = 2,
    columns: Mapping[str, str] | None = None,
    index_name: str | None = None,
    root: Path | None = None,
    axes: Collection[str] = (),
) -> Path:
    """Write `frame` as a booktabs tabular to `<root>/<folder>/<name>.tex` (the caption is the text's):
    numbers with `digits` decimals (no negative zero), NaN as "--", labels escaped, the names in `axes` as
    `warm/cold`; `columns` renames columns for print. A label marked by `validity.mark` prints with a
    dagger, and the table then ends with MARKED, so that `\\resulttable` prints the note explaining it."""
    label = partial(axis_label, axes=frozenset(axes))
    frame = frame.rename(columns=dict(columns or {})).rename(index=label, columns=label)
    floats = frame.select_dtypes("float").columns
    frame[floats] = frame[floats].mask(frame[floats].round(digits) == 0, 0.0)  # no "-0.00"
    label = index_name if index_name is not None else (frame.index.name or "")
    frame = frame.rename_axis(label).reset_index()  # the index as a first column: one header row
    styler = frame.style.hide(axis="index").format(precision=digits, na_rep="--", escape="latex")
    styler = styler.format_index(escape="latex", axis=1)
    latex = styler.to_latex(hrules=True, column_format="l" + "r" * (frame.shape[1] - 1))
    latex = re.sub(r"(?<![\w.])-(?=\d)", r"\\ensuremath{-}", latex)  # minus signs of negative numbers
    if MARK in latex:
        latex = latex.replace(MARK, DAGGER) + MARKED + "\n"
    path = Path(root or generated_dir()) / folder / f"{name}.tex"
    atomic_write_text(path, latex)
    return path


# --- who writes what the text reads -----------------------------------------------------------------------


def _figure_names(notebooks_dir: Path) -> dict[str, str]:
    """{figure name: notebook} for every `<workspace>.save_figure(fig, "name")` in `notebooks/*.py`."""
    out: dict[str, str] = {}
    for source in sorted(notebooks_dir.glob("[0-9][0-9]_*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr == "save_figure" and len(node.args) > 1:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    out.setdefault(name.value, source.stem)
    return out


def _table_names(cls: type[Result]) -> list[str]:
    """The table file names a Result's `paper_tables` returns: the string keys of the dictionaries it
    builds (literals, or `tables["name"] = ...`)."""
    if cls.paper_tables is Result.paper_tables:
        return []
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.paper_tables)))
    names = []
    for node in ast.walk(tree):
        keys = node.keys if isinstance(node, ast.Dict) else []
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            keys = [node.slice]
        names += [k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return names


def producers(
    notebooks_dir: Path | None = None, registry: Mapping[str, type[Result]] | None = None
) -> dict[str, str]:
    """{name: notebook} for what the paper reads: figure names (from the notebooks' `save_figure` calls),
    table file names (from each Result's `paper_tables`) and the notebooks whose results write numbers
    (those with a `paper` view); `registry` defaults to every Result (`results.result_classes`)."""
    from styleprobe.report.results import result_classes

    out = _figure_names(Path(notebooks_dir or paths.NOTEBOOKS_DIR))
    for cls in (registry if registry is not None else result_classes()).values():
        if cls.paper is not Result.paper:
            out.setdefault(cls.notebook, cls.notebook)
        for name in _table_names(cls):
            out.setdefault(name, cls.notebook)
    return out


# --- what the text needs ----------------------------------------------------------------------------------

_RESULT = re.compile(r"\\result(ci)?\{([^{}]*(?:\{\}[^{}]*)*)\}")
_FILE = re.compile(
    r"\\(?:input|include|includegraphics|resulttable)\s*(?:\[[^\]]*\])?\{((?:generated|\\figuresdir)/[^}]*)\}"
)
_GATED = re.compile(r"\\(notebooksection|crossmodelsection)\{([^}]*)\}\{([^}]*)\}")
_PLAIN_INPUT = re.compile(r"\\input\{(sections/[^}]*)\}")
_IFNOTEBOOK = re.compile(r"\\ifnotebook\{([^}]*)\}")


@dataclass
class Needs:
    """The result keys and generated files one part of the text uses."""

    keys: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)


def _strip_comments(text: str) -> str:
    """Text without comments and without verbatim `\\verb|...|` (which only shows macros)."""
    return re.sub(r"\\verb(.).*?\1", "", re.sub(r"(?<!\\)%.*", "", text))


def _group_end(tex: str, start: int) -> int:
    """The index after the brace group that opens at `start` (skipping spaces before its `{`)."""
    i = start
    while tex[i].isspace():
        i += 1
    depth = 0
    for j in range(i, len(tex)):
        depth += {"{": 1, "}": -1}.get(tex[j], 0) if tex[j - 1] != "\\" else 0
        if depth == 0:
            return j + 1
    raise PaperError(f"unbalanced braces after position {start}")


def without_absent(tex: str, present: Collection[str]) -> str:
    """The text without the first branch of each `\\ifnotebook{NB}{...}{...}` whose notebook NB has no
    outputs (`present`: the notebooks that have): what the build leaves out."""
    out, pos = [], 0
    for match in _IFNOTEBOOK.finditer(tex):
        if match.start() < pos or match.group(1) in present:
            continue
        out.append(tex[pos : match.end()] + "{}")
        pos = _group_end(tex, match.end())
    return "".join(out) + tex[pos:]


def text_needs(tex: str) -> Needs:
    """Keys of `\\result{..}` / `\\resultci{..}` (the latter is three keys: mean, ci_low, ci_high) and
    `generated/...` and `\\figuresdir/...` targets of `\\input`, `\\includegraphics` and `\\resulttable` in
    one file's text."""
    tex = _strip_comments(tex)
    needs = Needs()
    for ci, key in _RESULT.findall(tex):
        needs.keys.update({f"{key}/{k}" for k in ("mean", "ci_low", "ci_high")} if ci else {key})
    needs.files.update(_FILE.findall(tex))
    return needs


def sections(paper_dir: Path = PAPER_DIR) -> dict[Path, str | None]:
    """Every text file of the paper, with the notebook that gates it or None (always included): NB for
    `\\notebooksection{NB}{file}` in main.tex (included only when NB has outputs for the main model),
    `cross_model/NB` for `\\crossmodelsection{NB}{file}` (only when NB has cross-model outputs)."""
    main = _strip_comments((paper_dir / "main.tex").read_text())
    gated = {
        paper_dir / f"{file}.tex": nb if kind == "notebooksection" else f"{CROSS_MODEL}/{nb}"
        for kind, nb, file in _GATED.findall(main)
    }
    out: dict[Path, str | None] = {paper_dir / "main.tex": None}
    for file in _PLAIN_INPUT.findall(main):
        out[paper_dir / f"{file}.tex"] = None
    out.update(gated)
    return out


# --- collecting and checking ------------------------------------------------------------------------------


def absent_gates(paper_dir: Path, have: Mapping[str, list[str]], main_model: str) -> list[str]:
    """The gates of `sections` whose notebook has no outputs in `have` (`available`): the sections left
    out of the build."""
    absent = set()
    for gate in filter(None, sections(paper_dir).values()):
        folder, _, notebook = gate.rpartition("/")  # no folder: the main model's notebook
        if notebook not in have.get(folder or main_model, []):
            absent.add(gate)
    return sorted(absent)


def defined_keys(root: Path) -> set[str]:
    """Every key defined in the numbers files under `root`."""
    keys = set()
    for path in root.glob(f"*/{NUMBERS_PREFIX}*.tex"):
        keys.update(re.findall(r"^\\defresult\{([^}]*)\}", path.read_text(), flags=re.M))
    return keys


def available(root: Path) -> dict[str, list[str]]:
    """{folder (model slug or cross_model): [notebooks with numbers]}."""
    out: dict[str, list[str]] = {}
    for path in sorted(root.glob(f"*/{NUMBERS_PREFIX}*.tex")):
        notebook = path.stem.removeprefix(NUMBERS_PREFIX).split("@")[0]
        if notebook not in out.setdefault(path.parent.name, []):
            out[path.parent.name].append(notebook)
    return out


def _resolve(target: str, main_model: str) -> str:
    return target.replace(r"\mainmodel", main_model).replace(r"\crossmodel", CROSS_MODEL)


def _hint(folder: str, notebook: str) -> str:
    if folder == CROSS_MODEL:
        return f"run notebook {notebook} (make reproduce)"
    return f"run notebook {notebook} for {folder} (make notebook NB={notebook[:2]} MODEL={folder})"


def missing(
    paper_dir: Path,
    root: Path,
    main_model: str,
    notebooks_dir: Path | None = None,
    figures: Path | None = None,
) -> list[str]:
    """One line per number or file the text needs but `root` (or for figures, `figures`, by default
    `figures_dir(root)`) lacks. Sections gated on a notebook without outputs (`absent_gates`) are skipped
    (they are left out of the build), and so are the `\\ifnotebook` branches of such notebooks."""
    keys, have = defined_keys(root), available(root)
    figures = Path(figures or figures_dir(root))
    made_by: dict[str, str] = {}  # who writes a missing file, looked up once one is missing
    problems = []
    absent = set(absent_gates(paper_dir, have, main_model))
    for path, gate in sections(paper_dir).items():
        if gate in absent:
            continue
        if not path.exists():
            problems.append(f"{path.relative_to(paper_dir)} is included by main.tex but does not exist")
            continue
        needs = text_needs(without_absent(_strip_comments(path.read_text()), have.get(main_model, [])))
        for key in sorted(_resolve(k, main_model) for k in needs.keys):
            if key not in keys:
                folder, notebook = [*key.split("/"), "?", "?"][:2]
                problems.append(f"missing result {key} ({path.name}): {_hint(folder, notebook)}")
        for target in sorted(_resolve(t, main_model) for t in needs.files - {INDEX}):
            if target.startswith(FIGURES):
                candidates = [figures / f"{target.removeprefix(FIGURES + '/')}.pdf"]
            else:
                file = root.parent / target
                candidates = [file] if file.suffix else [file.with_suffix(".tex"), file.with_suffix(".pdf")]
            if not any(c.exists() for c in candidates):
                parts = Path(target).parts
                made_by = made_by or producers(notebooks_dir)
                notebook = made_by.get(Path(target).stem, "no notebook writes it")
                problems.append(f"missing file {target} ({path.name}): {_hint(parts[1], notebook)}")
    return problems


def write_index(paper_dir: Path, root: Path, main_model: str, figures: Path | None = None) -> Path:
    """`generated/index.tex`: the main model, every model with outputs, their numbers files, which
    notebooks have outputs, the gated sections left out of this build, and `\\figuresdir`: the figures
    folder (`figures`, by default `figures_dir(root)`) relative to the paper."""
    have = available(root)
    if main_model not in have:
        models = ", ".join(m for m in have if m != CROSS_MODEL) or "none"
        raise PaperError(
            f"no paper outputs for the main model {main_model} in {root} (models with outputs: {models}); "
            f"run make reproduce MODELS={main_model}"
        )
    models = [m for m in have if m != CROSS_MODEL]
    absent = absent_gates(paper_dir, have, main_model)
    figures_from = Path(os.path.relpath(figures or figures_dir(root), paper_dir.resolve())).as_posix()
    lines = [
        "% written by python -m styleprobe.report.paper; do not edit",
        rf"\def\mainmodel{{{main_model}}}",
        rf"\def\crossmodel{{{CROSS_MODEL}}}",
        rf"\def\papermodels{{{escape(', '.join(models))}}}",
        rf"\def\absentnotebooks{{{escape(', '.join(absent)) or 'none'}}}",
        rf"\def\figuresdir{{{figures_from}}}",
    ]
    for folder, notebooks in have.items():
        for path in sorted((root / folder).glob(f"{NUMBERS_PREFIX}*.tex")):
            lines.append(rf"\input{{generated/{folder}/{path.name}}}")
        for nb in notebooks:
            lines.append(rf"\defnotebook{{{folder}}}{{{nb}}}")
    path = root / "index.tex"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def build(
    paper_dir: Path = PAPER_DIR,
    main_model: str = MAIN_MODEL,
    *,
    root: Path | None = None,
    figures: Path | None = None,
    compile_pdf: bool = True,
    log=print,
) -> Path:
    """Collect, check, and (with `compile_pdf`) run latexmk; return paper/main.pdf (or the index file).
    `root` holds the generated numbers and tables (default: the paper's `generated/`), `figures` the
    figures (default: `figures_dir(root)`)."""
    root = Path(root or paper_dir / "generated")
    index = write_index(paper_dir, root, main_model, figures)
    problems = missing(paper_dir, root, main_model, figures=figures)
    if problems:
        raise PaperError("the paper needs results that are missing:\n  " + "\n  ".join(problems))
    have = available(root)
    log(f"main model {main_model}; models with outputs: {', '.join(have)}")
    skipped = absent_gates(paper_dir, have, main_model)
    if skipped:
        log(f"sections left out (no outputs of these notebooks for {main_model}): {', '.join(skipped)}")
    if not compile_pdf:
        return index
    if shutil.which("latexmk") is None:
        raise PaperError("latexmk not found: install TeX Live (make paper installs it with apt-get)")
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "main.tex"]
    done = subprocess.run(cmd, cwd=paper_dir, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stdout.splitlines() if ":" in line and "error" in line.lower()]
        errors += [line for line in done.stdout.splitlines() if line.startswith("!")]
        raise PaperError("latexmk failed:\n  " + "\n  ".join(errors[-10:] or done.stdout.splitlines()[-20:]))
    return paper_dir / "main.pdf"


SOURCES = ("main.tex", "references.bib", "styleprobe-results.sty", "sections")  # the paper's own text


def copy_sources(root: Path, paper_dir: Path = PAPER_DIR) -> Path:
    """The paper's text copied to `<root>/paper/`, beside that root's generated inputs and figures, so the
    paper of another output root builds there; returns that folder."""
    target = Path(root) / "paper"
    for name in SOURCES:
        source, copy = paper_dir / name, target / name
        if source.is_dir():
            shutil.copytree(source, copy, dirs_exist_ok=True)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
    return target


def main(argv: list[str] | None = None) -> int:
    from styleprobe.engine.models import model_slug

    parser = argparse.ArgumentParser(
        prog="python -m styleprobe.report.paper",
        description="Check the paper's generated inputs and build it.",
    )
    parser.add_argument(
        "--main-model", default=MAIN_MODEL, help=f"the model the text is about ({MAIN_MODEL})"
    )
    parser.add_argument("--check", action="store_true", help="only collect and check, do not run latexmk")
    parser.add_argument(
        "--root",
        type=Path,
        help="the paper of the outputs under this root (e.g. make reproduce's build/reproduce), built in "
        "<root>/paper/ from its paper/generated/ and figures/, instead of the checkout's",
    )
    args = parser.parse_args(argv)
    paper_dir, generated = PAPER_DIR, None
    if args.root:
        generated = generated_dir(args.root / "results")
        if not args.check:
            paper_dir = copy_sources(args.root)
    try:
        main_model = model_slug(args.main_model)
        out = build(paper_dir, main_model=main_model, root=generated, compile_pdf=not args.check)
    except PaperError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{'checked' if args.check else 'built'}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
