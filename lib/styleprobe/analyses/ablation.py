"""Which extraction settings give the best axes? Layer choice x layer weighting x token aggregation, all
scored from one re-read of the calibration answers that keeps every layer and every token aggregation.

Two tables, kept apart: `rank_configurations` ranks every configuration by its held-out scores, which is
descriptive only (the best of 160 configurations on the same evaluation answers that score it overstates
what choosing it would give: selection bias); `nested_choice` is the honest answer to "which setting,
and how good is it": each axis's configuration chosen on calibration folds only (`selection.select`),
scored on the evaluation answers, which chose nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe.engine.extraction import Aggregation, Readings
from styleprobe.engine.pipeline import StageResult, reread
from styleprobe.protocol.calibration import calibrate, calibration_items, fit_from_result
from styleprobe.protocol.reading import DEFAULT_CONTEXT, ReadingContext, keeps_instruction
from styleprobe.result import PaperTable, Result

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

TOKEN_AGGREGATIONS: dict[str, float] = {"last": 0.0, "mean": 1.0, "decay_0.9": 0.9, "decay_0.8": 0.8}
"""Token aggregation -> decay (weight decay**k for the token k steps before the last answer token)."""
LAST_K = (2, 3, 4, 6, 8)
DEFAULT_NAME = "last4/increasing/decay_0.9"
"""The library's default (Aggregation()): last 4 blocks weighted 0.1..0.4, token decay 0.9."""


@dataclass(frozen=True)
class Configuration:
    name: str
    layers: tuple[int, ...]  # absolute block indices
    weighting: str  # "single", "equal" or "increasing" (weights 1..k, the default's 0.1..0.4 for k = 4)
    token: str  # a key of TOKEN_AGGREGATIONS

    @property
    def aggregation(self) -> Aggregation:
        w = (
            (1.0,) * len(self.layers)
            if self.weighting != "increasing"
            else tuple(range(1, len(self.layers) + 1))
        )
        return Aggregation(self.layers, tuple(float(x) for x in w), TOKEN_AGGREGATIONS[self.token])


def configurations(n_layers: int, last_k: Sequence[int] = LAST_K) -> list[Configuration]:
    """Every single block, and the last k blocks (k <= n_layers) with equal and increasing weights, each
    with every token aggregation: (n_layers + 2 * len(last_k)) * 4 configurations."""
    out = []
    for token in TOKEN_AGGREGATIONS:
        for layer in range(n_layers):
            out.append(Configuration(f"layer{layer}/single/{token}", (layer,), "single", token))
        for k in (k for k in last_k if k <= n_layers):
            layers = tuple(range(n_layers - k, n_layers))
            for weighting in ("equal", "increasing"):
                out.append(Configuration(f"last{k}/{weighting}/{token}", layers, weighting, token))
    return out


def score_configurations(
    records: pd.DataFrame,
    states: np.ndarray,
    read_layers: Sequence[int],
    configs: Sequence[Configuration],
    model_id: str,
) -> pd.DataFrame:
    """Fit and score the axes of every configuration on the calibration answers.

    `states` [n, n_tokens, n_read, hidden] holds the per-layer aggregates for TOKEN_AGGREGATIONS (in its
    order) at blocks `read_layers`. Rows: configuration, axis, held-out pairwise accuracy and d'."""
    if states.shape[1] != len(TOKEN_AGGREGATIONS) or states.shape[2] != len(read_layers):
        raise ValueError(f"states of shape {states.shape} do not match the token aggregations and layers")
    where = {layer: j for j, layer in enumerate(read_layers)}
    tokens = list(TOKEN_AGGREGATIONS)
    rows = []
    for cfg in configs:
        missing = [layer for layer in cfg.layers if layer not in where]
        if missing:
            raise ValueError(f"{cfg.name}: blocks {missing} were not read")
        per_layer = states[:, tokens.index(cfg.token)][:, [where[layer] for layer in cfg.layers]]
        result = StageResult(records, per_layer, cfg.aggregation)
        _, scores = fit_from_result(result, model_id, layers=cfg.layers)
        for axis, s in scores.iterrows():
            rows.append(
                {
                    "configuration": cfg.name,
                    "layers": "+".join(map(str, cfg.layers)),
                    "weighting": cfg.weighting,
                    "token": cfg.token,
                    "axis": axis,
                    "pairwise_accuracy": s["pairwise_accuracy"],
                    "dprime": s["dprime"],
                }
            )
    return pd.DataFrame(rows)


def as_grid(records: pd.DataFrame, states: np.ndarray, read_layers: Sequence[int]) -> StageResult:
    """The re-read `states` ([n, n_tokens, n_read, hidden], TOKEN_AGGREGATIONS in its order, blocks
    `read_layers`) as a grid of Readings, from which every configuration's states are read."""
    decays = np.array(list(TOKEN_AGGREGATIONS.values()))
    order = np.argsort(decays)
    return StageResult(records, states[:, order], Readings.grid(list(read_layers), decays[order].tolist()))


def nested_choice(
    records: pd.DataFrame,
    states: np.ndarray,
    read_layers: Sequence[int],
    configs: Sequence[Configuration],
    model_id: str,
    *,
    default: str = DEFAULT_NAME,
) -> pd.DataFrame:
    """Per axis, the configuration chosen among `configs` on the calibration questions only (inner
    cross-validation over question folds, `selection.select`, the study's estimator), its held-out pairwise
    accuracy with its 95 % interval on the evaluation answers (which chose nothing), the nested
    cross-validated estimate of the whole choice, and the `default` configuration's held-out accuracy
    beside it (NaN when `configs` lack it). `states` as `score_configurations` takes them."""
    result = as_grid(records, states, read_layers)
    named = {cfg.aggregation: cfg.name for cfg in configs}
    fixed = next((cfg.aggregation for cfg in configs if cfg.name == default), None)
    _, chosen = fit_from_result(result, model_id, estimator=["study"], reading=list(named))
    axes = list(chosen.index)
    standard = (
        fit_from_result(result, model_id, reading=dict.fromkeys(axes, fixed))[1]["pairwise_accuracy"]
        if fixed is not None
        else np.nan  # a model with fewer blocks than the default reads
    )
    by_label = {agg.label(): name for agg, name in named.items()}
    table = pd.DataFrame(
        {
            "configuration": chosen["reading"].map(by_label),
            "pairwise_accuracy": chosen["pairwise_accuracy"],
            "accuracy_ci_low": chosen["accuracy_ci_low"],
            "accuracy_ci_high": chosen["accuracy_ci_high"],
            "nested_accuracy": chosen["nested_accuracy"],
            "default_accuracy": standard,
        }
    )
    table.index.name = "axis"
    return table


def nested_numbers(nested: pd.DataFrame) -> dict:
    """The paper's means over axes of a `nested_choice` table."""
    return {
        "nested_accuracy": nested["pairwise_accuracy"].mean(),
        "nested_cv_accuracy": nested["nested_accuracy"].mean(),
        "nested_default_accuracy": nested["default_accuracy"].mean(),
    }


def rank_configurations(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean held-out d' and accuracy over axes per configuration, ranked by d' (1 = best), best first. In
    sample as a choice: the evaluation answers that score the configurations also rank them, so the best
    one's scores are biased upwards (descriptive only; `nested_choice` chooses honestly)."""
    table = scores.groupby(["configuration", "layers", "weighting", "token"], as_index=False).agg(
        dprime=("dprime", "mean"), pairwise_accuracy=("pairwise_accuracy", "mean")
    )
    table = table.sort_values(["dprime", "pairwise_accuracy"], ascending=False, ignore_index=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def mean_ranks(rankings: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Configurations x models: each model's rank (`rankings`: model -> `rank_configurations` table) and
    their mean, best mean rank first."""
    table = pd.concat({slug: r.set_index("configuration")["rank"] for slug, r in rankings.items()}, axis=1)
    table["mean_rank"] = table.mean(axis=1)
    return table.sort_values("mean_rank")


def across_models(ws: Workspace, ranking: pd.DataFrame) -> pd.DataFrame:
    """`mean_ranks` over every model with a saved ablation under the workspace's root, with `ranking` for
    this model (whether or not its result was saved before)."""
    saved = {slug: result.ranking for slug, result in ws.every_model(ConfigAblationResult).items()}
    return mean_ranks({**saved, ws.slug: ranking})


def run(
    ws: Workspace, *, context: ReadingContext = DEFAULT_CONTEXT, batch_size: int | None = None
) -> ConfigAblationResult:
    """Re-read the calibration answers of set A in `context` once, keeping every block and every token
    aggregation (stored in the run store; nothing is generated), then rank every configuration."""
    handle, profile = ws.model, ws.profile
    cal = calibrate(ws, instruction_set="A", context=context, batch_size=batch_size)
    layers = list(range(handle.n_layers))
    states = reread(
        handle,
        calibration_items(profile, ws.protocol),
        list(cal.result.records["response_ids"]),
        layers,
        tuple(TOKEN_AGGREGATIONS.values()),
        keep_system=keeps_instruction(context),
        stage_dir=ws.runs.all_layers("A", context, profile.name),
        desc="re-reading (all blocks)",
    )
    configs = configurations(handle.n_layers)
    records = cal.result.records
    scores = score_configurations(records, states, layers, configs, handle.model_id)
    ranking = rank_configurations(scores)
    return ConfigAblationResult(
        n_configurations=len(configs),
        default=DEFAULT_NAME,
        default_rank=int(ranking.set_index("configuration").loc[DEFAULT_NAME, "rank"]),
        default_mean_rank_across_models=float(across_models(ws, ranking).loc[DEFAULT_NAME, "mean_rank"]),
        ranking=ranking,
        nested=nested_choice(records, states, layers, configs, handle.model_id),
    )


@dataclass
class ConfigAblationResult(Result):
    """Notebook 07: every extraction configuration ranked by the held-out d' of its axes."""

    name: ClassVar[str] = "config_ablation"
    notebook: ClassVar[str] = "07_stability"

    n_configurations: int
    default: str  # the library default's configuration name
    default_rank: int
    default_mean_rank_across_models: float  # over every model with an ablation under the same root
    ranking: pd.DataFrame  # per configuration: rank, layers, weighting, token, dprime, pairwise_accuracy
    # per axis: the configuration chosen on calibration folds, its held-out accuracy and interval, the
    # nested estimate, the default's held-out accuracy (`nested_choice`); None in results saved before it
    nested: pd.DataFrame | None = None

    @property
    def default_row(self) -> pd.Series:
        return self.ranking.set_index("configuration").loc[self.default]

    def paper(self) -> dict:
        best = self.ranking.iloc[0]
        return {
            "n_configurations": self.n_configurations,
            "default_rank": self.default_rank,
            "default_dprime": self.default_row["dprime"],
            "best_configuration": best["configuration"],
            "best_dprime": best["dprime"],
            **(nested_numbers(self.nested) if self.nested is not None else {}),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        top = self.ranking.head(8).set_index("configuration")[["rank", "dprime", "pairwise_accuracy"]]
        tables = {
            "ablation_table": PaperTable(top, columns={"dprime": "mean d'", "pairwise_accuracy": "mean acc."})
        }
        if self.nested is not None:
            tables["ablation_nested"] = PaperTable(
                self.nested,
                index_name="axis",
                columns={
                    "pairwise_accuracy": "held-out acc.",
                    "accuracy_ci_low": "low",
                    "accuracy_ci_high": "high",
                    "nested_accuracy": "nested CV acc.",
                    "default_accuracy": "default acc.",
                },
            )
        return tables
