"""The architecture, checked from the sources: the library's layers import only downwards, and the notebooks
stay short, read other notebooks' outputs only as typed results and repeat no preamble."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import jupytext
import pytest

from styleprobe.apps.colab import INSTALL_CELL
from styleprobe.paths import NOTEBOOKS_DIR

LIB = Path(__file__).resolve().parents[1] / "lib" / "styleprobe"
# Bottom to top; a module may import its own layer and the layers below it, never one above.
LAYERS = (
    ("errors", "stats", "paths", "result"),
    ("engine", "testing"),  # testing registers the tiny test models as an engine model source
    ("protocol", "formats"),  # formats read and write other tools' files of axes and conversations
    ("analyses",),
    ("report",),
    ("workspace",),
    ("apps",),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))
MAX_NOTEBOOK_LINES = 300
RESULTS_FILE_CALLS = {"load_results", "all_results", "update_results"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(LIB.rglob("*.py")):
        parts = path.relative_to(LIB.parent).with_suffix("").parts
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[str]:
    """Modules imported outside `if TYPE_CHECKING:` blocks (function-level imports included)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from styleprobe import paths` imports the module styleprobe.paths
                sub = f"{node.module}.{alias.name}"
                found.append(sub if _is_module(sub) else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _is_module(name: str) -> bool:
    """Whether `name` is a styleprobe module (a file or a package), found without importing anything."""
    parts = name.split(".")
    if parts[0] != "styleprobe":
        return False
    path = LIB.joinpath(*parts[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "styleprobe" and len(parts) > 1 else None


def test_every_library_module_has_a_layer():
    assert len(_modules()) > 30
    unplaced = {_layer(m) for m, _ in _modules()} - set(RANK) - {None}
    assert not unplaced, f"modules outside every layer: {unplaced}; add them to LAYERS"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_no_module_imports_from_a_higher_layer(module, path):
    own = _layer(module)
    if own is None:
        return  # the package itself
    upward = [
        imported
        for imported in _runtime_imports(ast.parse(path.read_text()))
        if _layer(imported) in RANK and RANK[_layer(imported)] > RANK[own]
    ]
    assert not upward, f"{module} ({own}) imports from a higher layer: {', '.join(sorted(set(upward)))}"


def test_the_import_scan_sees_function_imports_and_skips_type_checking():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from styleprobe.workspace import Workspace\n"
        "def f():\n    from styleprobe import apps\n    import styleprobe.report.paper\n"
    )
    assert _runtime_imports(tree) == ["typing", "styleprobe.apps", "styleprobe.report.paper"]


# --- notebooks ----------------------------------------------------------------------------------------------


def _code_cells(path: Path) -> list:
    return [c for c in jupytext.read(path).cells if c.cell_type == "code"]


def _is_parameters(cell) -> bool:
    return "parameters" in cell.metadata.get("tags", [])


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 12


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_short(path):
    lines = len(path.read_text().splitlines())
    assert lines < MAX_NOTEBOOK_LINES, f"{path.name} has {lines} lines (at most {MAX_NOTEBOOK_LINES - 1})"


def _runs_paths(tree: ast.AST) -> list[str]:
    """Expressions that build a path under runs/: `x / runs`, `ws.runs / x`, or a "runs" path part."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if (isinstance(side, ast.Name) and side.id == "runs") or (
                    isinstance(side, ast.Attribute) and side.attr == "runs"
                ):
                    found.append(ast.unparse(node))
        text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
        if text.strip("/") == "runs" or text.startswith("runs/"):
            found.append(repr(text))
    return found


def _results_file_calls(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.alias):
            names.append(node.id if isinstance(node, ast.Name) else node.name)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
    return sorted(set(names) & RESULTS_FILE_CALLS)


def _source(path: Path) -> ast.AST:
    return ast.parse("\n".join(c.source for c in _code_cells(path)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_builds_no_run_path_and_reads_results_only_as_typed_results(path):
    tree = _source(path)
    assert not _runs_paths(tree), f"{path.name} builds paths under runs/: {_runs_paths(tree)}"
    assert not _results_file_calls(tree), (
        f"{path.name} uses {_results_file_calls(tree)}: load results as `SomeResult.load(ws)`, save them "
        "with ws.save"
    )


def test_the_notebook_scans_catch_what_they_look_for():
    tree = ast.parse(
        "a = ws.runs / 'calibration'\nb = root / 'runs' / slug\nc = Path(root, 'runs/x')\n"
        "d = load_results(slug)\nfrom styleprobe.report.results import all_results\n"
    )
    assert len(_runs_paths(tree)) == 3
    assert _results_file_calls(tree) == ["all_results", "load_results"]
    assert not _runs_paths(ast.parse("axes = ws.axes()\nstore = ws.runs.calibration()"))


def _preamble(path: Path) -> list[ast.stmt]:
    """The statements of the code cells up to the one after the parameters cell (the imports cell), the
    parameters and the imports themselves left out."""
    cells = _code_cells(path)
    start = next(i for i, c in enumerate(cells) if _is_parameters(c))
    chosen = cells[:start] + cells[start + 1 : start + 2]
    statements = [s for c in chosen for s in ast.parse(c.source).body]
    return [s for s in statements if not isinstance(s, ast.Import | ast.ImportFrom)]


def _opens_workspace(statement: ast.stmt) -> bool:
    call = statement.value if isinstance(statement, ast.Assign) else None
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "Workspace"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_no_install_cell(path):
    cells = _code_cells(path)
    assert _is_parameters(cells[0]), f"{path.name}: a code cell comes before the parameters cell"
    text = path.read_text()
    assert INSTALL_CELL.splitlines()[0] not in text and 'find_spec("styleprobe")' not in text, (
        f"{path.name} holds the Colab install cell; apps/colab.py adds it to the Colab copies"
    )


def test_no_notebook_repeats_a_preamble():
    """Besides the parameters cell, the only statement the notebooks' opening cells share is opening the
    workspace: setup that several notebooks need belongs to the library."""
    seen: Counter[str] = Counter()
    text: dict[str, str] = {}
    for path in NOTEBOOKS:
        statements = {ast.dump(s): ast.unparse(s) for s in _preamble(path) if not _opens_workspace(s)}
        seen.update(statements.keys())
        text.update(statements)
    shared = sorted(text[dump] for dump, n in seen.items() if n > 1)
    assert not shared, f"statements repeated in the notebooks' opening cells: {shared}"


GPU_CHECK_MODULES = (
    "styleprobe.engine.generation",
    "styleprobe.engine.extraction",
    "styleprobe.engine.chat",
    "styleprobe.engine.models",
    "styleprobe.testing",
    "styleprobe.protocol.axes",
    "styleprobe.protocol.spec",
    "styleprobe.protocol.profiles",
)
NOT_ON_A_BARE_GPU = ("pandas", "scipy", "matplotlib", "pingouin", "seaborn", "psutil", "platformdirs")


def _added_by_importing(statements: str) -> str:
    """Which of NOT_ON_A_BARE_GPU `statements` import beyond what torch and transformers import themselves
    (transformers imports scipy where it is installed), printed by a fresh interpreter as a sorted list;
    the library is read from lib/ and benchmarks/ as gpu_check.sh reads it."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, importlib, pkgutil, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel\n"
        "before = set(sys.modules)\n"
        f"{statements}\n"
        f"print(sorted(k for k in {NOT_ON_A_BARE_GPU!r} if k in sys.modules and k not in before))\n"
    )
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": "lib:benchmarks"}  # as gpu_check.sh sets it
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_the_gpu_check_imports_only_torch_transformers_numpy_and_safetensors():
    """benchmarks/gpu_check.py runs where only those (and their own dependencies) are installed: the
    modules it imports must not import the analysis stack at module level."""
    imports = f"for m in [*{GPU_CHECK_MODULES!r}, 'gpu_check']: importlib.import_module(m)"
    assert _added_by_importing(imports) == "[]"


def test_every_engine_module_imports_without_the_analysis_stack():
    """The engine (every module of styleprobe.engine, those added later too) imports where only torch,
    transformers, numpy, safetensors and their own dependencies are installed; what needs pandas imports
    it where it is used."""
    imports = (
        "from styleprobe import engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'styleprobe.engine.'):\n"
        "    importlib.import_module(m.name)"
    )
    assert _added_by_importing(imports) == "[]"
