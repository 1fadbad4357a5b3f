"""Which extraction settings give the best axes? Layer choice x layer weighting x token aggregation, all
scored from one re-read of the calibration answers that keeps every layer and every token aggregation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from styleprobe.engine.extraction import Aggregation
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


def rank_configurations(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean held-out d' and accuracy over axes per configuration, ranked by d' (1 = best), best first."""
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
    scores = score_configurations(cal.result.records, states, layers, configs, handle.model_id)
    ranking = rank_configurations(scores)
    return ConfigAblationResult(
        n_configurations=len(configs),
        default=DEFAULT_NAME,
        default_rank=int(ranking.set_index("configuration").loc[DEFAULT_NAME, "rank"]),
        default_mean_rank_across_models=float(across_models(ws, ranking).loc[DEFAULT_NAME, "mean_rank"]),
        ranking=ranking,
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
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        top = self.ranking.head(8).set_index("configuration")[["rank", "dprime", "pairwise_accuracy"]]
        return {
            "ablation_table": PaperTable(top, columns={"dprime": "mean d'", "pairwise_accuracy": "mean acc."})
        }
