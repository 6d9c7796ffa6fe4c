"""Data loaders, one module per source; each verifies every file against a pinned checksum before it reads it
(or reads a format that cannot run code), never unpickles an unverified file, and says how to fetch what is
missing. Modules: ``assets`` (errors, verification), ``pickles`` (the restricted unpickler), ``idx`` (IDX
files), ``wheels`` (files out of pinned registry wheels), ``types`` (``Split``), ``transforms`` (jitter,
subsets), ``mnist`` (02), ``cifar`` (CIFAR-10: 03), ``images`` (Fashion-MNIST, and the choice between the two:
03), ``tweets`` (04), ``minilm`` (04's teacher), ``bbc`` (05), ``smollm2`` (05's teacher), ``hub`` (local
folder, hub id or offline copy: where 04's and 05's teachers load from), ``fetch`` (everything, for
``make data``).
"""
from kdlib.data.assets import DataFileError, verify
from kdlib.data.bbc import load_bbc_news
from kdlib.data.hub import choose_source, load_from_source
from kdlib.data.images import ImageData, fetch_fashion_mnist, load_cifar10, load_fashion_mnist, load_images
from kdlib.data.minilm import require_minilm
from kdlib.data.mnist import MNIST_CLASSES, fetch_mnist, load_mnist
from kdlib.data.smollm2 import require_smollm2
from kdlib.data.transforms import jitter, subset
from kdlib.data.tweets import load_tweets
from kdlib.data.types import Split

__all__ = ["DataFileError", "verify", "MNIST_CLASSES", "Split", "fetch_mnist", "load_mnist", "jitter",
           "subset", "ImageData", "fetch_fashion_mnist", "load_cifar10", "load_fashion_mnist", "load_images",
           "choose_source", "load_from_source", "load_tweets", "load_bbc_news", "require_minilm", "require_smollm2"]
