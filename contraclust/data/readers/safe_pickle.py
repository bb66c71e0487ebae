"""Reading pickled data files without ever running code from them.

The CIFAR "python version" batches are pickles. A pickle is a small program: besides
building dicts and lists it may name any importable function and call it, so loading
one with :mod:`pickle` runs whatever the file asks for. :func:`load_data_pickle`
instead answers every "import this name" request from a short allow-list, and for the
few NumPy names a batch needs it hands back stand-ins written here that only ever build
a plain numeric array from bytes. Any other name stops the read with a
:class:`~contraclust.errors.DataError` before anything is called.

What can come out: dicts, lists, tuples, ``str``, ``bytes``, ``int``, ``float``,
``bool``, ``None`` and NumPy arrays of a numeric dtype.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from contraclust.errors import DataError

__all__ = ["load_data_pickle"]

# Numeric dtypes an array may have; objects, strings and structured dtypes are refused.
_ALLOWED_DTYPES = frozenset(
    {"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"}
)
_MAX_DIMS = 8


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list."""


class _NDArrayType:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""

    __slots__ = ()


_NDARRAY = _NDArrayType()


class _DTypeSpec:
    """A numeric dtype, rebuilt from ``numpy.dtype(code, align, copy)`` and its state."""

    def __init__(self, code: object) -> None:
        if isinstance(code, bytes):
            code = code.decode("latin-1")
        if not isinstance(code, str) or code not in _ALLOWED_DTYPES:
            raise _Refused(f"an array of dtype {code!r}, which is not a plain number type")
        self.dtype = np.dtype(code)

    def __setstate__(self, state: object) -> None:
        # (version, byte order, subarray, names, fields, elsize, alignment, flags[, meta])
        if not isinstance(state, tuple) or len(state) < 5:
            raise _Refused("a malformed dtype description")
        order = state[1]
        if isinstance(order, bytes):
            order = order.decode("latin-1")
        if order not in ("<", ">", "|", "="):
            raise _Refused(f"a dtype byte order {order!r}")
        if any(part is not None for part in state[2:5]):
            raise _Refused("a structured or sub-array dtype")
        if order in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


def _make_dtype(code: object, align: object = False, copy: object = True) -> _DTypeSpec:
    return _DTypeSpec(code)


def _as_buffer(raw: object) -> bytes | bytearray | memoryview:
    if isinstance(raw, str):
        # Python 2 pickles store array bytes as a str; read with latin-1 they map 1:1
        return raw.encode("latin-1")
    if isinstance(raw, (bytes, bytearray)):
        return raw
    if isinstance(raw, pickle.PickleBuffer):
        return raw.raw()
    raise _Refused(f"array data of type {type(raw).__name__}")


def _checked_shape(shape: object) -> tuple[int, ...]:
    if (
        not isinstance(shape, tuple)
        or len(shape) > _MAX_DIMS
        or not all(type(size) is int and size >= 0 for size in shape)
    ):
        raise _Refused(f"an array shape {shape!r}")
    return shape


def _array_from(raw: object, dtype: object, shape: object, fortran: bool) -> np.ndarray:
    if not isinstance(dtype, _DTypeSpec):
        raise _Refused("an array without a numeric dtype")
    buffer = _as_buffer(raw)
    dims = _checked_shape(shape)
    expected = math.prod(dims) * dtype.dtype.itemsize
    if len(buffer) != expected:
        raise _Refused(
            f"an array of shape {dims} and dtype {dtype.dtype} with {len(buffer)} bytes of "
            f"data instead of {expected}"
        )
    flat = np.frombuffer(buffer, dtype=dtype.dtype)
    return flat.reshape(dims, order="F" if fortran else "C")


class _PendingArray:
    """What ``_reconstruct(ndarray, ...)`` returns; the BUILD step fills in the data."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("a malformed array state")
        if len(state) == 5:
            if state[0] != 1:
                raise _Refused(f"array state version {state[0]!r}")
            state = state[1:]
        shape, dtype, fortran, raw = state
        if not isinstance(fortran, (bool, int)):
            raise _Refused("a malformed array state")
        self.array = _array_from(raw, dtype, shape, bool(fortran))


def _reconstruct(kind: object, shape: object, typecode: object) -> _PendingArray:
    if kind is not _NDARRAY:
        raise _Refused("an array of a type other than numpy.ndarray")
    return _PendingArray()


def _frombuffer(raw: object, dtype: object, shape: object, order: object) -> np.ndarray:
    if order not in ("C", "F"):
        raise _Refused(f"an array order {order!r}")
    return _array_from(raw, dtype, shape, order == "F")


def _latin1_encode(text: object, encoding: object = "utf-8") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("a call to _codecs.encode other than a latin-1 bytes literal")
    return text.encode("latin-1")


class _Allowed:
    """A stand-in callable the pickle may call but not alter (no attributes, no state)."""

    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        object.__setattr__(self, "_call", call)

    def __setattr__(self, name: str, value: object) -> None:
        raise _Refused(f"changing the attribute {name!r} of a built-in")

    def __call__(self, *args: object) -> object:
        return self._call(*args)


_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _Allowed(_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Allowed(_reconstruct),
    ("numpy.core.numeric", "_frombuffer"): _Allowed(_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _Allowed(_frombuffer),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Allowed(_make_dtype),
    ("_codecs", "encode"): _Allowed(_latin1_encode),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"'{module}.{name}'")
        return found

    def persistent_load(self, pid: object) -> Any:
        raise _Refused("a persistent object reference")


_PLAIN = (str, bytes, int, float, bool, type(None), np.ndarray)


def _finish(value: object) -> object:
    """Replace the array stand-ins by their arrays and refuse any other object."""
    open_containers: set[int] = set()

    def convert(item: object) -> object:
        if isinstance(item, _PendingArray):
            if item.array is None:
                raise _Refused("an array whose data never came")
            return item.array
        if type(item) in _PLAIN:
            return item
        if type(item) in (dict, list, tuple):
            if id(item) in open_containers:
                raise _Refused("a container that contains itself")
            open_containers.add(id(item))
            if isinstance(item, dict):
                result: object = {convert(key): convert(entry) for key, entry in item.items()}
            else:
                converted = [convert(entry) for entry in item]  # type: ignore[attr-defined]
                result = converted if isinstance(item, list) else tuple(converted)
            open_containers.discard(id(item))
            return result
        raise _Refused(f"an object of type {type(item).__name__}")

    return convert(value)


def load_data_pickle(path: str | Path, what: str = "a data file") -> Any:
    """Read a pickle holding only plain data and numeric NumPy arrays.

    Python 2 pickles (such as the official CIFAR batches) are read with ``latin-1``,
    so their byte strings come back as ``str``; arrays come back read-only.

    Args:
        path: the pickle file.
        what: how to name the file's kind in messages (``"a CIFAR batch"``).

    Raises:
        DataError: if the file is missing, truncated or corrupt, or asks for anything
            besides plain data and numeric arrays (nothing it names is ever called).

    Example:
        >>> batch = load_data_pickle("cifar-10-batches-py/test_batch")  # doctest: +SKIP
        >>> batch["data"].shape
        (10000, 3072)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        with path.open("rb") as stream:
            unpickler = _RestrictedUnpickler(stream, encoding="latin-1")
            value = unpickler.load()
            trailing = stream.read(1)
        result = _finish(value)
    except _Refused as exc:
        raise DataError(
            f"{path} asks for {exc}, which {what} never holds; refusing to read it (nothing "
            "in it was run): replace it with the official file"
        ) from None
    except MemoryError:
        raise DataError(f"{path} is too large to read into memory") from None
    except Exception as exc:  # a damaged pickle raises many types; all mean unreadable
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise DataError(
            f"{path} is not a readable pickle ({reason}); it is truncated or corrupt, "
            "download it again"
        ) from None
    if trailing:
        raise DataError(
            f"{path} has data after the end of its pickle; it is corrupt, download it again"
        )
    return result
