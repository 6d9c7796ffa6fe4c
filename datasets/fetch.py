"""Fetch and verify the kit's offline data sets: ``python datasets/fetch.py [mnist ...]``.

The logic lives in ``kdlib.data.fetch``; ``datasets/README.md`` lists every file with its sha256.
"""
from kdlib.data.fetch import main

if __name__ == "__main__":
    main()
