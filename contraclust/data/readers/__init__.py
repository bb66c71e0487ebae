"""Generic readers, one module per kind of file, shared by the data set families.

* :mod:`~contraclust.data.readers.idx`: IDX arrays (the MNIST family's format).
* :mod:`~contraclust.data.readers.arrays`: ``.npy``/``.npz`` arrays and in-memory arrays.
* :mod:`~contraclust.data.readers.images`: folders of image files, and resizing.
* :mod:`~contraclust.data.readers.tables`: ``.csv``/``.parquet`` tables of vectors.
* :mod:`~contraclust.data.readers.safe_pickle`: pickles of plain data, nothing run.

Every reader checks what it reads and raises :class:`~contraclust.errors.DataError`
with a one-line message naming the file and the fix, never a bare NumPy or PIL error.
"""
