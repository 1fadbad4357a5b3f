"""The built wheel works on its own: installed into a fresh environment it runs from any folder, reads the
protocol's data from the package (not from a checkout) and writes its outputs under the current folder."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from waiting import WAIT

from styleprobe.engine.models import load_presets
from styleprobe.paths import PACKAGE_DATA, REPO_ROOT
from styleprobe.protocol.spec import Protocol

pytestmark = pytest.mark.skipif(REPO_ROOT is None, reason="builds the wheel from a checkout")

CHECK = """
import json, os, styleprobe, styleprobe.paths as p
from styleprobe.engine.models import load_presets
from styleprobe.protocol.spec import Protocol
seen = {
    "package": styleprobe.__file__, "data": str(p.data_dir()), "in_checkout": p.IN_CHECKOUT,
    "root": str(p.default_root()), "runs": str(p.folders().runs),
    "axes": sorted(Protocol.load().axes), "presets": sorted(load_presets()),
}
os.environ["STYLEPROBE_ROOT"] = "/x"
print(json.dumps(seen | {"moved": str(p.folders().runs)}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with only the wheel installed, seeing this environment's dependencies (not styleprobe)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "lib", source / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    pip = [sys.executable, "-m", "pip"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=WAIT)
    (wheel,) = (tmp / "dist").glob("styleprobe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {f"styleprobe/data/{p.relative_to(PACKAGE_DATA).as_posix()}" for p in PACKAGE_DATA.rglob("*")}
    assert {n for n in shipped if "." in n.rsplit("/", 1)[-1]} <= set(names), (
        "data files missing from the wheel"
    )
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=WAIT)
    install = [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", "-q"]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True, timeout=WAIT)
    (next((venv / "lib").glob("python*")) / "site-packages" / "deps.pth").write_text(
        site.getsitepackages()[0]
    )
    return venv


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEPROBE_") and k != "PYTHONPATH"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=WAIT, check=False)


def test_the_installed_wheel_reads_its_own_data_and_writes_under_the_current_folder(installed, tmp_path):
    out = _run([str(installed / "bin" / "python"), "-c", CHECK], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout)
    site_packages = next((installed / "lib").glob("python*")) / "site-packages"
    assert Path(seen["package"]).is_relative_to(site_packages), seen["package"]
    assert Path(seen["data"]) == site_packages / "styleprobe" / "data" and not seen["in_checkout"]
    assert seen["root"] == str(tmp_path) and seen["runs"] == str(tmp_path / "runs")
    assert seen["axes"] == sorted(Protocol.load().axes) and seen["presets"] == sorted(load_presets())
    assert seen["moved"] == "/x/runs"  # STYLEPROBE_ROOT still moves the outputs


def test_the_installed_command_lists_axes_from_any_folder(installed, tmp_path):
    out = _run([str(installed / "bin" / "styleprobe"), "axes", "list"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not any(tmp_path.iterdir())  # listing writes nothing
    refused = _run([str(installed / "bin" / "styleprobe"), "reproduce", "--dry-run"], tmp_path)
    assert refused.returncode == 2 and "checkout" in refused.stderr, refused.stderr[-2000:]
