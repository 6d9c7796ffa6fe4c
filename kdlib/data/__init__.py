"""Data loaders, one module per source; each verifies checksums before it reads and says how to fetch what is
missing. Modules: ``assets`` (errors, verification), ``wheels`` (files out of pinned registry wheels),
``types`` (``Split``), ``transforms`` (jitter, subsets), ``mnist`` (02), ``images`` (Fashion-MNIST,
CIFAR-10: 03), ``tweets`` (04), ``minilm`` (04's teacher), ``bbc`` (05), ``smollm2`` (05's teacher),
``hub`` (local folder, hub id or offline copy: where 04's and 05's teachers load from), ``fetch`` (everything,
for ``make data``).
"""
from kdlib.data.assets import DataFileError, verify
from kdlib.data.hub import choose_source, load_from_source
from kdlib.data.images import ImageData, fetch_fashion_mnist, load_cifar10, load_fashion_mnist, load_images
from kdlib.data.mnist import MNIST_CLASSES, fetch_mnist, load_mnist
from kdlib.data.transforms import jitter, subset
from kdlib.data.types import Split

__all__ = ["DataFileError", "verify", "MNIST_CLASSES", "Split", "fetch_mnist", "load_mnist", "jitter",
           "subset", "ImageData", "fetch_fashion_mnist", "load_cifar10", "load_fashion_mnist", "load_images",
           "choose_source", "load_from_source"]
