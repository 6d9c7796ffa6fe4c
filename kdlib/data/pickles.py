"""Reading the two pickled data sets (MNIST's ``mnist.pkl.gz``, CIFAR-10's python batches) with a restricted
unpickler: only the numpy globals that rebuild arrays and scalars are resolved, anything else (``os.system``,
``builtins.exec``, any class) raises DataFileError. Notebooks 02 and 03.

This is the second line of defence: the loaders verify each file against a pinned checksum *before* it
reaches ``restricted_unpickle`` (``kdlib.data.assets.verify``), so a planted or corrupt file is refused
before a single opcode runs; the allow-list keeps a file that somehow passed from running code.
"""
from __future__ import annotations

import codecs
import pickle
from typing import BinaryIO

import numpy as np

from kdlib.data.assets import DataFileError

try:  # numpy >= 2 keeps its internals in numpy._core; pickles written by numpy 1 name numpy.core
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core import multiarray as _multiarray, numeric as _numeric

ALLOWED_GLOBALS = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                   ("_codecs", "encode"): codecs.encode}  # protocol 0-2 pickles spell bytes with _codecs.encode
for _core in ("numpy.core", "numpy._core"):
    ALLOWED_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    ALLOWED_GLOBALS[(f"{_core}.multiarray", "scalar")] = _multiarray.scalar
    ALLOWED_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _numeric._frombuffer  # protocol 5


class NumpyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``ALLOWED_GLOBALS`` (numpy arrays, dtypes and scalars)."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only numpy arrays, dtypes "
                                         "and scalars are)") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def restricted_unpickle(handle: BinaryIO, what: str, fetch: str, encoding: str = "latin1"):
    """Unpickle ``handle`` with ``NumpyUnpickler``; any failure (a forbidden global, a truncated or garbled
    file) raises DataFileError naming ``what`` and the ``fetch`` command."""
    try:
        return NumpyUnpickler(handle, encoding=encoding).load()
    except Exception as err:  # noqa: BLE001 - UnpicklingError, EOFError, gzip errors, ...: all mean "bad file"
        raise DataFileError(f"{what} cannot be read ({type(err).__name__}: {err}). Delete it and fetch again "
                            f"with: {fetch}") from err
