"""The paper's inputs: every generated file and figure the text includes is written by a notebook, numbers
are formatted and escaped, and the collector names what is missing."""

from __future__ import annotations

import ast
import inspect
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from styleprobe.paths import NOTEBOOKS_DIR
from styleprobe.protocol.validity import MARK, mark
from styleprobe.report import paper, style
from styleprobe.report.plots import save_figure
from styleprobe.report.results import result_classes
from styleprobe.result import PaperTable, Result

TEXT = sorted(paper.PAPER_DIR.glob("*.tex")) + sorted((paper.PAPER_DIR / "sections").glob("*.tex"))
MADE_BY_COLLECTOR = {"index"}  # generated/index.tex is written by styleprobe.report.paper itself


def _targets() -> list[tuple[str, str]]:
    """(file, target) for every \\input / \\includegraphics / \\resulttable into generated/ or the figures."""
    return sorted((path.name, target) for path in TEXT for target in paper.text_needs(path.read_text()).files)


def _result_notebooks() -> list[tuple[str, str]]:
    """(file, notebook) for every \\result key of the text."""
    out = set()
    for path in TEXT:
        for key in paper.text_needs(path.read_text()).keys:
            out.add((path.name, key.split("/")[1]))
    return sorted(out)


def test_the_text_uses_generated_files_figures_and_numbers():
    assert len(_targets()) >= 20 and len(_result_notebooks()) >= 8
    figures = [t for _, t in _targets() if t.startswith(paper.FIGURES)]
    assert len(figures) >= 15 and not any(t.endswith(".pdf") for t in figures)
    assert not [t for _, t in _targets() if t.startswith("generated/") and "graphics" in t]


@pytest.mark.parametrize(("file", "target"), _targets())
def test_every_generated_target_is_written_by_a_notebook(file, target):
    name = Path(target).stem
    made = paper.producers()
    assert name in made or name in MADE_BY_COLLECTOR, (
        f"{file} includes {target}, but no notebook writes {name!r} in a paper-output call"
    )


@pytest.mark.parametrize(("file", "notebook"), _result_notebooks())
def test_every_result_comes_from_a_notebook_that_writes_numbers(file, notebook):
    assert notebook in paper.producers(), f"{file} reads numbers of {notebook}, which writes none"


def _literal_keys(func, seen: set) -> set[str]:
    """String keys of the dictionaries `func` builds (literals, `d["key"] = ...`, comprehensions over a
    literal tuple), and of those built by the module-level functions it calls."""
    module = sys.modules[func.__module__]
    keys = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(func)))):
        if isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            keys |= {node.slice.value} if isinstance(node.slice, ast.Constant) else set()
        elif isinstance(node, ast.DictComp):
            literal = [g.iter.elts for g in node.generators if isinstance(g.iter, ast.Tuple | ast.List)]
            keys |= {e.value for elts in literal for e in elts if isinstance(e, ast.Constant)}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            helper = getattr(module, node.func.id, None)
            if inspect.isfunction(helper) and helper not in seen:
                seen.add(helper)
                keys |= _literal_keys(helper, seen)
    return keys


@cache
def _paper_keys() -> dict[str, set[str]]:
    """{notebook: the first part of every key its results' `paper()` views write}."""
    out: dict[str, set[str]] = {}
    for cls in result_classes().values():
        if cls.paper is not Result.paper:
            out.setdefault(cls.notebook, set()).update(_literal_keys(cls.paper, set()))
    return out


def _text_keys() -> list[tuple[str, str]]:
    return sorted((path.name, key) for path in TEXT for key in paper.text_needs(path.read_text()).keys)


@pytest.mark.parametrize(("file", "key"), _text_keys())
def test_every_number_the_text_reads_is_a_key_of_its_notebooks_paper_view(file, key):
    """A renamed or removed key fails here, before any run: the text reads `<model>/<notebook>/<key>`
    (nested keys by their first part) and some Result of that notebook writes `key` in its `paper()`."""
    notebook, first = key.split("/")[1:3]
    assert first in _paper_keys().get(notebook, set()), (
        f"{file} reads {key}, which no {notebook} result writes"
    )


def test_the_key_check_sees_keys_written_by_helpers_and_comprehensions():
    keys = _paper_keys()
    assert {"conclusion", "not_interpreted", "n_cut", "n_scenarios"} <= keys["09_drift"]
    assert "renamed_away" not in keys["09_drift"]


@dataclass
class _Demo(Result):  # no `name`: not registered, passed to producers explicitly
    notebook: ClassVar[str] = "01_demo"
    value: float = 0.0

    def paper(self):
        return {"value": self.value}

    def paper_tables(self):
        tables = {"table_a": PaperTable(pd.DataFrame())}
        tables["table_b"] = PaperTable(pd.DataFrame(), digits=3)
        return tables


@dataclass
class _Silent(Result):  # writes no numbers and no tables
    notebook: ClassVar[str] = "02_silent"


def test_producers_learn_figures_from_the_notebooks_and_the_rest_from_the_results(tmp_path):
    (tmp_path / "01_demo.py").write_text(
        "ws.save_figure(fig, 'fig_a')\n"
        "workspaces['instruct'].save_figure(grid.figure, 'fig_b')\n"
        "plt.savefig('not_a_figure')\n"
        "ws.save(result)\n"
    )
    made = paper.producers(tmp_path, registry={"demo": _Demo, "silent": _Silent})
    assert made == dict.fromkeys(["fig_a", "fig_b", "01_demo", "table_a", "table_b"], "01_demo")
    assert set(_Demo().paper_tables()) == {"table_a", "table_b"}  # what the scan read is what it returns


def test_producers_of_the_repository_cover_every_notebook_with_paper_numbers():
    made = paper.producers(NOTEBOOKS_DIR)
    for notebook in ("01_calibration", "02_baseline", "04_length_confound", "10_cross_model"):
        assert made.get(notebook) == notebook  # each writes its own numbers file


def test_format_value():
    assert paper.format_value(0.123456) == "0.12"
    assert paper.format_value(-0.001) == "0.00"  # no negative zero
    assert paper.format_value(-1.5, digits=1) == r"\ensuremath{-}1.5"
    assert paper.format_value(np.int64(7)) == "7"
    assert paper.format_value(float("nan")) == paper.format_value(None) == "n/a"
    assert paper.format_value(True) == "yes"
    assert paper.format_value("a_b & 50%") == r"a\_b \& 50\%"
    assert paper.format_value(mark("a_b", False)) == r"a\_b\textdagger{}"  # failed validation


def test_write_numbers_flattens_and_rejects_bad_keys(tmp_path):
    values = {
        "axes": pd.DataFrame({"acc": [0.5, 0.75]}, index=["warm_cold", "formal_casual"]).to_dict("index")
    }
    path = paper.write_numbers("model-x", "01_calibration", values | {"n": 3}, root=tmp_path)
    assert path == tmp_path / "model-x" / "numbers-01_calibration.tex"
    keys = paper.defined_keys(tmp_path)
    assert keys == {
        "model-x/01_calibration/axes/warm_cold/acc",
        "model-x/01_calibration/axes/formal_casual/acc",
        "model-x/01_calibration/n",
    }
    assert r"\defresult{model-x/01_calibration/axes/formal_casual/acc}{0.75}" in path.read_text()
    with pytest.raises(ValueError, match="result key"):
        paper.write_numbers("model-x", "01_calibration", {"bad key": 1}, root=tmp_path)


def test_write_table_is_booktabs_with_escaped_labels(tmp_path):
    frame = pd.DataFrame(
        {"pairwise_accuracy": [0.5, -0.25, -0.001], "n": [3, 4, 5]},
        index=pd.Index(["warm_cold", "a&b", "c"], name="axis"),
    )
    text = paper.write_table(
        "m", "t", frame, root=tmp_path, columns={"n": "count"}, axes=["warm_cold"]
    ).read_text()
    assert r"\toprule" in text and r"\bottomrule" in text
    assert r"axis & pairwise\_accuracy & count \\" in text
    assert r"warm/cold & 0.50 & 3 \\" in text and r"a\&b & \ensuremath{-}0.25 & 4 \\" in text
    assert r"c & 0.00 & 5 \\" in text  # no negative zero
    assert paper.MARKED not in text  # no axis marked: no validity note


def test_a_table_marks_the_axes_that_failed_validation_and_asks_for_the_note(tmp_path):
    frame = pd.DataFrame({"acc": [0.9, 0.4]}, index=["warm_cold", mark("formal_casual", False)])
    text = paper.write_table("m", "t", frame, root=tmp_path, axes=["warm_cold", "formal_casual"]).read_text()
    assert r"warm/cold & 0.90 \\" in text and r"formal/casual\textdagger{} & 0.40 \\" in text
    assert MARK not in text and text.rstrip().endswith(r"\end{tabular}" + "\n" + paper.MARKED)
    sty = (paper.PAPER_DIR / "styleprobe-results.sty").read_text()
    assert r"\newcommand\spmarked" in sty and r"\ifsp@marked" in sty  # \resulttable prints the note


def _mini_paper(folder: Path) -> Path:
    """A paper with one always-included section (a number, a table, a figure) and one gated on notebook
    05_demo; its generated files go to `folder/generated`, its figures to `folder/../figures`."""
    (folder / "sections").mkdir(parents=True)
    shutil.copy(paper.PAPER_DIR / "styleprobe-results.sty", folder)
    (folder / "main.tex").write_text(
        "\\documentclass{article}\n\\usepackage{styleprobe-results}\n\\input{generated/index}\n"
        "\\begin{document}\n\\input{sections/always}\n\\notebooksection{05_demo}{sections/gated}\n"
        "\\end{document}\n"
    )
    (folder / "sections" / "always.tex").write_text(
        "Accuracy \\result{\\mainmodel/01_calibration/accuracy}.\n"
        "\\resulttable{generated/\\mainmodel/calibration_evaluation}\n"
        "\\includegraphics[width=2cm]{\\figuresdir/\\mainmodel/axis_cosines}\n"
    )
    (folder / "sections" / "gated.tex").write_text("Judge \\result{\\mainmodel/05_demo/rho}.\n")
    return folder


def test_missing_names_the_key_and_the_notebook(tmp_path):
    folder = _mini_paper(tmp_path / "paper")
    root = folder / "generated"
    paper.write_numbers("m", "01_calibration", {"other": 1}, root=root)
    problems = paper.missing(folder, root, "m")
    assert any(
        "missing result m/01_calibration/accuracy" in p and "01_calibration for m" in p for p in problems
    )
    assert any("missing file generated/m/calibration_evaluation" in p for p in problems)
    assert any(r"missing file \figuresdir/m/axis_cosines" in p for p in problems)
    assert not any("05_demo" in p for p in problems)  # its section is left out, not required
    paper.write_numbers("m", "01_calibration", {"accuracy": 0.8}, root=root)
    paper.write_table("m", "calibration_evaluation", pd.DataFrame({"a": [1.0]}), root=root)
    (root / "m" / "axis_cosines.pdf").write_bytes(b"%PDF-1.4")  # a copy beside the tables does not count
    assert len(paper.missing(folder, root, "m")) == 1
    _figure(tmp_path / "figures" / "m" / "axis_cosines")  # where ws.save_figure writes it
    assert paper.missing(folder, root, "m") == []
    paper.write_numbers("m", "05_demo", {"other": 1}, root=root)  # the gated notebook ran: now required
    assert paper.missing(folder, root, "m") == [
        "missing result m/05_demo/rho (gated.tex): run notebook 05_demo for m (make notebook NB=05 MODEL=m)"
    ]


def _figure(stem: Path) -> None:
    fig, ax = style.figure("half", 1.0)
    ax.plot([0, 1])
    save_figure(fig, stem)
    plt.close(fig)


def test_numbers_files_of_several_results_of_one_notebook_count_once(tmp_path):
    paper.write_numbers("m", "07_stability", {"a": 1}, root=tmp_path, part="stability")
    paper.write_numbers("m", "07_stability", {"b": 2}, root=tmp_path, part="benchmark")
    assert paper.available(tmp_path) == {"m": ["07_stability"]}
    assert paper.defined_keys(tmp_path) == {"m/07_stability/a", "m/07_stability/b"}
    assert (tmp_path / "m" / "numbers-07_stability@benchmark.tex").exists()


def test_the_command_checks_a_test_root_against_the_paper(tmp_path, capsys):
    paper.write_numbers("m", "01_calibration", {"n_axes": 7}, root=tmp_path / "paper" / "generated")
    assert paper.main(["--check", "--root", str(tmp_path), "--main-model", "m"]) == 1
    err = capsys.readouterr().err
    assert "missing result m/01_calibration/mean_accuracy" in err and "m/01_calibration/n_axes" not in err
    assert "missing file generated/m/calibration_evaluation" in err
    assert r"missing file \figuresdir/m/axis_cosines" in err  # looked for in <root>/figures/m/
    assert (tmp_path / "paper" / "generated" / "index.tex").exists()
    # without --check: the paper's text is copied beside the root's inputs and built there (here refused)
    assert paper.main(["--root", str(tmp_path), "--main-model", "m"]) == 1
    assert (tmp_path / "paper" / "main.tex").read_text() == (paper.PAPER_DIR / "main.tex").read_text()
    assert (tmp_path / "paper" / "sections" / "calibration.tex").exists()


def test_build_refuses_a_main_model_without_outputs(tmp_path):
    folder = _mini_paper(tmp_path / "paper")
    paper.write_numbers("other-model", "01_calibration", {"accuracy": 0.8}, root=folder / "generated")
    with pytest.raises(paper.PaperError, match=r"no paper outputs for the main model m .*other-model"):
        paper.build(folder, "m", compile_pdf=False)


def test_index_lists_models_and_absent_notebooks(tmp_path):
    folder = _mini_paper(tmp_path / "paper")
    root = folder / "generated"
    paper.write_numbers("m", "01_calibration", {"accuracy": 0.8}, root=root)
    paper.write_numbers(paper.CROSS_MODEL, "10_cross_model", {"n": 1}, root=root)
    text = paper.write_index(folder, root, "m").read_text()
    assert r"\def\mainmodel{m}" in text and r"\def\papermodels{m}" in text
    assert r"\def\absentnotebooks{05\_demo}" in text
    assert r"\input{generated/cross_model/numbers-10_cross_model.tex}" in text
    assert r"\def\figuresdir{../figures}" in text  # figures/ beside the paper's folder, as ws writes them
    assert paper.figures_dir(root) == tmp_path / "figures"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex")
def test_latex_prints_results_skips_gated_sections_and_fails_on_a_missing_key(tmp_path):
    folder = _mini_paper(tmp_path / "paper")
    root = folder / "generated"
    paper.write_numbers("m", "01_calibration", {"accuracy": 0.8125}, root=root)
    paper.write_table("m", "calibration_evaluation", pd.DataFrame({"a": [1.0]}), root=root)
    _figure(tmp_path / "figures" / "m" / "axis_cosines")
    paper.write_index(folder, root, "m")

    def compile_() -> subprocess.CompletedProcess:
        cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"]
        return subprocess.run(cmd, cwd=folder, capture_output=True, text=True)

    done = compile_()
    assert done.returncode == 0, done.stdout[-2000:]
    assert (folder / "main.pdf").exists()
    paper.write_numbers("m", "05_demo", {"other": 1}, root=root)  # gated section now included, key absent
    paper.write_index(folder, root, "m")
    done = compile_()
    assert done.returncode != 0
    assert "missing result m/05_demo/rho: run notebook 05_demo for m" in done.stdout.replace("\n", "")


def test_a_section_gated_on_a_cross_model_notebook_is_required_only_when_it_ran(tmp_path):
    folder = _mini_paper(tmp_path / "paper")
    main = folder / "main.tex"
    main.write_text(
        main.read_text().replace(
            r"\end{document}", "\\crossmodelsection{12_demo}{sections/sim}\n\\end{document}"
        )
    )
    (folder / "sections" / "sim.tex").write_text("Coverage \\result{\\crossmodel/12_demo/coverage}.\n")
    root = folder / "generated"
    paper.write_numbers("m", "01_calibration", {"accuracy": 0.8}, root=root)
    assert paper.sections(folder)[folder / "sections" / "sim.tex"] == f"{paper.CROSS_MODEL}/12_demo"
    assert not any("12_demo" in p for p in paper.missing(folder, root, "m"))
    assert (
        r"\def\absentnotebooks{05\_demo, cross\_model/12\_demo}"
        in paper.write_index(folder, root, "m").read_text()
    )
    paper.write_numbers("m", "12_demo", {"coverage": 0.95}, root=root)  # the main model's: not the gate
    assert not any("12_demo" in p for p in paper.missing(folder, root, "m"))
    paper.write_numbers(paper.CROSS_MODEL, "12_demo", {"other": 1}, root=root)
    assert "missing result cross_model/12_demo/coverage (sim.tex): run notebook 12_demo (make reproduce)" in (
        paper.missing(folder, root, "m")
    )


def test_a_reference_to_a_gated_section_is_gated_on_the_same_notebook():
    """A section left out of a build (no outputs of its notebook) leaves its labels undefined: every
    reference to them from elsewhere must sit in an \\ifnotebook on that notebook."""
    folder = Path(__file__).parents[1] / "paper"
    main = (folder / "main.tex").read_text()
    gated = dict(re.findall(r"\\notebooksection\{(\w+)\}\{([\w/]+)\}", main))  # notebook -> file
    owner = {  # label -> the notebook whose section defines it
        label: notebook
        for notebook, file in gated.items()
        for label in re.findall(r"\\label\{([^}]+)\}", (folder / f"{file}.tex").read_text())
    }
    sources = {"main": main} | {p.stem: p.read_text() for p in (folder / "sections").glob("*.tex")}
    bare = []
    for name, text in sources.items():
        own = next((nb for nb, file in gated.items() if file == f"sections/{name}"), None)
        for match in re.finditer(r"\\ref\{([^}]+)\}", text):
            notebook = owner.get(match.group(1))
            if (
                notebook
                and notebook != own
                and f"\\ifnotebook{{{notebook}}}" not in text[: match.start()][-80:]
            ):
                bare.append(f"{name}: {match.group(1)}")
    assert not bare, f"references to sections that a build may leave out: {bare}"


def test_the_fixed_text_does_not_describe_the_main_model():
    """What the main model is (name, size, hardware) comes from its results, so a build for another model
    describes that one; only the reproducibility section names the repository's default model."""
    from styleprobe.engine.models import load_presets

    names = [p.title for p in load_presets().values() if p.title] + ["135M", "270m", "laptop"]
    for path in TEXT:
        if path.name != "reproducibility.tex":
            text = path.read_text()
            assert not [n for n in names if n.lower() in text.lower()], path.name


def test_the_check_leaves_out_the_branches_of_notebooks_without_outputs():
    text = r"a \ifnotebook{03_x}{\item \result{m/03_x/k} {x}}{else} b \ifnotebook{01_c}{\result{m/01_c/k}}{}"
    assert paper.without_absent(text, ["01_c"]) == r"a \ifnotebook{03_x}{}{else} b " + text.split(" b ")[1]
    assert paper.text_needs(paper.without_absent(text, ["01_c"])).keys == {"m/01_c/k"}
    assert paper.text_needs(paper.without_absent(text, ["01_c", "03_x"])).keys == {"m/01_c/k", "m/03_x/k"}
