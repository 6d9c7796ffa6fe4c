"""The teacher-data pipeline's filters and its funnel (notebook 08).

A teacher's generations pass stages that each keep some of them: an execution check (a tool trace whose calls
all run and reach its final answer), majority agreement (self-consistency over the teacher's samples), exact and
near-duplicate removal, and domain balance. ``funnel`` runs the stages in order and records, per stage, how many
items it kept and removed, and **how much of what it removed was actually wrong** (from a ground truth the
pipeline itself never sees): a filter that mostly removes right answers costs data without cleaning it.

* ``exact_duplicates``: keeps the first of texts equal after lower-casing and collapsing white space;
* ``near_duplicates``: MinHash signatures of word n-gram shingles and locality-sensitive hashing
  (``datasketch.MinHashLSH``): a text whose estimated Jaccard similarity to a text kept before it is at least
  ``threshold`` is removed; ``jaccard_duplicates`` is the same rule computed exactly over every pair;
* ``balance_domains``: at most ``cap`` items per domain (the first ones), so one source cannot dominate.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from kdlib.core.validate import check_number, whole

__all__ = ["exact_duplicates", "near_duplicates", "jaccard_duplicates", "balance_domains", "funnel"]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def exact_duplicates(texts: Sequence[str]) -> list[bool]:
    """True for each text to keep: the first of every group of texts equal after normalising case and spaces."""
    seen, keep = set(), []
    for text in texts:
        key = _norm(text)
        keep.append(key not in seen)
        seen.add(key)
    return keep


def near_duplicates(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, ngram: int = 3,
                    seed: int = 0) -> list[bool]:
    """True for each text to keep: a text is dropped when MinHash LSH finds an earlier *kept* text whose
    estimated Jaccard similarity of word ``ngram``-shingles is at least ``threshold`` (``num_perm`` hash
    permutations; estimates are within about ``1 / sqrt(num_perm)``). Texts shorter than ``ngram`` words use
    their words as shingles."""
    from datasketch import MinHash, MinHashLSH

    threshold = check_number("threshold", threshold, low=0, high=1, low_open=True,
                             hint="the Jaccard similarity above which two texts count as duplicates, e.g. 0.8")
    num_perm, ngram = whole("num_perm", num_perm, 2), whole("ngram", ngram, 1)
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as err:  # datasketch needs at least 2 bands of hashes for the threshold
        raise ValueError(f"threshold={threshold} with num_perm={num_perm}: {err}; use a lower threshold or more "
                         "permutations (e.g. num_perm=256)") from err
    keep = []
    for i, text in enumerate(texts):
        signature = MinHash(num_perm=num_perm, seed=seed)
        for shingle in _shingles(text, ngram):
            signature.update(shingle.encode())
        duplicate = bool(lsh.query(signature))
        keep.append(not duplicate)
        if not duplicate:
            lsh.insert(str(i), signature)
    return keep


def _shingles(text: str, ngram: int) -> set[str]:
    words = _norm(text).split()
    return {" ".join(words[j:j + ngram]) for j in range(max(1, len(words) - ngram + 1))}


def jaccard_duplicates(texts: Sequence[str], threshold: float = 0.8, ngram: int = 3) -> list[bool]:
    """``near_duplicates`` computed exactly: a text is dropped when the Jaccard similarity of its word
    ``ngram``-shingles with a text kept before it, ``|A & B| / |A | B|``, is at least ``threshold``. Every pair is
    compared (quadratic: the reference of notebook 08's exercise, and the truth MinHash LSH estimates)."""
    kept: list[set[str]] = []
    keep = []
    for text in texts:
        mine = _shingles(text, ngram)
        duplicate = any(len(mine & other) / len(mine | other) >= threshold for other in kept)
        keep.append(not duplicate)
        if not duplicate:
            kept.append(mine)
    return keep


def balance_domains(domains: Sequence[str], cap: int) -> list[bool]:
    """True for the first ``cap`` items of each domain."""
    cap = whole("cap", cap, 1)
    counts: dict[str, int] = {}
    keep = []
    for domain in domains:
        counts[domain] = counts.get(domain, 0) + 1
        keep.append(counts[domain] <= cap)
    return keep


def funnel(n: int, stages: Sequence[tuple[str, Callable[[list[int]], Sequence[bool]]]], wrong: Sequence[bool]
           ) -> tuple[list[int], list[dict]]:
    """Run ``stages`` (name, keep) in order over items 0..n-1: ``keep(indices)`` gets the indices still in and
    returns one bool per index (True: keep). ``wrong[i]`` says whether item i is actually wrong (ground truth the
    stages must not use). Returns the surviving indices and one row per stage: ``{"stage", "kept", "removed",
    "removed_wrong_fraction"}`` (NaN when the stage removed nothing)."""
    n = whole("n", n, 0)
    if len(wrong) != n:
        raise ValueError(f"wrong must say for each of the {n} items whether it is wrong, got {len(wrong)} entries")
    alive, rows = list(range(n)), []
    for name, keep in stages:
        mask = list(keep(alive))
        if len(mask) != len(alive) or not all(isinstance(m, bool) for m in mask):
            raise ValueError(f"stage {name!r} must return one bool per item still in ({len(alive)}), got "
                             f"{len(mask)} values of types {sorted({type(m).__name__ for m in mask})}")
        removed = [i for i, k in zip(alive, mask) if not k]
        alive = [i for i, k in zip(alive, mask) if k]
        share = sum(bool(wrong[i]) for i in removed) / len(removed) if removed else float("nan")
        rows.append({"stage": name, "kept": len(alive), "removed": len(removed), "removed_wrong_fraction": share})
    return alive, rows
