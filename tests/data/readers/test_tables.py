"""Tables of vectors: .csv (with or without header) and .parquet, and their errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contraclust import Clusterer
from contraclust.cli import main
from contraclust.data import load_dataset
from contraclust.data.readers.tables import load_table_file
from contraclust.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def blobs(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = np.array([[0.0, 0.0, 0.0, 0.0], [8.0, 0.0, 8.0, 0.0], [0.0, 8.0, 0.0, 8.0]])
    return centres[labels] + rng.normal(size=(n, 4)), labels


def write_csv(path: Path, x: np.ndarray, labels: np.ndarray | None) -> Path:
    header = [f"f{i}" for i in range(x.shape[1])] + (["label"] if labels is not None else [])
    lines = [",".join(header)]
    for i, row in enumerate(x):
        cells = [repr(float(v)) for v in row] + ([f"g{labels[i]}"] if labels is not None else [])
        lines.append(",".join(cells))
    return write(path, "\n".join(lines) + "\n")


def test_csv_with_header_and_label_column(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "a,label,b\n1,3,2.5\n-1e3,1,0\n4,3,5\n")
    ds = load_table_file(path)
    assert ds.kind == "vector" and ds.data.dtype.is_floating_point
    np.testing.assert_allclose(ds.data.numpy(), [[1, 2.5], [-1000, 0], [4, 5]])
    assert ds.labels.tolist() == [3, 1, 3]
    assert ds.class_names is None and ds.name == "e"


def test_csv_without_header_is_all_features(tmp_path: Path) -> None:
    ds = load_table_file(write(tmp_path / "e.csv", "1,2,3\n4,5,6\n\n"))
    assert ds.labels is None
    assert ds.data.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_csv_string_labels_become_class_names(tmp_path: Path) -> None:
    ds = load_table_file(write(tmp_path / "e.csv", "x,y,label\n1,2,dog\n3,4,cat\n5,6,dog\n"))
    assert ds.class_names == ["cat", "dog"]
    assert ds.labels.tolist() == [1, 0, 1]


def test_csv_label_column_option(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "kind,x,label\n1,2,7\n0,4,8\n")
    ds = load_table_file(path, label_column="kind")
    assert ds.labels.tolist() == [1, 0]
    assert ds.data.tolist() == [[2, 7], [4, 8]]  # 'label' is then an ordinary feature
    with pytest.raises(DataError, match="no column 'target'; its columns are kind, x, label"):
        load_table_file(path, label_column="target")
    with pytest.raises(DataError, match="no header row"):
        load_table_file(write(tmp_path / "n.csv", "1,2\n"), label_column="kind")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("a,b\n", "header row but no data rows"),
        ("a,b\n1,2\n3\n", r"row 3 has 1 values but the header has 2"),
        ("1,2\n3,4,5\n", r"row 2 has 3 values but row 1 has 2"),
        ("a,b,label\n1,2,0\n3,x7,1\n", r"row 3, column 'b': 'x7' is not a number"),
        ("a,b\n1,2\n3,\n", r"row 3, column 'b': an empty value"),
        ("a,b\n1,2\n3,nan\n", r"1 NaN/inf values, the first in row 3, column 'b'"),
        ("1,inf\n", r"NaN/inf values, the first in row 1, column 2"),
        ("a,a\n1,2\n", "column 'a' appears more than once"),
        ("label\n1\n", "no feature columns"),
    ],
)
def test_csv_errors_name_row_and_column(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_table_file(write(tmp_path / "bad.csv", text))


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_table_file(path)


def test_parquet_numeric_columns_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    table = pa.table(
        {"f0": [1.0, 2.0, 3.0], "f1": pa.array([4, 5, 6], pa.int32()), "label": ["b", "a", "b"]}
    )
    pq.write_table(table, path)
    ds = load_dataset(path)
    assert ds.data.tolist() == [[1, 4], [2, 5], [3, 6]]
    assert ds.class_names == ["a", "b"] and ds.labels.tolist() == [1, 0, 1]


def test_parquet_list_column_of_vectors(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"embedding": [[1.0, 2.0], [3.0, 4.0]], "label": [0, 1]}), path)
    ds = load_table_file(path)
    assert ds.data.tolist() == [[1, 2], [3, 4]] and ds.labels.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("table", "pattern"),
    [
        (pa.table({"a": pa.array([], pa.float64())}), r"is empty \(0 rows\)"),
        (pa.table({"a": [1.0, 2.0], "b": ["x", "y"]}), "column 'b' holds string values"),
        (pa.table({"a": [1.0, None]}), "row 1, column 'a': missing value"),
        (pa.table({"a": [1.0, float("nan")]}), "NaN/inf values, the first in row 1, column 'a'"),
        (pa.table({"e": [[1.0, 2.0], [3.0]]}), "row 1 of column 'e' has 1 values but row 0 has 2"),
        (pa.table({"a": [1.0], "label": pa.array([None], pa.int64())}), "has no label"),
    ],
)
def test_parquet_errors(tmp_path: Path, table: pa.Table, pattern: str) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError, match=pattern):
        load_table_file(path)


def test_parquet_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_table_file(write(tmp_path / "bad.parquet", "not parquet at all"))


def test_parquet_without_pyarrow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"a": [1.0]}), path)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import now fails
    with pytest.raises(DataError, match=r"needs pyarrow.*pip install contraclust\[tables\]"):
        load_table_file(path)


def test_unsupported_file_type_lists_tables(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"\.npy, \.npz, \.csv or \.parquet"):
        load_dataset(write(tmp_path / "e.tsv", "1\t2\n"))


def test_estimator_fits_and_predicts_a_csv(tmp_path: Path) -> None:
    x, labels = blobs()
    path = write_csv(tmp_path / "emb.csv", x, labels)
    est = Clusterer("cc", 3, epochs=2, batch_size=60, device="cpu").fit(str(path))
    assert est.model_.input_shape == (4,)  # trained on the vectors, with the MLP backbone
    assert type(est.model_.backbone).__name__ == "MLP"
    assert est.metrics_ is not None  # the label column was read as labels
    np.testing.assert_array_equal(est.predict(str(path)), est.labels_)


def test_cli_fit_and_predict_parquet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x, labels = blobs()
    path = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"vec": x.tolist(), "kind": labels.tolist()}), path)
    out = tmp_path / "run"
    args = ["fit", str(path), "-k", "3", "--epochs", "1", "-b", "60", "--device", "cpu", "-q"]
    assert main([*args, "--label-column", "kind", "--out", str(out)]) == 0
    assert "ACC" in capsys.readouterr().out
    assert "label_column: kind" in (out / "config.yaml").read_text()
    assert main(["predict", str(out), str(path), "--out", str(tmp_path / "a.csv")]) == 0
    rows = (tmp_path / "a.csv").read_text().splitlines()
    assert rows[0] == "index,cluster,confidence,label" and len(rows) == len(x) + 1


def test_cli_bad_csv_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path / "bad.csv", "a,b\n1,2\n3,oops\n")
    assert main(["fit", str(path), "-k", "2", "--out", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "row 3, column 'b': 'oops' is not a number" in err
