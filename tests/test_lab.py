"""JupyterLab on the notebooks: a double click opens a source as a notebook, and saving it as Lab does leaves
git clean."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from styleprobe.paths import NOTEBOOKS_DIR

pytest.importorskip("jupyterlab")

REPO = NOTEBOOKS_DIR.parent
SOURCES = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
# what JupyterLab puts in a notebook once its kernel has started, and in cells once they have run
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE = {"name": "python", "version": "3.11.9", "mimetype": "text/x-python", "file_extension": ".py"}
CELL_METADATA = {
    "scrolled": True,
    "collapsed": False,
    "trusted": True,
    "execution": {"shell.execute_reply": "x"},
}


def save_as_lab_does(root: Path, name: str) -> None:
    """Open a notebook through the contents manager `make lab` gives JupyterLab's server (jupytext's), run it
    in spirit (kernel metadata, outputs, execution counts, cell metadata) and save it."""
    from styleprobe.apps.lab import ContentsManager

    manager = ContentsManager(root_dir=str(root))

    async def round_trip() -> None:
        model = await manager.get(name, type="notebook")
        notebook = model["content"]
        notebook.metadata.update(kernelspec=KERNEL, language_info=LANGUAGE)
        for count, cell in enumerate((c for c in notebook.cells if c.cell_type == "code"), 1):
            cell.execution_count = count
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
            cell.metadata.update(CELL_METADATA)
        await manager.save({"type": "notebook", "format": "json", "content": notebook}, name)

    asyncio.run(round_trip())


def copy_of_notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for path in [*SOURCES, NOTEBOOKS_DIR / "jupytext.toml"]:
        shutil.copy(path, folder)
    return folder


def test_saving_an_unchanged_notebook_in_lab_leaves_its_source_as_it_was(tmp_path):
    folder = copy_of_notebooks(tmp_path)
    for source in SOURCES:
        save_as_lab_does(folder, source.name)  # the first save writes the paired .ipynb
        save_as_lab_does(folder, source.name)  # the next ones read it back
        assert (folder / source.name).read_text() == source.read_text(), source.name
        paired = folder / f"{source.stem}.ipynb"
        outputs = [c.outputs for c in nbformat.read(paired, as_version=4).cells if c.cell_type == "code"]
        assert outputs and all(o for o in outputs), f"{paired.name} keeps the outputs"


def what_lab_sets_when_the_kernel_starts() -> tuple[dict, dict]:
    """The metadata JupyterLab writes into a notebook once its kernel (python3) has started: the kernelspec
    (name, display name and language of the kernel's spec) and the language_info the kernel reports."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    spec = KernelSpecManager().get_kernel_spec("python3")
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.kernel_info(reply=True, timeout=120)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    kernelspec = {"name": "python3", "display_name": spec.display_name, "language": spec.language}
    return kernelspec, reply["content"]["language_info"]


def test_an_untouched_notebook_opens_in_lab_unmodified(tmp_path):
    # JupyterLab marks a notebook modified (and asks "Save changes?" on closing it) when what it sets on
    # opening differs from what it read: a placeholder language_info at once, the kernel's once it starts.
    from styleprobe.apps.lab import ContentsManager

    kernelspec, language_info = what_lab_sets_when_the_kernel_starts()
    manager = ContentsManager(root_dir=str(copy_of_notebooks(tmp_path)))
    for source in SOURCES:
        read = asyncio.run(manager.get(source.name, type="notebook"))["content"].metadata
        assert (read.get("kernelspec"), read.get("language_info")) == (kernelspec, language_info), source.name


def test_make_lab_runs_as_root_too_with_that_contents_manager(tmp_path):
    def lab_command(uid: int) -> str:
        fake = tmp_path / str(uid)
        fake.mkdir()
        (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")  # `id -u` as that user
        (fake / "id").chmod(0o755)
        env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
        make = ["make", "-n", "-o", f"{sys.prefix}/.installed", "lab", f"VENV={sys.prefix}"]
        dry = subprocess.run(make, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
        return next(line for line in dry.replace("\\\n", " ").splitlines() if "jupyter lab" in line)

    as_root, as_user = lab_command(0), lab_command(1000)
    assert "--allow-root" in as_root and "--allow-root" not in as_user  # Jupyter refuses root without it
    for command in (as_root, as_user):
        assert "--ServerApp.contents_manager_class=styleprobe.apps.lab.ContentsManager" in command
        assert command.split()[-1] == "notebooks/"


def test_the_paired_notebooks_are_ignored_by_git():
    for source in SOURCES:
        paired = source.with_suffix(".ipynb").relative_to(REPO)
        assert subprocess.run(["git", "check-ignore", "-q", str(paired)], cwd=REPO).returncode == 0, paired


def jupytext_lab_extension() -> str:
    """The installed jupytext JupyterLab extension's code, where its document factory is named."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("labextensions"):
        scripts = sorted(Path(folder, "jupyterlab-jupytext", "static").glob("*.js"))
        if scripts:
            return "".join(p.read_text(errors="replace") for p in scripts)
    pytest.fail("jupytext's JupyterLab extension is not installed")


def test_make_lab_makes_jupytext_the_default_viewer_of_python_files(tmp_path):
    from jupyter_core.paths import jupyter_path
    from jupyterlab.commands import get_app_dir
    from jupyterlab_server.settings_utils import get_settings

    # `make lab`'s settings step, into a scratch Lab application directory of this environment
    env = {**os.environ, "JUPYTERLAB_DIR": str(tmp_path / "app")}
    prefix = sys.prefix
    make = ["make", "-s", "-o", f"{prefix}/.installed", "lab-settings", f"VENV={prefix}"]
    subprocess.run(make, cwd=REPO, env=env, check=True)
    assert (tmp_path / "app" / "settings" / "overrides.d" / "styleprobe.json").is_file()

    settings, _ = get_settings(
        app_settings_dir=str(tmp_path / "app" / "settings"),
        schemas_dir=str(Path(get_app_dir(), "schemas")),
        settings_dir=str(tmp_path / "user-settings"),
        schema_name=DOCMANAGER,
        labextensions_path=jupyter_path("labextensions"),
    )
    viewers = settings["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers == {"python": "Jupytext Notebook"}
    # the name is the notebook factory jupytext registers, for the file type JupyterLab gives .py files
    code = jupytext_lab_extension()
    assert re.search(r'FACTORY\s*=\s*"Jupytext Notebook"', code)
    file_types = re.search(r"FILE_TYPES\s*=\s*(\[[^]]*\])", code)
    assert file_types and "python" in json.loads(file_types.group(1))
