"""Text-level check of the axes: lexicon rates per 100 words in the answers, and their pole effect sizes.

A word is a run of letters/digits, optionally joined by apostrophes ("don't" is one word, "trade-off" two).
Rates are ``100 * count / n_words`` (0 when there are no words). Lexicon entries (data/lexicon.yaml) match
case-insensitively as whole words or phrases; overlapping entries of one category count once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from styleprobe import stats
from styleprobe.paths import data_dir
from styleprobe.protocol.spec import DataError, _read_yaml

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
# axis -> the metric expected to be higher at its positive (first-named) pole.
AXIS_METRICS: dict[str, str] = {
    "warm_cold": "warmth",
    "verbose_concise": "n_words",
    "confident_cautious": "certainty_minus_hedging",
    "proactive_reluctant": "proactive",
    "empathetic_analytical": "empathy_minus_analytical",
    "formal_casual": "formality",
    "patient_irritated": "patience_minus_irritation",
}

_WORD = re.compile(r"\w+(?:'\w+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
# n't, 're, 'm, 'll, 've, 'd always; 's only after pronouns/adverbs ("it's", not the possessive "Ann's").
_CONTRACTION = re.compile(
    r"\b(?:\w+n't|\w+'(?:re|m|ll|ve|d)|(?:it|that|what|there|here|he|she|who|where|let|how)'s)\b", re.I
)


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def load_lexicon(path: Path | None = None) -> dict[str, list[str]]:
    """Read and validate ``categories:`` of lexicon.yaml; errors are DataError (a ValueError), one line."""
    path = Path(path) if path is not None else data_dir() / "lexicon.yaml"
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


@lru_cache(maxsize=1)
def _default_lexicon() -> dict[str, list[str]]:
    return load_lexicon()


@lru_cache(maxsize=256)
def _pattern(entries: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation, longest entry first, that cannot start or end inside a word (as _WORD splits)."""
    parts = sorted({_normalise(e).strip().casefold() for e in entries}, key=len, reverse=True)
    body = "|".join(r"\s+".join(map(re.escape, p.split())) for p in parts)
    return re.compile(rf"(?<!\w)(?<!\w')(?:{body})(?!\w)(?!'\w)", re.IGNORECASE)


def count_matches(text: str, entries: Sequence[str]) -> int:
    """Non-overlapping whole-word/phrase hits of any entry in ``text`` (case-insensitive)."""
    return len(_pattern(tuple(entries)).findall(_normalise(text)))


def text_metrics(text: str, lexicon: Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
    """Length, punctuation and lexicon metrics of one text.

    n_words; n_sentences (segments ending in . ! ? before whitespace or the end, plus a final unpunctuated
    one, counted when they contain a word); mean_sentence_words = n_words / n_sentences; question_marks and
    exclamations = runs of "?" / "!" per 100 words; contractions per 100 words; each category's rate; the
    DERIVED differences of rates.
    """
    lexicon = _default_lexicon() if lexicon is None else lexicon
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


def metrics_frame(texts: Sequence[str], lexicon: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """:func:`text_metrics` of each text, one row per text (same order)."""
    return pd.DataFrame([text_metrics(t, lexicon) for t in texts], index=pd.RangeIndex(len(texts)))


def pole_effect_sizes(
    frame: pd.DataFrame, lexicon: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """Per axis, Cohen's d (pole +1 minus pole -1) of its AXIS_METRICS metric, and of n_tokens when given.

    ``frame`` has columns axis, pole (+1/-1), text and optionally n_tokens. Each pole needs >= 2 texts.
    """
    missing = {"axis", "pole", "text"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}")
    unknown = sorted(set(frame["axis"]) - set(AXIS_METRICS))
    if unknown:
        raise ValueError(f"no text metric for axes {unknown}; known: {list(AXIS_METRICS)}")
    metrics = metrics_frame(list(frame["text"]), lexicon).set_index(frame.index)
    rows = []
    for axis, sub in frame.groupby("axis", sort=False):
        pos, neg = sub["pole"] == 1, sub["pole"] == -1
        if pos.sum() < 2 or neg.sum() < 2:
            raise ValueError(f"axis {axis}: need >= 2 texts per pole, got {pos.sum()} / {neg.sum()}")
        metric = AXIS_METRICS[axis]
        values = metrics.loc[sub.index, metric]
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
