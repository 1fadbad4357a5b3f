"""The documents a reader sees first: README links, the repository's address, licence and citation."""

from __future__ import annotations

import json
import re

import yaml

from styleprobe import __version__
from styleprobe.paths import REPO_ROOT, REPOSITORY
from styleprobe.protocol.validity import MARK
from styleprobe.report import readme

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


def test_the_readme_results_are_those_of_the_committed_results():
    assert readme.main(["--check"]) == 0, "run: python -m styleprobe.report.readme"


def test_the_results_block_draws_no_conclusion_from_an_axis_that_failed():
    """With every axis failing, the headline says so and names no pole the model leans to."""
    block = readme.render(REPO_ROOT / "results")
    results = json.loads((REPO_ROOT / "results" / f"{readme.MAIN_MODEL}.json").read_text())
    status = {n: row["validation"] for n, row in results["calibration"]["evaluation"].items()}
    failed = [n for n, s in status.items() if s != "valid"]
    assert block.count(MARK) - 1 >= len(failed)  # each failed row marked, plus the footnote
    if len(failed) == len(status):
        assert "no reliable style axis" in block and "leans towards" not in block


def test_a_validated_axis_is_named_with_the_pole_its_interval_points_to(tmp_path):
    results = json.loads((REPO_ROOT / "results" / f"{readme.MAIN_MODEL}.json").read_text())
    row = results["calibration"]["evaluation"]["formal_casual"]
    row.update(pairwise_accuracy=0.9, accuracy_ci_low=0.7, accuracy_ci_high=0.97, validation="valid")
    results["baseline"]["fingerprint"]["formal_casual"].update(ci_low=0.2, ci_high=0.9, validation="valid")
    (tmp_path / f"{readme.MAIN_MODEL}.json").write_text(json.dumps(results))
    block = readme.render(tmp_path)
    assert "1 of 7 axes pass held-out validation** (formal/casual)" in block
    assert "leans towards formal" in block and "| formal/casual | 0.90 [0.70, 0.97]" in block


def test_the_readme_shows_the_python_api_the_package_documents():
    import styleprobe

    snippet = [line.strip() for line in styleprobe.__doc__.splitlines() if line.startswith("    ")]
    block = README.split("```python\n", 1)[1].split("```", 1)[0]
    assert [line.strip() for line in block.strip().splitlines()] == snippet


def test_the_committed_statistics_check_was_run_at_todays_sizes_and_families():
    """The committed notebook 12 table is today's: its drift row at the quick drift sizes (it once said 10
    conversations after quick became 8 + 4), and every row with the condition it was drawn under."""
    from styleprobe.analyses.statistics_check import StatisticsCheckResult
    from styleprobe.protocol.profiles import DRIFT_PROFILES
    from styleprobe.report.paper import CROSS_MODEL
    from styleprobe.report.results import load_results

    section = load_results(CROSS_MODEL, REPO_ROOT / "results")["statistics_check"]
    table = StatisticsCheckResult.from_dict(section).table
    sizes = DRIFT_PROFILES["quick"]
    drift = table[(table["check"] == "drift mean slope CI") & (table["profile"] == "quick")]
    assert (
        len(drift) and (drift["n"] == f"{sizes.n_scenarios} conversations x {sizes.n_conflict} turns").all()
    )
    assert "condition" in table and table["condition"].notna().all()


# Issue 29 §5: sentences the numbers did not support, as they stood in the paper and the docs.
WRONG_SENTENCES = {
    "paper/sections/calibration.tex": [
        # named an axis "best-separated" and counted axes reaching 0.65 when none validated
        r"The best-separated axis is",
        r"n_separable\} axes reach",
    ],
    "paper/sections/baseline.tex": [
        # a share of answers "further than the instructed answers land", from failed axes in floor units
        r"max_beyond_poles_percent",
    ],
    "paper/sections/base_vs_instruct.tex": [
        # "separable" from a per-item binomial test, not the validation predicate
        r"above one half by",
    ],
    "docs/method.md": [r"the CI excludes 0", r"held-out within-pole spreads"],
    "lib/styleprobe/analyses/base_vs_instruct.py": [r"bootstrap CI"],
}


def test_no_sentence_the_numbers_do_not_support_is_back():
    """Each wrong sentence issue 29 lists, as it was worded, is gone from its file; the generated sentences
    that replace them have their own tests (test_positions, test_base_instruct, test_drift)."""
    for name, patterns in WRONG_SENTENCES.items():
        text = (REPO_ROOT / name).read_text()
        for pattern in patterns:
            assert not re.search(pattern, text), f"{name}: {pattern!r} is back"


def test_the_generated_prose_uses_the_validation_predicate_and_no_floor_unit():
    """The README and the paper call a position "half the held-out pole separation" only on a validated,
    unfloored axis, and nothing in the generated prose counts an axis separable by a binomial test."""
    generated = "\n".join(p.read_text() for p in (REPO_ROOT / "paper" / "generated").rglob("*.tex"))
    for text in (README, generated):
        assert "binomial" not in text.lower()
    assert "held-out within-pole" not in README
