"""Data loaders, one module per source; each verifies checksums and says how to fetch what is missing."""
from .assets import DataFileError, sha256sum, verify
from .images import ImageData, fetch_fashion_mnist, load_cifar10, load_fashion_mnist, load_images
from .mnist import MNIST_CLASSES, Split, fetch_mnist, load_mnist
from .transforms import batches, jitter, subset

__all__ = ["DataFileError", "sha256sum", "verify", "MNIST_CLASSES", "Split", "fetch_mnist", "load_mnist",
           "batches", "jitter", "subset", "ImageData", "fetch_fashion_mnist", "load_cifar10",
           "load_fashion_mnist", "load_images"]
