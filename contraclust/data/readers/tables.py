"""Tables of feature vectors: ``.csv`` and ``.parquet`` files, one sample per row.

Embeddings computed by some other model usually arrive as a table rather than a
NumPy array. Both readers return the same :class:`~contraclust.data.ArrayDataset`
of float32 vectors that ``.npy`` files give, so they train with the MLP backbone and
the vector augmentations like any other vectors.

* A column named ``label`` (or the one named by ``label_column``) holds the labels,
  integers or strings (strings become class names); every other column must be
  numeric. A Parquet file may instead hold one list column of vectors
  (``embedding: list<float>``), the way many embedding tools write them.
* A CSV may have a header row or not: the first row is a header when one of its
  cells is not a number. Without a header there are no column names, so no labels.
* Empty files, ragged rows, missing, non-numeric and NaN/inf values are refused with
  one :class:`~contraclust.errors.DataError` naming the first bad row and column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.arrays import dataset_from_arrays, labels_and_names
from contraclust.data.readers.common import require_file
from contraclust.errors import DataError

__all__ = ["DEFAULT_LABEL_COLUMN", "TABLE_SUFFIXES", "load_table_file"]

#: The column read as labels when no other is named.
DEFAULT_LABEL_COLUMN = "label"
#: File suffixes (lower case) read by :func:`load_table_file`.
TABLE_SUFFIXES = (".csv", ".parquet")

_PARQUET_HINT = "pip install contraclust[tables]"


def load_table_file(path: str | Path, label_column: str | None = None) -> ArrayDataset:
    """Load feature vectors (and optional labels) from a ``.csv`` or ``.parquet`` table.

    Args:
        path: the table file.
        label_column: the column holding the labels. None reads a column named
            ``label`` when there is one (the data is unlabelled otherwise); a name that
            the table lacks is an error.

    Raises:
        DataError: for a missing, empty or unreadable file, ragged rows, a
            non-numeric, missing, NaN or infinite value (naming the first one's row and
            column), or a missing ``label_column``.

    Example:
        >>> ds = load_table_file("embeddings.csv")  # doctest: +SKIP
        >>> ds.kind, ds.input_shape
        ('vector', (384,))
    """
    path = Path(path)
    require_file(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        vectors, labels = _read_csv(path, label_column)
    elif suffix == ".parquet":
        vectors, labels = _read_parquet(path, label_column)
    else:
        raise DataError(f"{path}: unsupported table type '{path.suffix}'; use .csv or .parquet")
    label_values, class_names = (None, None)
    if labels is not None:
        column, values = labels
        label_values, class_names = labels_and_names(values, f"{path}[{column}]")
    dataset = dataset_from_arrays(vectors, label_values, class_names, path.stem, str(path))
    dataset.validate()
    return dataset


# --------------------------------------------------------------------------- CSV


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(
    path: Path, label_column: str | None
) -> tuple[np.ndarray, tuple[str, np.ndarray] | None]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(_numbered_rows(csv.reader(fh)))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a UTF-8 text file ({exc.reason}); save it as CSV") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path} is empty; expected one row of numbers per sample")
    first_line, first = rows[0]
    has_header = not all(_is_number(cell) for cell in first)
    names = [cell.strip() for cell in first] if has_header else None
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"{path} has a header row but no data rows")
    width = len(first)
    for line, row in body:
        if len(row) != width:
            what = "the header" if has_header else f"row {first_line}"
            raise DataError(
                f"{path}: row {line} has {len(row)} values but {what} has {width}; "
                "every row must have the same number of columns"
            )
    label_index = _label_index(path, names, label_column)
    if names is not None:
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DataError(f"{path}: column '{duplicates[0]}' appears more than once")
    columns = [i for i in range(width) if i != label_index]
    if not columns:
        raise DataError(f"{path} has no feature columns besides the labels")
    cells = [[row[i] for i in columns] for _, row in body]
    try:
        vectors = np.asarray(cells, dtype=np.float64)
    except ValueError:
        vectors = _first_bad_cell(path, body, columns, names)
    _check_finite(path, vectors, [line for line, _ in body], columns, names)
    labels = None
    if label_index is not None and names is not None:
        raw = [row[label_index].strip() for _, row in body]
        labels = (names[label_index], _label_values(raw))
    return vectors, labels


def _numbered_rows(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every row that is not blank."""
    for row in reader:
        if row and any(cell.strip() for cell in row):
            yield reader.line_num, row


def _label_index(path: Path, names: list[str] | None, label_column: str | None) -> int | None:
    wanted = label_column or DEFAULT_LABEL_COLUMN
    if names is not None and wanted in names:
        return names.index(wanted)
    if label_column is None:
        return None
    if names is None:
        raise DataError(
            f"{path} has no header row, so it has no column '{label_column}'; add a header "
            "row naming the columns, or drop the label column option"
        )
    raise DataError(
        f"{path} has no column '{label_column}'; its columns are {', '.join(names[:10])}"
        + (" ..." if len(names) > 10 else "")
    )


def _column_name(index: int, names: list[str] | None) -> str:
    return f"'{names[index]}'" if names is not None else str(index + 1)


def _first_bad_cell(
    path: Path, body: list[tuple[int, list[str]]], columns: list[int], names: list[str] | None
) -> np.ndarray:
    for line, row in body:
        for i in columns:
            if not _is_number(row[i]):
                value = row[i].strip()
                what = "an empty value" if not value else f"'{value[:40]}' is not a number"
                raise DataError(
                    f"{path}: row {line}, column {_column_name(i, names)}: {what}; every "
                    f"column except the label column ('{DEFAULT_LABEL_COLUMN}' or the one "
                    "named with --label-column) must be numeric"
                )
    raise AssertionError("a cell failed to convert but each converts alone")


def _check_finite(
    path: Path,
    vectors: np.ndarray,
    lines: list[int],
    columns: list[int],
    names: list[str] | None,
) -> None:
    finite = np.isfinite(vectors)
    if finite.all():
        return
    row, col = (int(i) for i in np.argwhere(~finite)[0])
    raise DataError(
        f"{path}: {int((~finite).sum())} NaN/inf values, the first in row {lines[row]}, "
        f"column {_column_name(columns[col], names)}; remove or impute them"
    )


def _label_values(raw: list[str]) -> np.ndarray:
    """Integer labels when every label is a whole number, else the strings."""
    try:
        numbers = [float(value) for value in raw]
    except ValueError:
        return np.asarray(raw, dtype=str)
    if all(math.isfinite(v) and v == round(v) for v in numbers):
        return np.asarray(numbers, dtype=np.int64)
    return np.asarray(raw, dtype=str)


# --------------------------------------------------------------------------- Parquet


def _import_parquet(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet files needs pyarrow, which is not installed; {_PARQUET_HINT}"
        ) from None
    return pq


def _read_parquet(
    path: Path, label_column: str | None
) -> tuple[np.ndarray, tuple[str, np.ndarray] | None]:
    pq = _import_parquet(path)
    import pyarrow as pa

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file ({exc})") from None
    if table.num_rows == 0:
        raise DataError(f"{path} is empty (0 rows); expected one row per sample")
    names = list(table.column_names)
    label_index = _label_index(path, names, label_column)
    features = [name for i, name in enumerate(names) if i != label_index]
    if not features:
        raise DataError(f"{path} has no feature columns besides the labels")
    list_types = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    first_type = table.schema.field(features[0]).type
    if len(features) == 1 and any(test(first_type) for test in list_types):
        vectors = _list_column(path, features[0], table.column(features[0]), pa)
    else:
        vectors = np.stack(
            [_numeric_column(path, name, table.column(name), pa) for name in features], axis=1
        )
    _check_finite(path, vectors, list(range(table.num_rows)), list(range(len(features))), features)
    labels = None
    if label_index is not None:
        column = table.column(names[label_index])
        if column.null_count:
            row = _first_null(column)
            raise DataError(f"{path}: row {row}, column '{names[label_index]}' has no label")
        values = np.asarray(column.to_pylist())
        if values.dtype.kind not in "iufbUS":
            values = values.astype(str)
        labels = (names[label_index], values)
    return vectors, labels


def _first_null(column: Any) -> int:
    for row, value in enumerate(column.to_pylist()):
        if value is None:
            return row
    return -1


def _numeric_column(path: Path, name: str, column: Any, pa: Any) -> np.ndarray:
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(
            f"{path}: column '{name}' holds {kind} values; every column except the label "
            f"column ('{DEFAULT_LABEL_COLUMN}' or the one named with --label-column) must be "
            "numeric"
        )
    if column.null_count:
        raise DataError(f"{path}: row {_first_null(column)}, column '{name}': missing value")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _list_column(path: Path, name: str, column: Any, pa: Any) -> np.ndarray:
    """The rows of a list<number> column stacked into an N×D matrix."""
    value_type = column.type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        raise DataError(f"{path}: column '{name}' holds lists of {value_type}, not of numbers")
    rows = column.to_pylist()
    width = None
    for row_index, row in enumerate(rows):
        if row is None or any(value is None for value in row):
            raise DataError(f"{path}: row {row_index}, column '{name}': missing value")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise DataError(
                f"{path}: row {row_index} of column '{name}' has {len(row)} values but row 0 "
                f"has {width}; every vector must have the same length"
            )
    if not width:
        raise DataError(f"{path}: column '{name}' holds empty vectors")
    return np.asarray(rows, dtype=np.float64)
