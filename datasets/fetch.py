"""Fetch and verify the kit's offline data sets: ``python datasets/fetch.py [mnist ...]`` (``cifar10``, online
only, when named).

The logic lives in ``kdlib.data.fetch``; ``datasets/README.md`` lists every file with its checksum. Every file is
verified against a pinned checksum before any loader opens it, and nothing fetched is installed or run.
"""
from kdlib.data.fetch import main

if __name__ == "__main__":
    main()
