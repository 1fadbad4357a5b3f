"""Text-level check of the axes: lexicon rates per 100 words in the answers, their pole effect sizes, and
whether the probe separates best where the text changes most (notebook 08's `TextValidationResult`).

A word is a run of letters/digits, optionally joined by apostrophes ("don't" is one word, "trade-off" two).
Rates are ``100 * count / n_words`` (0 when there are no words). Lexicon entries (the protocol's
lexicon.yaml) match case-insensitively as whole words or phrases; overlapping entries of one category count
once. Each axis's metric, expected higher at its positive pole, is the `text_metric` of its entry in the
protocol's axes.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.protocol.calibration import CalibrationResult, calibrate
from styleprobe.protocol.spec import DataError, Protocol, _read_yaml
from styleprobe.protocol.validity import mark, valid_axes
from styleprobe.result import PaperTable, Result

if TYPE_CHECKING:
    from styleprobe.workspace import Workspace

BASE_METRICS = (
    "n_words",
    "n_sentences",
    "mean_sentence_words",
    "question_marks",
    "exclamations",
    "contractions",
)
# derived metric -> (added rates, subtracted rates); computed when every ingredient is present.
DERIVED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "certainty_minus_hedging": (("certainty",), ("hedging",)),
    "formality": (("formal",), ("casual", "contractions")),
    "empathy_minus_analytical": (("empathy",), ("analytical",)),
    "patience_minus_irritation": (("patience",), ("irritation",)),
}
_WORD = re.compile(r"\w+(?:'\w+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
# n't, 're, 'm, 'll, 've, 'd always; 's only after pronouns/adverbs ("it's", not the possessive "Ann's").
_CONTRACTION = re.compile(
    r"\b(?:\w+n't|\w+'(?:re|m|ll|ve|d)|(?:it|that|what|there|here|he|she|who|where|let|how)'s)\b", re.I
)


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def load_lexicon(path: Path) -> dict[str, list[str]]:
    """Read and validate ``categories:`` of a lexicon.yaml; errors are DataError (a ValueError), one line."""
    raw: Any = _read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), dict) or not raw["categories"]:
        raise DataError(f"{path}: expected a non-empty mapping 'categories: {{name: [words, ...]}}'")
    reserved = set(BASE_METRICS) | set(DERIVED)
    lexicon: dict[str, list[str]] = {}
    for name, entries in raw["categories"].items():
        if not isinstance(name, str) or not name.isidentifier() or name in reserved:
            raise DataError(f"{path}: invalid or reserved category name {name!r}")
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{path}: categories.{name} must be a non-empty list of strings")
        for i, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry.strip():
                raise DataError(f"{path}: categories.{name}[{i}] must be a non-empty string")
        folded = [_normalise(e).strip().casefold() for e in entries]
        dupes = sorted({e for e in folded if folded.count(e) > 1})
        if dupes:
            raise DataError(f"{path}: categories.{name} repeats {dupes}")
        lexicon[name] = [e.strip() for e in entries]
    return lexicon


def protocol_lexicon(protocol: Protocol) -> dict[str, list[str]]:
    """The protocol's lexicon (its lexicon.yaml)."""
    return load_lexicon(protocol.file("lexicon.yaml"))


def axis_metrics(protocol: Protocol) -> dict[str, str]:
    """{axis: its `text_metric`} for each axis of the protocol that names one, in protocol order."""
    return {name: spec.text_metric for name, spec in protocol.axes.items() if spec.text_metric}


@lru_cache(maxsize=256)
def _pattern(entries: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation, longest entry first, that cannot start or end inside a word (as _WORD splits)."""
    parts = sorted({_normalise(e).strip().casefold() for e in entries}, key=len, reverse=True)
    body = "|".join(r"\s+".join(map(re.escape, p.split())) for p in parts)
    return re.compile(rf"(?<!\w)(?<!\w')(?:{body})(?!\w)(?!'\w)", re.IGNORECASE)


def count_matches(text: str, entries: Sequence[str]) -> int:
    """Non-overlapping whole-word/phrase hits of any entry in ``text`` (case-insensitive)."""
    return len(_pattern(tuple(entries)).findall(_normalise(text)))


def text_metrics(text: str, lexicon: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Length, punctuation and lexicon metrics of one text.

    n_words; n_sentences (segments ending in . ! ? before whitespace or the end, plus a final unpunctuated
    one, counted when they contain a word); mean_sentence_words = n_words / n_sentences; question_marks and
    exclamations = runs of "?" / "!" per 100 words; contractions per 100 words; each category's rate; the
    DERIVED differences of rates.
    """
    text = _normalise(text)
    n_words = len(_WORD.findall(text))
    n_sentences = sum(1 for seg in _SENTENCE_END.split(text) if _WORD.search(seg))

    def rate(count: int) -> float:
        return 100.0 * count / n_words if n_words else 0.0

    out: dict[str, float] = {
        "n_words": float(n_words),
        "n_sentences": float(n_sentences),
        "mean_sentence_words": n_words / n_sentences if n_sentences else 0.0,
        "question_marks": rate(len(re.findall(r"\?+", text))),
        "exclamations": rate(len(re.findall(r"!+", text))),
        "contractions": rate(len(_CONTRACTION.findall(text))),
    }
    out.update({name: rate(count_matches(text, entries)) for name, entries in lexicon.items()})
    for name, (plus, minus) in DERIVED.items():
        if all(m in out for m in plus + minus):
            out[name] = sum(out[m] for m in plus) - sum(out[m] for m in minus)
    return out


def metrics_frame(texts: Sequence[str], lexicon: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """:func:`text_metrics` of each text, one row per text (same order)."""
    return pd.DataFrame([text_metrics(t, lexicon) for t in texts], index=pd.RangeIndex(len(texts)))


def pole_effect_sizes(
    frame: pd.DataFrame, metrics: Mapping[str, str], lexicon: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Per axis, Cohen's d (pole +1 minus pole -1) of its text metric (``metrics``: axis -> metric, see
    :func:`axis_metrics`), and of n_tokens when given.

    ``frame`` has columns axis, pole (+1/-1), text and optionally n_tokens. Each pole needs >= 2 texts.
    """
    missing = {"axis", "pole", "text"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}")
    unknown = sorted(set(frame["axis"]) - set(metrics))
    if unknown:
        raise ValueError(f"no text metric for axes {unknown}; known: {list(metrics)}")
    values_of = metrics_frame(list(frame["text"]), lexicon).set_index(frame.index)
    rows = []
    for axis, sub in frame.groupby("axis", sort=False):
        pos, neg = sub["pole"] == 1, sub["pole"] == -1
        if pos.sum() < 2 or neg.sum() < 2:
            raise ValueError(f"axis {axis}: need >= 2 texts per pole, got {pos.sum()} / {neg.sum()}")
        metric = metrics[axis]
        if metric not in values_of:
            raise ValueError(f"axis {axis}: unknown text metric {metric!r}; known: {list(values_of)}")
        values = values_of.loc[sub.index, metric]
        row = {"axis": axis, "metric": metric, "n_pos": int(pos.sum()), "n_neg": int(neg.sum())}
        row |= {"mean_pos": values[pos].mean(), "mean_neg": values[neg].mean()}
        row["d"] = stats.cohens_d(values[pos], values[neg])
        if "n_tokens" in sub:
            row["d_n_tokens"] = stats.cohens_d(sub.loc[pos, "n_tokens"], sub.loc[neg, "n_tokens"])
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_vs_text_effect(
    accuracy: Mapping[str, float], effect: Mapping[str, float]
) -> tuple[float, float]:
    """Spearman rho and p between probe accuracy and text effect size over the shared "model/axis" keys.

    Keys missing from either mapping or with a non-finite value in either are left out; needs >= 3 pairs.
    """
    keys = [k for k in accuracy if k in effect and np.isfinite(accuracy[k]) and np.isfinite(effect[k])]
    if len(keys) < 3:
        raise ValueError(f"need >= 3 model/axis keys with finite values in both mappings, got {len(keys)}")
    return stats.spearman([accuracy[k] for k in keys], [effect[k] for k in keys])


# --- notebook 08: the text-level validation of one model -------------------------------------------------


def pole_effects(ws: Workspace) -> pd.DataFrame:
    """Per axis with a text metric: :func:`pole_effect_sizes` of the calibration answers of set A (both
    splits, read in the context of the model's axes) and the axis's held-out pairwise accuracy."""
    calibration = calibrate(ws, context=ws.axes().meta["context"])
    rec = calibration.result.records
    metrics = axis_metrics(ws.protocol)
    rec = rec[rec["axis"].isin(list(metrics))]
    answers = pd.DataFrame(
        {"axis": rec["axis"], "pole": rec["pole"], "text": rec["response"], "n_tokens": rec["n_tokens"]}
    )
    effects = pole_effect_sizes(answers, metrics, protocol_lexicon(ws.protocol)).set_index("axis")
    effects["accuracy"] = calibration.evaluation["pairwise_accuracy"]
    return effects


def pooled_effects(ws: Workspace, effects: pd.DataFrame) -> pd.DataFrame:
    """(model, axis, accuracy, d) of every model-axis pair with both finite: this model's ``effects`` and
    the saved text validation of every other model under the root."""
    tables = {ws.slug: effects}
    tables |= {slug: r.effects for slug, r in ws.every_model(TextValidationResult).items() if slug != ws.slug}
    parts = [
        t[["accuracy", "d"]].rename_axis("axis").reset_index().assign(model=s) for s, t in tables.items()
    ]
    return pd.concat(parts, ignore_index=True).astype({"accuracy": float, "d": float}).dropna()


def run(ws: Workspace, dead: Iterable[str] = ()) -> TextValidationResult:
    """This model's text effects, and Spearman's rho between held-out accuracy and text d over every
    model-axis pair with results (NaN with fewer than 3 pairs). The table marks the axes that fail
    held-out validation (notebook 01) or are in `dead` (notebook 08's dead zones)."""
    effects = pole_effects(ws)
    validated = valid_axes(CalibrationResult.load(ws).evaluation, dead)
    pooled = pooled_effects(ws, effects)
    keyed = pooled.set_index(pooled["model"] + "/" + pooled["axis"])
    rho, p = (
        accuracy_vs_text_effect(keyed["accuracy"].to_dict(), keyed["d"].to_dict())
        if len(pooled) >= 3
        else (np.nan, np.nan)
    )
    return TextValidationResult(
        effects=effects,
        validated=[n for n in effects.index if n in validated],
        spearman_rho=rho,
        spearman_p=p,
        n_pairs=len(pooled),
    )


@dataclass
class TextValidationResult(Result):
    """Notebook 08: does the text itself change with the instruction, and does the probe separate best
    where it changes most?"""

    name: ClassVar[str] = "text_validation"
    notebook: ClassVar[str] = "08_dead_zones"
    needs: ClassVar[tuple[str, ...]] = ("calibration",)

    effects: pd.DataFrame  # per axis: metric, n_pos, n_neg, mean_pos, mean_neg, d, d_n_tokens, accuracy
    validated: list[str]  # the axes that passed validation (the others are marked in the table)
    spearman_rho: float  # held-out accuracy vs text d, over every model-axis pair
    spearman_p: float
    n_pairs: int

    def paper(self) -> dict[str, Any]:
        return {
            "text_rho": self.spearman_rho,
            "text_p": f"{self.spearman_p:.2g}",
            "text_n_pairs": self.n_pairs,
            "verbose_text_d": self.effects["d"].get("verbose_concise", np.nan),
        }

    def paper_tables(self) -> dict[str, PaperTable]:
        frame = self.effects[["metric", "d", "d_n_tokens", "accuracy"]]
        frame = frame.rename(index={n: mark(n, n in self.validated) for n in frame.index})
        return {
            "text_effects_table": PaperTable(
                frame, columns={"d": "text d", "d_n_tokens": "length d", "accuracy": "probe acc."}
            )
        }
