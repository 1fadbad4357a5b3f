"""`styleprobe reproduce`: the notebook order follows the results' needs, a plan with unmet needs is refused,
and independent notebooks run side by side."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from waiting import WAIT

from styleprobe.apps import reproduce
from styleprobe.apps.cli import main
from styleprobe.apps.reproduce import Step, dependencies, order, plan, run_steps
from styleprobe.errors import UsageError
from styleprobe.report.results import result_classes, update_results


@dataclass(frozen=True)
class Made:
    """A stand-in for a Result class: what order and dependencies read of one."""

    name: str
    notebook: str
    needs: tuple[str, ...] = ()
    cross_model: bool = False


def _registry(*results: Made) -> dict:
    return {r.name: r for r in results}


def test_order_puts_makers_first_and_breaks_ties_by_number():
    registry = _registry(
        Made("a", "01_a"),
        Made("c", "07_c", needs=("a",)),
        Made("e", "05_e", needs=("c", "a")),
        Made("e_part", "05_e", needs=("e",)),  # a need made in the same notebook orders nothing
        Made("d", "03_d", needs=("a",)),
    )
    names = ["07_c", "05_e", "03_d", "01_a", "02_free"]
    assert order(names, registry) == ["01_a", "02_free", "03_d", "07_c", "05_e"]
    assert order(["05_e", "02_free"], registry) == ["02_free", "05_e"]  # makers outside the list: no order
    with pytest.raises(UsageError, match="cycle"):
        order(["01_a", "07_c"], _registry(Made("a", "01_a", needs=("c",)), Made("c", "07_c", needs=("a",))))


def test_the_repository_order_runs_every_maker_before_its_readers():
    registry = result_classes()
    made_by = {name: cls.notebook for name, cls in registry.items()}
    unknown = {(cls.name, need) for cls in registry.values() for need in cls.needs if need not in made_by}
    assert not unknown, f"needs that no Result is named: {unknown}"
    ordered = reproduce.run_order()
    for cls in registry.values():
        for need in cls.needs:
            assert ordered.index(made_by[need]) <= ordered.index(cls.notebook), (cls.name, need)
    assert ordered[0] == "00_explore" and ordered.index("05_judge") > ordered.index("08_dead_zones")
    assert reproduce.cross_model_notebooks() == {"10_cross_model", "12_statistics_check"}
    assert reproduce.per_model_notebooks()[0] == "01_calibration"


def _saved(root: Path, slug: str, *sections: str) -> None:
    for section in sections:
        update_results(slug, section, {"saved": True}, root / "results")


def test_a_plan_needing_what_neither_the_plan_nor_the_root_has_is_refused(tmp_path):
    params = {"root": str(tmp_path), "profile": "smoke"}
    with pytest.raises(UsageError) as err:
        plan(["random:qwen2"], params, notebooks=["08"])
    message = str(err.value)
    assert "\n" not in message and "08_dead_zones for random:qwen2" in message
    assert "calibration (made by 01_calibration)" in message and "add 01 02 07 to --notebooks" in message
    asked = plan(["random:qwen2"], params, notebooks=["08", "07", "02", "01"])
    assert [s.notebook for s in asked] == ["01_calibration", "02_baseline", "07_stability", "08_dead_zones"]
    registry = result_classes()
    needed = reproduce.notebook_needs("08_dead_zones", registry)
    _saved(tmp_path, "random-llama", *needed)  # another model's results do not count
    with pytest.raises(UsageError, match="08_dead_zones"):
        plan(["random:qwen2"], params, notebooks=["08"])
    _saved(tmp_path, "random-qwen2", *needed)
    assert [s.notebook for s in plan(["random:qwen2"], params, notebooks=["08"])] == ["08_dead_zones"]


def test_the_cross_model_notebook_takes_any_model_s_saved_results(tmp_path):
    params = {"root": str(tmp_path)}
    with pytest.raises(UsageError, match="10_cross_model needs"):
        plan(["random:qwen2"], params, notebooks=["10"])
    _saved(tmp_path, "random-llama", *reproduce.notebook_needs("10_cross_model", result_classes()))
    assert [s.notebook for s in plan(["random:qwen2"], params, notebooks=["10"])] == ["10_cross_model"]


def test_skipped_notebooks_are_left_out_and_their_readers_still_checked(tmp_path):
    params = {"root": str(tmp_path), "profile": "smoke"}
    full = [s.notebook for s in plan(["smollm2-135m-instruct"], params)]
    assert "03_base_vs_instruct" in full  # the preset has a base model
    trimmed = [s.notebook for s in plan(["smollm2-135m-instruct"], params, skip=["03"])]
    assert trimmed == [n for n in full if n != "03_base_vs_instruct"]
    with pytest.raises(UsageError, match="add 01 to --notebooks"):  # 02 reads 01's calibration
        plan(["smollm2-135m-instruct"], params, notebooks=["01", "02"], skip=["01"])
    with pytest.raises(UsageError, match="unknown notebook '99'"):
        plan(["smollm2-135m-instruct"], params, skip=["99"])


def test_dependencies_link_a_model_s_steps_and_the_cross_model_step_to_every_model(tmp_path):
    steps = plan(["random:qwen2", "random:llama"], {"root": str(tmp_path), "profile": "smoke"})
    after = dependencies(steps)
    index = {(s.notebook, s.model): i for i, s in enumerate(steps)}
    judge = after[index[("05_judge", "random:llama")]]
    assert (
        index[("08_dead_zones", "random:llama")] in judge
        and index[("01_calibration", "random:llama")] in judge
    )
    assert not any(steps[j].model == "random:qwen2" for j in judge)
    assert not after[index[("01_calibration", "random:llama")]]  # free to start beside the other model
    cross = after[index[("10_cross_model", None)]]
    assert {index[("02_baseline", m)] for m in ("random:qwen2", "random:llama")} <= cross


def _steps(*names: str) -> list[Step]:
    return [Step(name, Path(f"{name}.ipynb"), {}) for name in names]


def test_independent_steps_run_at_once_and_a_dependent_one_waits():
    both_running = threading.Barrier(2, timeout=WAIT)  # breaks unless a and b run at the same time
    finished: dict[str, float] = {}
    started: dict[str, float] = {}

    def run(step: Step) -> Path:
        started[step.notebook] = time.monotonic()
        if step.notebook in ("a", "b"):
            both_running.wait()
        finished[step.notebook] = time.monotonic()
        return step.output

    steps = _steps("a", "b", "c")
    done = run_steps(steps, [set(), set(), {0}], run, jobs=2, log=lambda _: None)
    assert done == [Path("a.ipynb"), Path("b.ipynb"), Path("c.ipynb")]
    assert started["c"] >= finished["a"]


def test_one_job_runs_in_plan_order_and_a_failure_stops_what_depends_on_it():
    ran: list[str] = []

    def run(step: Step) -> Path:
        ran.append(step.notebook)
        if step.notebook == "b":
            raise RuntimeError("b broke")
        return step.output

    with pytest.raises(RuntimeError, match="b broke"):
        run_steps(_steps("a", "b", "c", "d"), [set(), set(), {1}, set()], run, jobs=1, log=lambda _: None)
    assert ran == ["a", "b"]  # nothing starts after a failure, c (needing b) least of all


def test_the_cli_takes_jobs(capsys):
    assert main(["reproduce", "--notebooks", "01", "02", "--jobs", "2", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("would run:") == 2
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--notebooks", "01", "--jobs", "0", "--dry-run"])
    assert exit_.value.code == 2 and "--jobs: must be at least 1" in capsys.readouterr().err
