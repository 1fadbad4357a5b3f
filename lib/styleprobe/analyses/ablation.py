"""Which extraction settings give the best axes? Layer choice x layer weighting x token aggregation, all
scored from one re-read of the calibration answers that keeps every layer and every token aggregation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.pipeline import StageResult
from styleprobe.protocol.calibration import fit_from_result

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
