"""Dead zones: axes a model cannot express, scored by a composite severity in [0, 1] and classified
(notebook 08's `DeadZonesResult`).

Each input maps to a "badness" in [0, 1] (0 healthy, 1 dead); severity = Σ w_i bad_i / Σ w_i over the
components whose input is finite. A NaN input skips its component and the remaining weights are renormalised;
with every input NaN the severity is NaN. Weights must be non-negative and are normalised to sum 1, so only
their ratios matter (weights not summing to 1 are accepted, not rejected).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.stats
from numpy.typing import ArrayLike

from styleprobe import stats
from styleprobe.analyses.instruction_benchmark import BenchmarkResult
from styleprobe.analyses.stability import StabilityResult
from styleprobe.protocol.calibration import CalibrationResult
from styleprobe.protocol.fingerprint import BaselineResult
from styleprobe.protocol.validity import SEPARABLE_ACCURACY, heldout_status, mark
from styleprobe.result import PaperTable, Result, axis_label, axis_list

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

ACCURACY_GOOD = 0.9
"""Held-out pairwise accuracy a with bad = 0 at or above it: bad = clip((0.9 - a) / (0.9 - 0.5), 0, 1)."""
ACCURACY_CHANCE = 0.5
"""Chance pairwise accuracy, where bad_accuracy = 1."""
DPRIME_GOOD = 2.0
"""d′ at or above which bad_dprime = 0; bad = clip(1 - d / 2, 0, 1) (d ≤ 0 -> 1)."""
STABILITY_GOOD = 0.9
"""Mean pairwise cosine c of the A/B/C axes with bad = 0 at or above it: bad = clip((0.9 - c) / 0.9, 0, 1)."""
SNR_GOOD = 2.0
"""Baseline signal-to-noise (`stability.baseline_snr`), bad = 0 at or above it: clip(1 - snr / 2, 0, 1)."""
DEAD_SEVERITY = 0.5
"""Severity at or above which an axis is flagged dead (sets k in :func:`ranking_stability`)."""
COMPONENTS = ("accuracy", "dprime", "stability_cosine", "snr")
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"accuracy": 0.3, "dprime": 0.3, "stability_cosine": 0.2, "snr": 0.2}
)
"""The original mood-axis study's weights."""


@dataclass(frozen=True)
class DeadZoneInputs:
    """Per model-axis inputs; any may be NaN (that component is then skipped)."""

    accuracy: float
    dprime: float
    stability_cosine: float
    snr: float


def _badness(values: np.ndarray) -> np.ndarray:
    """Columns in COMPONENTS order -> badness in [0, 1]; NaN stays NaN (±inf clip to 0 or 1)."""
    v = np.asarray(values, dtype=float)
    bad = np.column_stack(
        [
            (ACCURACY_GOOD - v[:, 0]) / (ACCURACY_GOOD - ACCURACY_CHANCE),
            1 - v[:, 1] / DPRIME_GOOD,
            (STABILITY_GOOD - v[:, 2]) / STABILITY_GOOD,
            1 - v[:, 3] / SNR_GOOD,
        ]
    )
    return np.clip(bad, 0.0, 1.0)


def _weights(weights: Mapping[str, float]) -> np.ndarray:
    """Weights in COMPONENTS order, normalised to sum 1; wrong keys or negative/zero-sum weights raise."""
    if set(weights) != set(COMPONENTS):
        raise ValueError(f"weights must have exactly the keys {list(COMPONENTS)}, got {sorted(weights)}")
    w = np.array([weights[c] for c in COMPONENTS], dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {dict(weights)}")
    return w / w.sum()


def _severity(bad: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ w bad / Σ w over finite components; ``bad`` is n x 4, ``w`` is 4 or draws x 4 -> n or draws x n."""
    ok = np.isfinite(bad)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ np.where(ok, bad, 0.0).T) / (w @ ok.T)


def components(x: DeadZoneInputs) -> dict[str, float]:
    """Badness of each input, keyed by COMPONENTS (NaN where the input is NaN)."""
    bad = _badness(np.array([[getattr(x, c) for c in COMPONENTS]]))[0]
    return dict(zip(COMPONENTS, map(float, bad), strict=True))


def severity(x: DeadZoneInputs, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> float:
    """Weighted mean badness over the finite components (0 healthy .. 1 dead)."""
    bad = _badness(np.array([[getattr(x, c) for c in COMPONENTS]]))
    return float(_severity(bad, _weights(weights))[0])


def severity_table(frame: pd.DataFrame, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> pd.DataFrame:
    """Copy of ``frame`` (a row per model-axis, columns COMPONENTS) plus bad_<component> and severity."""
    missing = [c for c in COMPONENTS if c not in frame]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    bad = _badness(frame[list(COMPONENTS)].to_numpy(dtype=float))
    out = frame.copy()
    for i, c in enumerate(COMPONENTS):
        out[f"bad_{c}"] = bad[:, i]
    out["severity"] = _severity(bad, _weights(weights))
    return out


def ranking_stability(frame: pd.DataFrame, n_draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """How much the dead-zone ranking depends on the weights.

    Weights are drawn from Dirichlet(1, 1, 1, 1) (uniform over the simplex). Per draw the pairs are ranked by
    severity (rank 1 = most dead, ties share the best rank). Per pair (with its model, axis and validation
    when ``frame`` has them): severity and rank at default weights,
    mean rank, 5 % and 95 % rank quantiles, and top_k_share = share of draws ranking it within the top k, with
    k = number flagged dead (severity >= DEAD_SEVERITY) at default weights, or 3 if none (at most n pairs).
    ``attrs`` holds k, n_draws and mean_spearman: mean Spearman rho of each draw's severities with the default
    ones (draws where either is constant are left out).
    """
    table = severity_table(frame)
    default = table["severity"].to_numpy()
    if len(default) < 2 or not np.all(np.isfinite(default)):
        raise ValueError("ranking needs >= 2 model-axis pairs, each with at least one finite input")
    bad = table[[f"bad_{c}" for c in COMPONENTS]].to_numpy()
    draws = np.random.default_rng(seed).dirichlet(np.ones(len(COMPONENTS)), size=n_draws)
    sev = _severity(bad, draws)
    ranks = scipy.stats.rankdata(-sev, method="min", axis=1)
    n_dead = int(np.sum(default >= DEAD_SEVERITY))
    k = min(n_dead if n_dead else 3, len(default))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant severities: scipy warns and returns NaN
        rhos = [stats.spearman(row, default)[0] for row in sev]
    out = table[[c for c in ("model", "axis", "validation") if c in table]].copy()
    out["severity"] = default
    out["default_rank"] = scipy.stats.rankdata(-default, method="min")
    out["mean_rank"] = ranks.mean(axis=0)
    out["rank_p05"], out["rank_p95"] = np.quantile(ranks, [0.05, 0.95], axis=0)
    out["top_k_share"] = (ranks <= k).mean(axis=0)
    out.attrs.update(k=k, n_draws=n_draws, mean_spearman=float(np.nanmean(rhos)))
    return out


@dataclass(frozen=True)
class ClassThresholds:
    """Thresholds of :func:`classify`, checked in this order: hard, soft, (unvalidated), asymmetric, else
    healthy."""

    hard_accuracy: float = SEPARABLE_ACCURACY  # below it an axis is not separable (notebook 01 too)
    """hard: pairwise accuracy below this (the instructions do not separate the poles)."""
    soft_stability: float = 0.7
    """soft: separable, but the mean A/B/C stability cosine is below this."""
    asym_min_shift: float = 0.25
    """asymmetric: the larger pole shift is at least this (normalised units) ..."""
    asym_ratio: float = 0.25
    """... and the other shift is below this fraction of it."""


DEFAULT_THRESHOLDS = ClassThresholds()
CLASSES = ("hard", "soft", "unvalidated", "asymmetric", "healthy")


def classify(
    accuracy: float,
    stability_cosine: float,
    pos_shift: float,
    neg_shift: float,
    *,
    validated: bool,
    thresholds: ClassThresholds = DEFAULT_THRESHOLDS,
) -> str:
    """One of CLASSES, checked in that order (see ClassThresholds and `class_rules`). "hard" and "soft"
    state a failure and are given to any axis; "asymmetric" and "healthy" describe how the model follows
    instructions, so an axis that is not `validated` (held-out validation failed, or classed dead) gets
    "unvalidated" instead.

    No significance test: the classes compare point estimates with thresholds, so at the profiles' sample
    sizes sampling noise alone can change an axis's class (notebook 12 measures how often); what keeps a
    noisy class from becoming a conclusion is the held-out gate. A NaN stability cosine or NaN shift skips
    that check; a NaN accuracy raises ValueError."""
    t = thresholds
    if not np.isfinite(accuracy):
        raise ValueError(f"cannot classify without a finite accuracy, got {accuracy}")
    if accuracy < t.hard_accuracy:
        return "hard"
    if stability_cosine < t.soft_stability:  # False for NaN
        return "soft"
    if not validated:
        return "unvalidated"
    big, small = max(pos_shift, neg_shift), min(pos_shift, neg_shift)
    if np.isfinite(big) and np.isfinite(small) and big >= t.asym_min_shift and small < t.asym_ratio * big:
        return "asymmetric"
    return "healthy"


def class_rules(thresholds: ClassThresholds = DEFAULT_THRESHOLDS) -> str:
    """The rule of :func:`classify` with its thresholds, as the notebook and the paper state it."""
    t = thresholds
    return (
        f"hard: held-out pairwise accuracy below {t.hard_accuracy:g}; soft: otherwise, a mean A/B/C "
        f"stability cosine below {t.soft_stability:g}; unvalidated: otherwise, an axis that failed held-out "
        "validation or is dead, which gets no further class; asymmetric: otherwise, one pole's benchmark "
        f"shift at least {t.asym_min_shift:g} and the other's below {t.asym_ratio:g} times it; "
        "healthy: the rest"
    )


def pole_shifts(
    pos_values: ArrayLike, neg_values: ArrayLike, baseline_values: ArrayLike
) -> tuple[float, float]:
    """(mean(pos) - mean(base), mean(base) - mean(neg)): movement towards each pole, NaN values ignored."""
    means = []
    for name, v in (
        ("pos_values", pos_values),
        ("neg_values", neg_values),
        ("baseline_values", baseline_values),
    ):
        a = np.asarray(v, dtype=float).ravel()
        if not np.any(np.isfinite(a)):
            raise ValueError(f"{name} has no finite value")
        means.append(float(np.nanmean(a)))
    pos, neg, base = means
    return pos - base, base - neg


def inputs(
    calibration: CalibrationResult,
    stability: StabilityResult | None = None,
    benchmark: BenchmarkResult | None = None,
) -> pd.DataFrame:
    """Per axis of one model: the severity inputs (COMPONENTS), the benchmark's pole shifts and the
    held-out validation.

    accuracy, dprime: held-out, set A (notebook 01); validation: `validity.heldout_status` of the same
    evaluation (needs its accuracy_ci_low column); stability_cosine: mean cosine of the A/B/C axes and snr:
    baseline signal-to-noise (notebook 07's stability); pos_shift / neg_shift: the `shift` of the
    system_positive / system_negative benchmark scenarios, the mean movement towards each pole against the
    same questions with no system prompt (notebook 07's benchmark; its pass rule also needs the contrast
    with the opposite instruction, the shifts stay the movement from the default). A result not given
    leaves its columns NaN."""
    evaluation = calibration.evaluation
    out = pd.DataFrame(index=pd.Index(evaluation.index, name="axis"))
    out["accuracy"] = evaluation["pairwise_accuracy"].astype(float)
    out["dprime"] = evaluation["dprime"].astype(float)
    out["validation"] = heldout_status(evaluation)
    cosines = stability.set_cosines if stability is not None else pd.DataFrame()
    retest = stability.retest if stability is not None else pd.DataFrame()
    out["stability_cosine"] = cosines["mean"].astype(float) if "mean" in cosines else np.nan
    out["snr"] = retest["snr"].astype(float) if "snr" in retest else np.nan
    scenarios = benchmark.scenarios if benchmark is not None else pd.DataFrame()
    for column, scenario in (("pos_shift", "system_positive"), ("neg_shift", "system_negative")):
        shifts = scenarios[scenarios["scenario"] == scenario] if len(scenarios) else scenarios
        out[column] = shifts.set_index("axis")["shift"].astype(float) if len(shifts) else np.nan
    return out


def validated(table: pd.DataFrame) -> pd.Series:
    """Per axis of a dead-zone table: passed held-out validation and is not dead (`validity`'s rule)."""
    return (table["validation"] == "valid") & ~table["dead"].astype(bool)


def classify_table(table: pd.DataFrame, thresholds: ClassThresholds = DEFAULT_THRESHOLDS) -> pd.Series:
    """:func:`classify` of each row of a table with the :func:`inputs` columns and `dead`."""
    ok = validated(table)
    return pd.Series(
        [
            classify(
                r.accuracy,
                r.stability_cosine,
                r.pos_shift,
                r.neg_shift,
                validated=bool(ok[r.Index]),
                thresholds=thresholds,
            )
            for r in table.itertuples()
        ],
        index=table.index,
        name="class",
    )


def every_model_inputs(ws: Workspace) -> pd.DataFrame:
    """:func:`inputs` of every model with a calibration result under the root, one row per model-axis
    (columns model, axis, ...)."""
    stability, benchmark = ws.every_model(StabilityResult), ws.every_model(BenchmarkResult)
    frames = [
        inputs(calibration, stability.get(slug), benchmark.get(slug)).reset_index().assign(model=slug)
        for slug, calibration in ws.every_model(CalibrationResult).items()
    ]
    return pd.concat(frames, ignore_index=True)


def run(
    ws: Workspace, *, n_draws: int = 1000, thresholds: ClassThresholds = DEFAULT_THRESHOLDS
) -> DeadZonesResult:
    """This model's severity table (inputs, validation, badness, severity, dead flag, class) and the ranking
    stability of every model-axis pair under the root over `n_draws` Dirichlet weight draws."""
    own = inputs(ws.load(CalibrationResult), ws.load(StabilityResult), ws.load(BenchmarkResult))
    table = severity_table(own)
    table["dead"] = table["severity"] >= DEAD_SEVERITY
    table["class"] = classify_table(table, thresholds)
    ranking = ranking_stability(every_model_inputs(ws), n_draws=n_draws)
    leans = list(ws.load(BaselineResult).leaning(dead=list(table.index[table["dead"]])).values())
    return DeadZonesResult(table, ranking, dict(ranking.attrs), asdict(thresholds), leans)


@dataclass
class DeadZonesResult(Result):
    """Notebook 08: which axes this model cannot express, how severe, of which kind, and how much the
    ranking of every model's axes depends on the severity weights."""

    name: ClassVar[str] = "dead_zones"
    notebook: ClassVar[str] = "08_dead_zones"
    needs: ClassVar[tuple[str, ...]] = ("calibration", "baseline", "stability", "benchmark")

    table: (
        pd.DataFrame
    )  # per axis: COMPONENTS, validation, pos_shift, neg_shift, bad_*, severity, dead, class
    ranking: pd.DataFrame  # per model-axis pair: see ranking_stability
    ranking_attrs: dict  # k, n_draws, mean_spearman
    thresholds: dict  # the ClassThresholds used
    leans: list[str] = field(default_factory=list)  # notebook 02's leans without the dead axes

    def dead_axes(self) -> list[str]:
        return [a for a, dead in self.table["dead"].items() if dead]

    def validated(self) -> list[str]:
        """The axes that passed held-out validation and are not dead (`validated`)."""
        ok = validated(self.table)
        return list(ok.index[ok])

    def summary(self) -> str:
        """The dead axes and the classes, each with the rule that selects it (the table's own columns)."""
        classes = self.table["class"].value_counts()
        counts = ", ".join(f"{int(classes.get(c, 0))} {c}" for c in CLASSES)
        dead = self.dead_axes()
        return (
            f"{len(dead)} of {len(self.table)} axes reach the dead severity of {DEAD_SEVERITY:g} "
            f"({axis_list(dead)}). By class: {counts} ({class_rules(ClassThresholds(**self.thresholds))})."
        )

    def paper(self) -> dict[str, Any]:
        classes = self.table["class"].value_counts()
        return {
            "n_dead": len(self.dead_axes()),
            "dead_axes": axis_list(self.dead_axes()),
            "dead_threshold": DEAD_SEVERITY,
            "n_validated": len(self.validated()),
            "leans": ", ".join(self.leans) or "none",
            "classes": {c: int(classes.get(c, 0)) for c in CLASSES},
            "class_rules": class_rules(ClassThresholds(**self.thresholds)),
            "summary": self.summary(),
            "most_severe_axis": axis_label(self.table["severity"].idxmax()),
            "max_severity": self.table["severity"].max(),
            "n_draws": self.ranking_attrs["n_draws"],
            "n_pairs": len(self.ranking),
            "n_models": self.ranking["model"].nunique(),
            "ranking_spearman": self.ranking_attrs["mean_spearman"],
            "ranking_k": self.ranking_attrs["k"],
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        shown = self.table[["accuracy", "dprime", "stability_cosine", "snr", "severity", "class"]]
        valid = set(self.validated())
        shown = shown.rename(index={n: mark(n, n in valid) for n in shown.index})
        return {
            "dead_zone_table": PaperTable(
                shown, columns={"dprime": "d'", "stability_cosine": "A/B/C cosine", "snr": "SNR"}
            )
        }
