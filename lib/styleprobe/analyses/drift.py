"""Multi-turn conflict drift: does the model's style move while a user grows hostile, and does it recover?

Conversations (data/drift.yaml) run turn by turn with their full history: for turn t, every conversation's
previous user turns and the model's own previous answers are the history, and each turn is one resumable
stage. Every answer is projected onto the calibrated axes.

Per conversation and axis (`per_conversation`):
- slope: least-squares slope of the projection on the turn number over the conflict turns (1..n_conflict,
  the opening request included), NaN points left out;
- start, end: the projection at the first and at the last conflict turn; delta = end - start;
- recovery = mean over the recovery turns - end (how far the style moves back once the user calms down);
- residual = mean over the recovery turns - start (what is left of the drift relative to the opening).

Per axis (`summarise`, `drift_table`): the mean slope over conversations with a percentile bootstrap 95 % CI
over conversations; a drift is significant only when that CI excludes 0 and |mean slope| > 2 |mean slope of
the control conversations|. The same functions recompute the original study's published `drift_summary`
(mean and ddof=0 std of the per-scenario slopes, mean start, end and delta) from its per-turn values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
import torch

from styleprobe import stats
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.models import ModelHandle
from styleprobe.engine.pipeline import Item, StageResult, run_stage
from styleprobe.formats.mood_axis import load_drift
from styleprobe.paths import data_dir
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import project_results
from styleprobe.protocol.spec import DataError, _get, _questions, _read_yaml

CONFLICT_TURNS = 12  # opening request + 11 escalating hostile turns
RECOVERY_TURNS = 4
KINDS = ("conflict", "control")
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class DriftProfile:
    name: str
    n_scenarios: int  # conflict scenarios, taken across categories in turn
    n_controls: int  # neutral control conversations
    n_conflict: int  # conflict turns (the opening first), at most CONFLICT_TURNS
    n_recovery: int  # recovery turns, at most RECOVERY_TURNS
    max_new_tokens: int  # token budget of each answer

    @property
    def n_turns(self) -> int:
        return self.n_conflict + self.n_recovery

    def to_dict(self) -> dict:
        return asdict(self)


DRIFT_PROFILES = {
    "paper": DriftProfile("paper", 20, 10, 12, 4, 200),
    "quick": DriftProfile("quick", 10, 5, 8, 2, 32),  # a CPU: history makes the cost grow with turns²
    "smoke": DriftProfile("smoke", 2, 1, 3, 1, 8),
}


def get_drift_profile(name: str | None, **overrides: int | None) -> DriftProfile:
    """Like `profiles.get_profile`: None picks `paper` on a GPU and `quick` otherwise; overrides (None ones
    ignored) change single sizes and name the result e.g. `quick+max_new_tokens=32`."""
    name = name or ("paper" if torch.cuda.is_available() else "quick")
    base_name = name.split("+")[0]
    if base_name not in DRIFT_PROFILES:
        raise ValueError(f"unknown drift profile {name!r}; choose from {', '.join(DRIFT_PROFILES)}")
    base = DRIFT_PROFILES[base_name]
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(base, k) != v}
    profile = base
    if changed:
        label = "+".join([base_name, *(f"{k}={v}" for k, v in sorted(changed.items()))])
        profile = replace(base, name=label, **changed)
    if not 2 <= profile.n_conflict <= CONFLICT_TURNS:
        raise ValueError(f"n_conflict must lie in 2..{CONFLICT_TURNS} (a slope needs two turns)")
    if not 0 <= profile.n_recovery <= RECOVERY_TURNS:
        raise ValueError(f"n_recovery must lie in 0..{RECOVERY_TURNS}")
    if profile.n_scenarios < 1 or profile.n_controls < 1 or profile.max_new_tokens < 1:
        raise ValueError("drift needs at least one scenario, one control and one new token per answer")
    return profile


@dataclass(frozen=True)
class Conversation:
    """The user side of one conversation: conflict turns (opening first), then recovery turns."""

    id: str
    kind: str  # "conflict" or "control"
    category: str  # the conflict category; "control" for controls
    topic: str
    user_turns: tuple[str, ...]

    def truncated(self, n_conflict: int, n_recovery: int) -> Conversation:
        """The first `n_conflict` conflict turns and the first `n_recovery` recovery turns."""
        turns = self.user_turns[:n_conflict] + self.user_turns[CONFLICT_TURNS : CONFLICT_TURNS + n_recovery]
        return replace(self, user_turns=turns)


def load_conversations(path: Path | None = None) -> list[Conversation]:
    """Parse and validate data/drift.yaml: scenarios (opening + 11 conflict + 4 recovery turns) and controls
    (16 turns); ids unique."""
    path = Path(path) if path is not None else data_dir() / "drift.yaml"
    raw = _read_yaml(path)
    out: list[Conversation] = []
    for i, sc in enumerate(_get(path, raw, "scenarios", "", list)):
        where = f"scenarios[{i}]."
        opening = _get(path, sc, "opening", where, str)
        conflict = _questions(path, sc, "conflict", where)
        recovery = _questions(path, sc, "recovery", where)
        if len(conflict) != CONFLICT_TURNS - 1 or len(recovery) != RECOVERY_TURNS:
            raise DataError(
                f"{path}: {where[:-1]} needs {CONFLICT_TURNS - 1} conflict and {RECOVERY_TURNS} recovery"
                f" turns, got {len(conflict)} and {len(recovery)}"
            )
        out.append(
            Conversation(
                _get(path, sc, "id", where, str),
                "conflict",
                _get(path, sc, "category", where, str),
                _get(path, sc, "topic", where, str),
                (opening, *conflict, *recovery),
            )
        )
    for i, c in enumerate(_get(path, raw, "controls", "", list)):
        where = f"controls[{i}]."
        turns = _questions(path, c, "turns", where)
        if len(turns) != CONFLICT_TURNS + RECOVERY_TURNS:
            raise DataError(
                f"{path}: {where[:-1]} needs {CONFLICT_TURNS + RECOVERY_TURNS} turns, got {len(turns)}"
            )
        topic = _get(path, c, "topic", where, str)
        out.append(Conversation(_get(path, c, "id", where, str), "control", "control", topic, tuple(turns)))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicate conversation ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return out


def select_conversations(conversations: list[Conversation], profile: DriftProfile) -> list[Conversation]:
    """`n_scenarios` scenarios taking the categories in turn (so a few still cover several categories),
    then the first `n_controls` controls, each cut to the profile's turns."""
    by_category: dict[str, list[Conversation]] = {}
    for c in conversations:
        if c.kind == "conflict":
            by_category.setdefault(c.category, []).append(c)
    controls = [c for c in conversations if c.kind == "control"]
    n_available = sum(map(len, by_category.values()))
    if profile.n_scenarios > n_available or profile.n_controls > len(controls):
        raise ValueError(
            f"profile {profile.name} asks for {profile.n_scenarios} scenarios and {profile.n_controls}"
            f" controls; the data has {n_available} and {len(controls)}"
        )
    queues = list(by_category.values())
    rounds = [q[r] for r in range(max(map(len, queues))) for q in queues if r < len(q)]
    chosen = rounds[: profile.n_scenarios] + controls[: profile.n_controls]
    return [c.truncated(profile.n_conflict, profile.n_recovery) for c in chosen]


def visible_answer(text: str) -> str:
    """The part of an answer that goes back into the history: what follows a closing think tag, if any."""
    return text.rsplit(THINK_CLOSE, 1)[-1].strip() if THINK_CLOSE in text else text


def stage_root(run_dir: Path, profile: DriftProfile, seed: int = 0) -> Path:
    """Where `run_drift` keeps the stages of these conversations, this token budget and this seed."""
    tag = f"drift-{profile.n_scenarios}+{profile.n_controls}-{profile.max_new_tokens}tok"
    return Path(run_dir) / tag / f"seed-{seed}"


def turn_dir(turn: int, n_conflict: int) -> str:
    """The stage of one turn under `stage_root`: conflict turns are shared by every number of turns."""
    name = f"turn-{turn:02d}"
    return name if turn <= n_conflict else f"recovery-after-{n_conflict:02d}/{name}"


def run_drift(
    handle: ModelHandle,
    conversations: list[Conversation],
    profile: DriftProfile,
    run_dir: Path,
    *,
    aggregation: Aggregation = Aggregation(),
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    thinking: bool | None = None,
    progress: bool = True,
) -> dict[int, StageResult]:
    """Answer every conversation turn by turn with its full history, one stage per turn, so a killed run
    resumes at the turn it stopped: `<run_dir>/drift-<scenarios>+<controls>-<tokens>tok/seed-<seed>/turn-NN`
    for conflict turns and `.../recovery-after-MM/turn-NN` for recovery turns, so profiles that differ only
    in their number of turns share the conflict turns they have in common.

    An answer's sampling key depends on the seed, the conversation and the turn only, so a conversation
    gets the same answers whichever others run beside it. Returns the stage result of each turn (1-based);
    records carry `conversation` (index into `conversations`), `turn`, `kind`, `category`."""
    if not conversations:
        raise ValueError("no conversations to run")
    n_turns = {len(c.user_turns) for c in conversations}
    if len(n_turns) != 1:
        raise ValueError(f"conversations must have the same number of turns, got {sorted(n_turns)}")
    sampling = sampling or SamplingConfig(profile.max_new_tokens)
    root = stage_root(run_dir, profile, seed)
    answers: list[list[str]] = [[] for _ in conversations]
    results = {}
    for t in range(1, n_turns.pop() + 1):
        items = [
            Item(
                id=f"{c.id}/turn-{t:02d}",
                question=c.user_turns[t - 1],
                history=tuple(zip(c.user_turns[: t - 1], answers[k], strict=True)),
                meta={"conversation": k, "turn": t, "kind": c.kind, "category": c.category},
                seed=seed,
            )
            for k, c in enumerate(conversations)
        ]
        res = run_stage(
            handle,
            root / turn_dir(t, profile.n_conflict),
            items,
            sampling,
            aggregation,
            seed=seed,
            batch_size=batch_size,
            thinking=thinking,
            desc=f"turn {t}",
            progress=progress,
        )
        for k, text in enumerate(res.records["response"]):
            answers[k].append(visible_answer(text))
        results[t] = res
    return results


def project_turns(
    axes: AxisSet,
    results: dict[int, StageResult],
    conversations: list[Conversation],
    n_conflict: int,
    model_id: str | None = None,
) -> pd.DataFrame:
    """Long table with one row per (conversation, turn, axis): id, kind, category, turn, phase (conflict or
    recovery), axis, value (NaN for empty answers), n_tokens."""
    by_conversation = {  # project_results indexes answers by `q_index`: here, the conversation
        t: StageResult(r.records.assign(q_index=r.records["conversation"]), r.per_layer, r.aggregation)
        for t, r in results.items()
    }
    wide = project_results(axes, by_conversation, model_id)
    wide = wide.rename(columns={"seed": "turn", "q_index": "conversation"})
    meta = pd.DataFrame(
        [{"id": c.id, "kind": c.kind, "category": c.category} for c in conversations]
    ).rename_axis("conversation")
    wide = wide.join(meta, on="conversation")
    wide["phase"] = np.where(wide["turn"] <= n_conflict, "conflict", "recovery")
    keys = ["id", "kind", "category", "turn", "phase", "n_tokens"]
    long = wide.melt(id_vars=keys, value_vars=axes.names, var_name="axis", value_name="value")
    order = {name: i for i, name in enumerate(axes.names)}  # axes in their own order, not alphabetical
    long = long.sort_values(
        ["kind", "id", "axis", "turn"], key=lambda c: c.map(order) if c.name == "axis" else c
    )
    return long.reset_index(drop=True)


def imported_drift(path: str | Path) -> pd.DataFrame:
    """The original study's per-turn values (`<model>_drift.json`) in the layout of `project_turns`: every
    turn is a conflict turn (the study had no recovery turns and no controls)."""
    long, _ = load_drift(path)
    long = long.rename(columns={"scenario_id": "id"})
    long["kind"], long["phase"] = "conflict", "conflict"
    return long[["id", "kind", "category", "turn", "phase", "n_tokens", "axis", "value"]]


# -- statistics ------------------------------------------------------------------------------------------


def ols_slope(turns: Iterable[float], values: Iterable[float]) -> float:
    """Least-squares slope of value on turn (scipy.stats.linregress); NaN values are left out, and fewer
    than two distinct turns left gives NaN."""
    x, y = np.asarray(list(turns), dtype=float), np.asarray(list(values), dtype=float)
    keep = np.isfinite(y)
    if np.unique(x[keep]).size < 2:
        return float("nan")
    return float(scipy.stats.linregress(x[keep], y[keep]).slope)


def _conversation_row(group: pd.DataFrame, n_conflict: int | None) -> pd.Series:
    group = group.sort_values("turn")
    last = group["turn"].max() if n_conflict is None else n_conflict
    conflict, recovery = group[group["turn"] <= last], group[group["turn"] > last]
    first_turn = conflict["turn"].min()
    start = conflict.loc[conflict["turn"] == first_turn, "value"].mean()
    end = conflict.loc[conflict["turn"] == last, "value"].mean()
    after = recovery["value"].mean() if len(recovery) else np.nan  # NaN-skipping mean
    return pd.Series(
        {
            "slope": ols_slope(conflict["turn"], conflict["value"]),
            "start": start,
            "end": end,
            "delta": end - start,
            "recovery": after - end,
            "residual": after - start,
            "n_missing": int(group["value"].isna().sum()),
        }
    )


def per_conversation(long: pd.DataFrame, n_conflict: int | None = None) -> pd.DataFrame:
    """One row per (kind, category, id, axis): slope over the conflict turns (turn <= n_conflict; None: all
    turns), start, end, delta, recovery, residual (see the module docstring) and n_missing (NaN values)."""
    keys = ["kind", "category", "id", "axis"]
    missing = {*keys, "turn", "value"} - set(long.columns)
    if missing:
        raise ValueError(f"the per-turn table lacks the columns {sorted(missing)}")
    rows = {key: _conversation_row(g, n_conflict) for key, g in long.groupby(keys, sort=False)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=keys)
    return table.reset_index()


def _mean_ci(values: pd.Series, n_boot: int, seed: int) -> tuple[float, float, float]:
    v = values.dropna().to_numpy(dtype=float)
    if v.size == 0:
        return np.nan, np.nan, np.nan
    if v.size < 2:
        return float(v.mean()), np.nan, np.nan
    lo, hi = stats.bootstrap_ci(np.mean, v, n_boot=n_boot, seed=seed)
    return float(v.mean()), lo, hi


def summarise(per_conv: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per axis over conversations (NaN slopes left out): n, mean_slope with its bootstrap 95 % CI,
    std_slope (ddof=0, as the study), mean_start, mean_end, mean_delta (= mean_end - mean_start),
    mean_recovery with its CI, mean_residual."""
    rows = {}
    for axis, g in per_conv.groupby("axis", sort=False):
        slope, lo, hi = _mean_ci(g["slope"], n_boot, seed)
        recovery, r_lo, r_hi = _mean_ci(g["recovery"], n_boot, seed)
        rows[axis] = {
            "n": int(g["slope"].notna().sum()),
            "mean_slope": slope,
            "ci_low": lo,
            "ci_high": hi,
            "std_slope": float(g["slope"].std(ddof=0)),
            "mean_start": g["start"].mean(),
            "mean_end": g["end"].mean(),
            "mean_delta": g["end"].mean() - g["start"].mean(),
            "mean_recovery": recovery,
            "recovery_ci_low": r_lo,
            "recovery_ci_high": r_hi,
            "mean_residual": g["residual"].mean(),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("axis")


def is_significant(
    mean_slope: float, ci_low: float, ci_high: float, control_slope: float, factor: float = 2.0
) -> bool:
    """A drift counts only when the CI excludes 0 and |mean slope| > factor * |control mean slope|
    (a missing CI or control slope counts as not significant)."""
    if not np.all(np.isfinite([mean_slope, ci_low, ci_high, control_slope])):
        return False
    return bool((ci_low > 0 or ci_high < 0) and abs(mean_slope) > factor * abs(control_slope))


def drift_table(
    per_conv: pd.DataFrame, *, factor: float = 2.0, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per axis: the conflict conversations' `summarise` columns, the controls' mean slope with its CI,
    and `significant` (see `is_significant`)."""
    conflict = summarise(per_conv[per_conv["kind"] == "conflict"], n_boot=n_boot, seed=seed)
    control = summarise(per_conv[per_conv["kind"] == "control"], n_boot=n_boot, seed=seed)
    control = control[["mean_slope", "ci_low", "ci_high", "mean_recovery"]].add_prefix("control_")
    table = conflict.join(control)
    table["significant"] = [
        is_significant(r.mean_slope, r.ci_low, r.ci_high, r.control_mean_slope, factor)
        for r in table.itertuples()
    ]
    return table


def trajectories(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (kind, axis, turn): mean projection over conversations with its bootstrap 95 % CI, and n."""
    rows = []
    for (kind, axis, turn), g in long.groupby(["kind", "axis", "turn"], sort=False):
        mean, lo, hi = _mean_ci(g["value"], n_boot, seed)
        n = int(g["value"].notna().sum())
        rows.append(
            {"kind": kind, "axis": axis, "turn": turn, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n}
        )
    return pd.DataFrame(rows).sort_values(["kind", "axis", "turn"]).reset_index(drop=True)
