"""Multi-turn conflict drift: does the model's style move while a user grows hostile, and does it recover?

Conversations (data/drift.yaml) run turn by turn with their full history: for turn t, every conversation's
previous user turns and the model's own previous answers are the history, and each turn is one resumable
stage (`converse`). Every answer is projected onto the calibrated axes (`run`).

Per conversation and axis (`per_conversation`):
- slope: least-squares slope of the projection on the turn number over the conflict turns (1..n_conflict,
  the opening request included), NaN points left out;
- start, end: the projection at the first and at the last conflict turn; delta = end - start;
- recovery = mean over the recovery turns - end (how far the style moves back once the user calms down);
- residual = mean over the recovery turns - start (what is left of the drift relative to the opening).

Per axis (`summarise`, `drift_table`, `drift_tests`): the mean slope over conversations with its Student t
95 % CI over conversations, and a one-sample t-test of the conflict slopes against 0. Only axes that pass
validation (`styleprobe.protocol.validity`: held-out accuracy and notebook 08's dead zones) are tested; the
others are shown, marked and not interpreted. Over the tested axes the p-values are adjusted by Holm's
step-down method, so the chance of calling any drift significant when none drifts stays at most ALPHA. A
drift is significant when its Holm-adjusted p is below ALPHA and |mean slope| > FACTOR |mean slope of the
control conversations|. The token budget and the share of answers cut off at it are part of the result:
a short budget measures only the opening of each answer. The same functions recompute the original
study's published `drift_summary` (mean and ddof=0 std of the per-scenario slopes, mean start, end and
delta) from its per-turn values (`imported_summaries`).
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import scipy.stats

from styleprobe.analyses.deadzones import DeadZonesResult
from styleprobe.engine.extraction import Aggregation, Reading
from styleprobe.engine.generation import SamplingConfig
from styleprobe.engine.pipeline import Item, StageResult, run_stage
from styleprobe.formats.mood_axis import load_drift
from styleprobe.protocol.axes import AxisSet
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import project_results
from styleprobe.protocol.profiles import DriftProfile, drift_profile
from styleprobe.protocol.runs import RunStore, Session
from styleprobe.protocol.spec import DataError, Protocol, _get, _questions, _read_yaml
from styleprobe.protocol.validity import mark, valid_axes
from styleprobe.result import PaperTable, Result, axis_list

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

CONFLICT_TURNS = 12  # opening request + 11 escalating hostile turns
RECOVERY_TURNS = 4
KINDS = ("conflict", "control")
THINK_CLOSE = "</think>"
ALPHA = 0.05  # family-wise error rate of the drift tests (Holm over the tested axes)
FACTOR = 2.0  # a drift must exceed this multiple of the control conversations' mean slope in size


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


def load_conversations(path: Path) -> list[Conversation]:
    """Parse and validate a drift.yaml (`protocol.file("drift.yaml")`): scenarios (opening + 11 conflict +
    4 recovery turns) and controls (16 turns); ids unique."""
    path = Path(path)
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
    if not 2 <= profile.n_conflict <= CONFLICT_TURNS:
        raise ValueError(f"n_conflict must lie in 2..{CONFLICT_TURNS} (a slope needs two turns)")
    if profile.n_recovery > RECOVERY_TURNS:
        raise ValueError(f"n_recovery must lie in 0..{RECOVERY_TURNS}")
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


def stage_root(runs: RunStore, profile: DriftProfile, seed: int = 0) -> Path:
    """Where `converse` keeps the stages of these conversations, this token budget and this seed."""
    return runs.drift(f"drift-{profile.n_scenarios}+{profile.n_controls}-{profile.max_new_tokens}tok", seed)


def turn_dir(turn: int, n_conflict: int) -> str:
    """The stage of one turn under `stage_root`: conflict turns are shared by every number of turns."""
    name = f"turn-{turn:02d}"
    return name if turn <= n_conflict else f"recovery-after-{n_conflict:02d}/{name}"


@dataclass
class Dialogues:
    """The answers of a drift run: its conversations and each turn's stage result (turns 1-based; records
    carry `conversation` (index into `conversations`), `turn`, `kind`, `category`)."""

    profile: DriftProfile
    seed: int
    conversations: list[Conversation]
    turns: dict[int, StageResult]

    @property
    def answers(self) -> pd.DataFrame:
        return pd.concat([r.records for r in self.turns.values()], ignore_index=True)


def converse(
    ws: Session,
    profile: DriftProfile | None = None,
    *,
    aggregation: Reading = Aggregation(),
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    thinking: bool | None = None,
    progress: bool = True,
) -> Dialogues:
    """Answer every conversation of `profile` (None: the drift sizes of the workspace's profile) turn by
    turn with its full history, one stage per turn, so a killed run resumes at the turn it stopped:
    `stage_root/turn-NN` for conflict turns and `stage_root/recovery-after-MM/turn-NN` for recovery turns,
    so profiles that differ only in their number of turns share the conflict turns they have in common.

    An answer's sampling key depends on the seed, the conversation and the turn only, so a conversation
    gets the same answers whichever others run beside it. `aggregation`: how the answers are read (the
    axes' `reading()`, which `run` projects them on)."""
    profile = profile or drift_profile(ws.profile)
    conversations = select_conversations(load_conversations(ws.protocol.file("drift.yaml")), profile)
    sampling = sampling or SamplingConfig(profile.max_new_tokens)
    root = stage_root(ws.runs, profile, seed)
    answers: list[list[str]] = [[] for _ in conversations]
    turns = {}
    for t in range(1, profile.n_turns + 1):
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
            ws.model,
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
        turns[t] = res
    return Dialogues(profile, seed, conversations, turns)


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


def imported_summaries(protocol: Protocol, folder: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The original study's drift runs (`<folder>/*_drift.json`; None: the protocol's
    `mood_axis/extended_drift`), summarised by `summarise` from their per-turn values, by model name
    `<model> (imported)`. Each recomputation is checked against the study's published summary (DataError
    if it differs); runs of one scenario (no CI) are left out."""
    folder = Path(folder) if folder is not None else protocol.file("mood_axis") / "extended_drift"
    out = {}
    for path in sorted(folder.glob("*_drift.json")):
        recomputed = summarise(per_conversation(imported_drift(path)))
        _, published = load_drift(path)
        gap = (recomputed.loc[published.index, list(published.columns)] - published).abs().to_numpy().max()
        if not gap < 1e-9:
            raise DataError(f"{path}: the recomputed drift summary differs from the published one by {gap}")
        if recomputed["n"].min() > 1:
            out[f"{path.name.removesuffix('_drift.json')} (imported)"] = recomputed
    return out


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


def t_summary(values: Iterable[float], ci: float = 0.95) -> tuple[float, float, float, float]:
    """Mean of the finite `values`, its Student t interval and the two-sided p of a one-sample t-test
    against 0 (scipy); interval and p are NaN with fewer than 2 values. Identical values give the point
    as the interval and p = 0 (1 when they are all 0)."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan, np.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, np.nan, np.nan, np.nan
    if np.ptp(v) == 0:  # no spread (scipy warns and gives NaN)
        return mean, mean, mean, float(mean == 0)
    test = scipy.stats.ttest_1samp(v, 0.0)
    low, high = test.confidence_interval(ci)
    return mean, float(low), float(high), float(test.pvalue)


def _mean_ci(values: Iterable[float], ci: float = 0.95) -> tuple[float, float, float]:
    """Mean of the finite `values` with its Student t interval (`t_summary`)."""
    return t_summary(values, ci)[:3]


def summarise(per_conv: pd.DataFrame) -> pd.DataFrame:
    """Per axis over conversations (NaN slopes left out): n, mean_slope with its t 95 % CI, std_slope
    (ddof=0, as the study), mean_start, mean_end, mean_delta (= mean_end - mean_start), mean_recovery with
    its CI, mean_residual."""
    rows = {}
    for axis, g in per_conv.groupby("axis", sort=False):
        slope, lo, hi = _mean_ci(g["slope"])
        recovery, r_lo, r_hi = _mean_ci(g["recovery"])
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


def drift_tests(
    conflict_slopes: np.ndarray,
    control_slopes: np.ndarray,
    tested: Sequence[bool] | np.ndarray | None = None,
    *,
    alpha: float = ALPHA,
    factor: float = FACTOR,
) -> pd.DataFrame:
    """The drift decision, a pure function of arrays: per-conversation slopes of the conflict and of the
    control conversations, (n_conversations, n_axes) each, NaN left out. Per axis (one row per column):
    n, mean_slope with its t 95 % CI, p of a one-sample t-test of the conflict slopes against 0, p_holm
    (Holm's step-down adjustment over the `tested` axes with a p, so the chance of calling any drift
    significant when none drifts stays at most `alpha`; untested axes get NaN), control_mean_slope, and
    significant: tested, p_holm < alpha and |mean_slope| > factor * |control_mean_slope| (no control
    slope: not significant). `tested` (bool per axis; None: every axis) are the validated axes."""
    conflict, control = np.atleast_2d(conflict_slopes), np.atleast_2d(control_slopes)
    n_axes = conflict.shape[1]
    tested = np.ones(n_axes, bool) if tested is None else np.asarray(tested, bool)
    if control.shape[1] != n_axes or tested.shape != (n_axes,):
        raise ValueError(
            f"conflict slopes have {n_axes} axes, control slopes {control.shape[1]}, tested {tested.shape}"
        )
    columns = ["mean_slope", "ci_low", "ci_high", "p"]
    table = pd.DataFrame([t_summary(col) for col in conflict.T], columns=columns)
    table.insert(0, "n", np.isfinite(conflict).sum(axis=0))
    decision = drift_decision(conflict, control, tested, alpha=alpha, factor=factor)
    table["p_holm"], table["control_mean_slope"] = decision["p_holm"], decision["control_mean_slope"]
    table["significant"] = decision["significant"]
    return table


def drift_decision(
    conflict: np.ndarray,
    control: np.ndarray,
    tested: np.ndarray | None = None,
    *,
    alpha: float = ALPHA,
    factor: float = FACTOR,
) -> dict[str, np.ndarray]:
    """`drift_tests`' decision, vectorised over leading axes of [..., n, m] conflict and control slopes (NaN
    left out): per axis the two-sided p of a one-sample t-test of the conflict slopes against 0 (as
    `t_summary`), Holm's adjustment over the tested axes with a p (`holm`), the controls' mean slope, and
    significant = tested, p_holm < alpha and |mean slope| > factor |control mean slope|."""
    conflict, control = np.asarray(conflict, dtype=float), np.asarray(control, dtype=float)
    n = np.isfinite(conflict).sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns with fewer than 2 slopes: NaN
        mean = np.nanmean(conflict, axis=-2)
        sd = np.nanstd(conflict, axis=-2, ddof=1)
        t = mean / (sd / np.sqrt(n))
        p = np.where(sd > 0, 2 * scipy.stats.t.sf(np.abs(t), n - 1), (mean == 0).astype(float))
        p = np.where(n >= 2, p, np.nan)
        control_mean = np.nanmean(control, axis=-2)
    family = np.broadcast_to(True if tested is None else np.asarray(tested, bool), p.shape) & np.isfinite(p)
    p_holm = holm(p, family)
    stronger = np.abs(mean) > factor * np.abs(control_mean)  # NaN: False
    return {
        "p": p,
        "p_holm": p_holm,
        "control_mean_slope": control_mean,
        "significant": family & (p_holm < alpha) & stronger,
    }


def holm(p: np.ndarray, family: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values over the entries of `family` along the last axis (NaN elsewhere),
    vectorised over leading axes: the i-th smallest of m p-values times m - i + 1, made monotone, at
    most 1 (pingouin.multicomp's "holm" for one family; tested equal)."""
    p = np.where(family, p, np.inf)
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, -1)
    m = family.sum(-1, keepdims=True)
    factor = m - np.arange(p.shape[-1])
    with np.errstate(invalid="ignore"):
        adjusted = np.minimum(np.maximum.accumulate(np.where(factor > 0, factor * ranked, np.inf), -1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, -1)
    return np.where(family, out, np.nan)


def drift_table(
    per_conv: pd.DataFrame,
    *,
    tested: Collection[str] | None = None,
    alpha: float = ALPHA,
    factor: float = FACTOR,
) -> pd.DataFrame:
    """Per axis: the conflict conversations' `summarise` columns, the controls' mean slope with its CI and
    mean recovery, and `drift_tests`' p, p_holm, tested and significant, the axes in `tested` (None: all)
    being the family that is tested."""
    conflict = summarise(per_conv[per_conv["kind"] == "conflict"])
    shown = ["mean_slope", "ci_low", "ci_high", "mean_recovery"]
    control = summarise(per_conv[per_conv["kind"] == "control"]).reindex(conflict.index, columns=shown)
    axes = list(conflict.index)

    def slopes(kind: str) -> np.ndarray:
        rows = per_conv[per_conv["kind"] == kind]
        return rows.pivot(index="id", columns="axis", values="slope").reindex(columns=axes).to_numpy(float)

    family = [True] * len(axes) if tested is None else [a in set(tested) for a in axes]
    tests = drift_tests(slopes("conflict"), slopes("control"), family, alpha=alpha, factor=factor)
    tests = tests.set_axis(conflict.index).assign(tested=family)
    return conflict.join(control.add_prefix("control_")).join(tests[["p", "p_holm", "tested", "significant"]])


def trajectories(long: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, axis, turn): mean projection over conversations with its t 95 % CI, and n."""
    rows = []
    for (kind, axis, turn), g in long.groupby(["kind", "axis", "turn"], sort=False):
        mean, lo, hi = _mean_ci(g["value"])
        n = int(g["value"].notna().sum())
        rows.append(
            {"kind": kind, "axis": axis, "turn": turn, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n}
        )
    return pd.DataFrame(rows).sort_values(["kind", "axis", "turn"]).reset_index(drop=True)


# -- the analysis ----------------------------------------------------------------------------------------


@dataclass
class DriftResult(Result):
    """Notebook 09: the style's drift over conflict conversations, against neutral controls."""

    name: ClassVar[str] = "drift"
    notebook: ClassVar[str] = "09_drift"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "dead_zones")
    paper_digits: ClassVar[int] = 3

    profile: dict  # the DriftProfile's sizes, max_new_tokens (the token budget of every answer) included
    seed: int
    alpha: float  # family-wise error rate of the drift tests over the tested (validated) axes
    factor: float  # significance needs |mean slope| > factor * |control mean slope|
    n_conversations: dict  # by kind
    n_answers: int
    n_empty: int  # answers with nothing to measure: NaN projections, left out
    n_cut: int  # answers cut at the token budget
    clipped: float  # share of the projections at or beyond ±1 (clipped there by clipping normalisations)
    significant: list[str]  # validated axes with a significant drift (`drift_tests`)
    summary: pd.DataFrame  # per axis: `drift_table`; `tested`: the axis passed validation
    by_category: pd.DataFrame  # mean slope of the conflict conversations, category x axis
    trajectories: list[dict]  # `trajectories` rows: mean projection per (kind, axis, turn) with its CI
    n_imported: int  # runs of the original study compared with (`imported_summaries`)

    @property
    def tested(self) -> list[str]:
        """The axes that passed validation: the only ones tested and interpreted."""
        return list(self.summary.index[self.summary["tested"].astype(bool)])

    def conclusion(self) -> str:
        """The paper's sentence on the drift, from the same columns the notebook shows."""
        tested, n = self.tested, len(self.summary)
        if not tested:
            return f"None of the {n} axes passes validation, so no drift is interpreted."
        drifting = f"{len(self.significant)} drift significantly ({axis_list(self.significant)})"
        if not self.significant:
            drifting = "none drifts significantly"
        return f"Of the {len(tested)} of {n} axes that pass validation, {drifting}."

    def paper(self) -> dict:
        tested = self.tested
        return {
            **{k: self.profile[k] for k in ("n_scenarios", "n_controls", "n_conflict", "n_recovery")},
            "max_new_tokens": self.profile["max_new_tokens"],
            "alpha": f"{self.alpha:g}",
            "factor": f"{self.factor:g}",
            "n_answers": self.n_answers,
            "n_cut": self.n_cut,
            "cut_percent": round(100 * self.n_cut / self.n_answers),
            "n_axes": len(self.summary),
            "n_tested": len(tested),
            "n_not_interpreted": len(self.summary) - len(tested),
            "not_interpreted": axis_list(n for n in self.summary.index if n not in tested),
            "n_significant": len(self.significant),
            "significant": axis_list(self.significant),
            "conclusion": self.conclusion(),
            "n_imported": self.n_imported,
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        columns = {
            "mean_slope": "slope",
            "ci_low": "low",
            "ci_high": "high",
            "p_holm": "p (Holm)",
            "control_mean_slope": "control",
            "mean_recovery": "recovery",
        }
        table = self.summary[list(columns)].assign(
            drift=self.summary["significant"].map({True: "yes", False: "no"}).where(self.summary["tested"])
        )
        tested = set(self.tested)
        table = table.rename(index={n: mark(n, n in tested) for n in table.index})
        return {"drift_table": PaperTable(table, digits=3, columns=columns, index_name="axis")}


def run(
    ws: Workspace,
    dialogues: Dialogues,
    *,
    alpha: float = ALPHA,
    factor: float = FACTOR,
    imported: Mapping[str, pd.DataFrame] | None = None,
) -> DriftResult:
    """Project every answer of `dialogues` (`converse`) on the workspace's axes and summarise the drift per
    axis, testing only the axes that pass validation (held-out accuracy of notebook 01, not dead in
    notebook 08). `imported` are the original study's runs it is compared with (`imported_summaries`):
    the paper counts them."""
    axes, profile = ws.axes(), dialogues.profile
    validated = valid_axes(CalibrationResult.load(ws).evaluation, DeadZonesResult.load(ws).dead_axes())
    long = project_turns(
        axes, dialogues.turns, dialogues.conversations, profile.n_conflict, ws.model.model_id
    )
    answers = dialogues.answers
    per_conv = per_conversation(long, profile.n_conflict)
    table = drift_table(per_conv, tested=validated, alpha=alpha, factor=factor)
    conflict = per_conv[per_conv["kind"] == "conflict"]
    by_category = conflict.groupby(["category", "axis"], sort=False)["slope"].mean().unstack()
    return DriftResult(
        profile=profile.to_dict(),
        seed=dialogues.seed,
        alpha=alpha,
        factor=factor,
        n_conversations={kind: sum(c.kind == kind for c in dialogues.conversations) for kind in KINDS},
        n_answers=len(answers),
        n_empty=int((answers["n_measured"] == 0).sum()),
        n_cut=int((~answers["finished"]).sum()),
        clipped=float((long["value"].abs() >= 1).mean()),
        significant=table.index[table["significant"]].tolist(),
        summary=table,
        by_category=by_category.reindex(columns=axes.names),
        trajectories=trajectories(long).to_dict(orient="records"),
        n_imported=len(imported or {}),
    )


def slopes_across_models(
    ws: Workspace, result: DriftResult, imported: Mapping[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """Long table (model, axis, mean_slope, ci_low, ci_high): the saved drift of every other model under
    the workspace's root, this model's `result`, then the `imported` runs."""
    others = {slug: r.summary for slug, r in ws.every_model(DriftResult).items() if slug != ws.slug}
    summaries = {**others, ws.slug: result.summary, **(imported or {})}
    columns = ["mean_slope", "ci_low", "ci_high"]
    cross = pd.concat({model: s[columns] for model, s in summaries.items()}, names=["model", "axis"])
    return cross.reset_index().astype({"mean_slope": float})
