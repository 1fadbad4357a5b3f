"""The documents a reader sees first: README links, the repository's address, licence and citation."""

from __future__ import annotations

import re

import yaml

from styleprobe import __version__
from styleprobe.paths import REPO_ROOT, REPOSITORY

README = (REPO_ROOT / "README.md").read_text()
GITHUB = REPOSITORY.removeprefix("https://github.com/")


def test_every_colab_link_opens_an_existing_copy_of_this_repository():
    links = re.findall(r"https://colab\.research\.google\.com/github/([^)\s>`]+)", README)
    assert links, "the README links no notebook in Colab"
    for link in links:
        repo, _, path = link.partition("/blob/main/")
        assert repo == GITHUB, f"{link}: not {REPOSITORY} (styleprobe.paths.REPOSITORY)"
        assert path.startswith("notebooks/colab/") and (REPO_ROOT / path).is_file(), f"{link}: no such copy"


def test_the_repository_address_is_the_same_everywhere():
    citation = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert citation["repository-code"] == REPOSITORY, "CITATION.cff: set it to styleprobe.paths.REPOSITORY"
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    urls = re.findall(r'^\w+ = "(https://github\.com/[^"]+)"', pyproject, flags=re.MULTILINE)
    assert urls and all(u.startswith(REPOSITORY) for u in urls), "pyproject.toml [project.urls]"
    other = set(re.findall(r"github\.com/(styleprobe/[\w.-]+)", README)) - {GITHUB}
    assert not other, f"README.md names {other}, not {GITHUB}"


def test_the_licence_and_citation_match_the_package():
    assert (REPO_ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = "MIT"' in (REPO_ROOT / "pyproject.toml").read_text()
    citation = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert citation["license"] == "MIT" and str(citation["version"]) == __version__
