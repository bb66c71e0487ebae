"""Tests of downloading, checking and unpacking the benchmark sets, against a local server.

Every transfer goes to the ``ThreadingHTTPServer`` on 127.0.0.1 of the ``http_server``
fixture (``local_http.py``); ``use_source`` replaces a family's origin so that the
published checksums are replaced by those of the small files built in each test.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import socket
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import write_idx
from local_http import ServerState, set_origin, use_source

from contraclust.data import download, load_dataset
from contraclust.data.download import (
    DownloadSource,
    RemoteFile,
    dataset_status,
    download_dataset,
    ensure_dataset,
    extract_archive,
    verify_dataset,
)
from contraclust.errors import DataError

MNIST_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def cifar_records(count: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, (count, 1 + 3072), dtype=np.uint8)
    records[:, 0] = np.arange(count) % 10
    return records.tobytes()


def cifar_binary_archive() -> bytes:
    members = {
        f"cifar-10-batches-bin/data_batch_{i}.bin": cifar_records(2, seed=i) for i in range(1, 6)
    }
    members["cifar-10-batches-bin/test_batch.bin"] = cifar_records(3, seed=9)
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\n"
    return tar_gz(members)


def idx_files(tmp_path: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(6, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([9, 8, 7, 6], dtype=np.uint8),
    }
    out = {}
    for name, array in arrays.items():
        path = write_idx(tmp_path / "build" / name, array)
        out[name] = path.read_bytes()
    return out


# --------------------------------------------------------------------------- happy path


def test_download_verify_and_unpack_an_archive(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive = cifar_binary_archive()
    http_state.files["/kriz/cifar-10-binary.tar.gz"] = archive
    use_source(
        monkeypatch, "cifar10", f"{http_server}/kriz/", {"cifar-10-binary.tar.gz": archive}, True
    )
    root = tmp_path / "root"
    assert dataset_status("cifar10", root) == "missing"

    folder = download_dataset("cifar10", root, progress=False)

    assert folder == root / "cifar10"
    assert (folder / "cifar-10-binary.tar.gz").read_bytes() == archive
    assert not (folder / "cifar-10-binary.tar.gz.part").exists()
    assert sorted(p.name for p in (folder / "cifar-10-batches-bin").iterdir())[:2] == [
        "batches.meta.txt",
        "data_batch_1.bin",
    ]
    dataset = load_dataset("cifar10", root=root)
    assert len(dataset) == 13
    assert load_dataset("cifar10", root=root, split="test").labels.tolist() == [0, 1, 2]
    rows = verify_dataset("cifar10", root)
    assert all(ok for _, ok, _ in rows), rows
    assert rows[0] == ("cifar-10-binary.tar.gz", True, f"md5 matches {md5(archive)}")
    assert dataset_status("cifar10", root) == "verified"
    # a second call finds the set in place and asks the server for nothing
    count = len(http_state.requests)
    download_dataset("cifar10", root, progress=False)
    assert len(http_state.requests) == count


def test_plain_files_and_mirror_from_environment(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = idx_files(tmp_path)
    for name, data in files.items():
        http_state.files[f"/mirror/mnist/{name}"] = data
    # the canonical address is not served: only the mirror can succeed
    use_source(monkeypatch, "mnist", f"{http_server}/canonical/", files)
    monkeypatch.setenv(download.MIRROR_ENV, f"{http_server}/mirror/")
    root = tmp_path / "root"

    download_dataset("mnist-test", root, progress=False)

    assert {path for path, _ in http_state.requests} == {f"/mirror/mnist/{n}" for n in MNIST_NAMES}
    assert len(load_dataset("mnist", root=root)) == 10
    assert load_dataset("mnist", root=root, split="test").labels.tolist() == [9, 8, 7, 6]
    assert dataset_status("mnist", root) == "verified"


def test_base_url_argument_beats_environment(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = idx_files(tmp_path)
    for name, data in files.items():
        http_state.files[f"/given/mnist/{name}"] = data
    use_source(monkeypatch, "mnist", f"{http_server}/canonical/", files)
    monkeypatch.setenv(download.MIRROR_ENV, f"{http_server}/unused")
    download_dataset("mnist", tmp_path / "root", base_url=f"{http_server}/given", progress=False)
    assert all(path.startswith("/given/mnist/") for path, _ in http_state.requests)


def test_missing_file_on_server_names_the_address(
    http_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_source(
        monkeypatch, "mnist", f"{http_server}/nothing/", {name: b"x" for name in MNIST_NAMES}
    )
    with pytest.raises(DataError, match=r"nothing/train-images-idx3-ubyte\.gz answered HTTP 404"):
        download_dataset("mnist", tmp_path, progress=False)
    assert not list((tmp_path / "mnist").glob("*.part"))


# --------------------------------------------------------------------------- checksums


def test_checksum_mismatch_deletes_the_download_and_names_both_hashes(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive = cifar_binary_archive()
    http_state.files["/kriz/cifar-10-binary.tar.gz"] = archive
    published = "0123456789abcdef0123456789abcdef"
    set_origin(
        monkeypatch,
        "cifar10",
        DownloadSource(
            f"{http_server}/kriz/",
            (RemoteFile("cifar-10-binary.tar.gz", md5=published, unpack=True),),
        ),
    )
    with pytest.raises(DataError) as info:
        download_dataset("cifar10", tmp_path, progress=False)
    message = str(info.value)
    assert "cifar-10-binary.tar.gz" in message
    assert published in message and md5(archive) in message
    assert "\n" not in message
    assert list((tmp_path / "cifar10").iterdir()) == []
    assert dataset_status("cifar10", tmp_path) == "missing"


def test_verify_reports_a_corrupted_file(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = idx_files(tmp_path)
    for name, data in files.items():
        http_state.files[f"/m/{name}"] = data
    use_source(monkeypatch, "mnist", f"{http_server}/m/", files)
    download_dataset("mnist", tmp_path, progress=False)
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes() + b"tail")
    assert dataset_status("mnist", tmp_path) == "present"
    rows = {file: (ok, detail) for file, ok, detail in verify_dataset("mnist", tmp_path)}
    ok, detail = rows["t10k-labels-idx1-ubyte.gz"]
    assert not ok
    assert md5(files["t10k-labels-idx1-ubyte.gz"]) in detail
    assert md5(target.read_bytes()) in detail
    assert "delete it" in detail
    assert rows["train-images-idx3-ubyte.gz"][0]
    # after deleting it, downloading again fetches only that file
    target.unlink()
    count = len(http_state.requests)
    download_dataset("mnist", tmp_path, progress=False)
    assert target.read_bytes() == files["t10k-labels-idx1-ubyte.gz"]
    assert http_state.requests[count:] == [("/m/t10k-labels-idx1-ubyte.gz", None)]
    assert dataset_status("mnist", tmp_path) == "verified"


# --------------------------------------------------------------------------- resuming


def big_payload() -> bytes:
    return np.random.default_rng(5).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("honour_range", [True, False], ids=["range", "no-range"])
def test_interrupted_transfer_is_resumed(
    honour_range: bool,
    http_server: str,
    http_state: ServerState,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    files = idx_files(tmp_path)
    payload = big_payload()
    files["train-images-idx3-ubyte.gz"] = payload  # served whole; never loaded
    for name, data in files.items():
        http_state.files[f"/m/{name}"] = data
    use_source(monkeypatch, "mnist", f"{http_server}/m/", files)
    http_state.honour_range = honour_range
    http_state.cut_after, http_state.cuts_left = 100_000, 1

    download_dataset("mnist", tmp_path, progress=False, attempts=2)

    target = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    assert target.read_bytes() == payload
    first = [
        rng for path, rng in http_state.requests if path.endswith("train-images-idx3-ubyte.gz")
    ]
    assert first == [None, "bytes=100000-"]


def test_resume_across_calls(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = big_payload()
    http_state.files["/m/train-images-idx3-ubyte.gz"] = payload
    use_source(monkeypatch, "mnist", f"{http_server}/m/", {"train-images-idx3-ubyte.gz": payload})
    http_state.cut_after, http_state.cuts_left = 120_000, 1
    with pytest.raises(DataError, match=r"stopped after 120000 bytes .* run the same command"):
        download_dataset("mnist", tmp_path, progress=False, attempts=1)
    partial = tmp_path / "mnist" / "train-images-idx3-ubyte.gz.part"
    assert partial.read_bytes() == payload[:120_000]
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()

    with pytest.raises(DataError, match="t10k-images"):  # the other files are not served
        download_dataset("mnist", tmp_path, progress=False, attempts=1)

    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == payload
    assert not partial.exists()
    assert http_state.requests[1] == ("/m/train-images-idx3-ubyte.gz", "bytes=120000-")


def test_stale_partial_file_is_discarded_and_fetched_again(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = big_payload()
    http_state.files["/m/train-images-idx3-ubyte.gz"] = payload
    use_source(monkeypatch, "mnist", f"{http_server}/m/", {"train-images-idx3-ubyte.gz": payload})
    partial = tmp_path / "mnist" / "train-images-idx3-ubyte.gz.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 1000)  # left by another source: its bytes are wrong
    with pytest.raises(DataError, match="t10k-images"):
        download_dataset("mnist", tmp_path, progress=False)
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == payload
    assert [rng for _, rng in http_state.requests[:2]] == ["bytes=1000-", None]


def test_complete_partial_file_is_accepted_when_nothing_is_left_to_send(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = big_payload()
    http_state.files["/m/train-images-idx3-ubyte.gz"] = payload
    use_source(monkeypatch, "mnist", f"{http_server}/m/", {"train-images-idx3-ubyte.gz": payload})
    partial = tmp_path / "mnist" / "train-images-idx3-ubyte.gz.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(payload)
    with pytest.raises(DataError, match="t10k-images"):
        download_dataset("mnist", tmp_path, progress=False)
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == payload
    assert http_state.requests == [("/m/train-images-idx3-ubyte.gz", f"bytes={len(payload)}-")]


# --------------------------------------------------------------------------- unpacking


def tar_with(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("set/good.bin")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"abc"))
        if kind in ("parent", "absolute", "nested-parent"):
            name = {
                "parent": "../evil",
                "absolute": "/abs/evil",
                "nested-parent": "set/../../evil",
            }[kind]
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        elif kind == "symlink":
            info = tarfile.TarInfo("set/link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        elif kind == "hardlink":
            info = tarfile.TarInfo("set/hard")
            info.type = tarfile.LNKTYPE
            info.linkname = "set/good.bin"
            tar.addfile(info)
        elif kind == "device":
            info = tarfile.TarInfo("set/null")
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
        elif kind == "block-device":
            info = tarfile.TarInfo("set/disk")
            info.type = tarfile.BLKTYPE
            info.devmajor, info.devminor = 8, 0
            tar.addfile(info)
        elif kind == "fifo":
            info = tarfile.TarInfo("set/pipe")
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("parent", "points outside"),
        ("nested-parent", "points outside"),
        ("absolute", "absolute path"),
        ("symlink", "the link"),
        ("hardlink", "the link"),
        ("device", "device"),
        ("block-device", "device or pipe"),
        ("fifo", "device or pipe"),
    ],
)
def test_unsafe_tar_members_refuse_the_archive(kind: str, words: str, tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_with(kind))
    destination = tmp_path / "out" / "inner"
    with pytest.raises(DataError, match=words) as info:
        extract_archive(archive, destination)
    assert str(archive) in str(info.value)
    assert list(destination.iterdir()) == []  # not even the good member is placed
    assert not (tmp_path / "out" / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_unsafe_zip_members_refuse_the_archive(tmp_path: Path) -> None:
    for name, external in (
        ("../evil", 0o100644),
        ("set/link", 0o120777),
        ("set/pipe", 0o010644),  # FIFO
        ("set/null", 0o020644),  # character device
        ("set/disk", 0o060644),  # block device
    ):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("set/good.bin", b"abc")
            info = zipfile.ZipInfo(name)
            info.external_attr = external << 16
            bundle.writestr(info, b"/etc/passwd")
        destination = tmp_path / "out"
        with pytest.raises(DataError, match="refusing to unpack"):
            extract_archive(archive, destination)
        assert list(destination.iterdir()) == []


def test_zip_archive_unpacks_over_an_older_copy(tmp_path: Path) -> None:
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("tiny/wnids.txt", b"n1\n")
        bundle.writestr("tiny/val/", b"")
    out = tmp_path / "out"
    (out / "tiny").mkdir(parents=True)
    (out / "tiny" / "wnids.txt").write_bytes(b"old")
    (out / "tiny" / "notes.txt").write_bytes(b"mine")
    assert extract_archive(archive, out) == ["tiny"]
    assert (out / "tiny" / "wnids.txt").read_bytes() == b"n1\n"
    assert (out / "tiny" / "val").is_dir()
    assert (out / "tiny" / "notes.txt").read_bytes() == b"mine"
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]  # no staging folder left


def test_damaged_archive_is_a_data_error(tmp_path: Path) -> None:
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(cifar_binary_archive()[:500])
    with pytest.raises(DataError, match="is damaged"):
        extract_archive(archive, tmp_path / "out")


def test_downloaded_archive_with_an_escape_is_not_unpacked(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive = tar_with("parent")
    http_state.files["/s/stl10_binary.tar.gz"] = archive
    use_source(monkeypatch, "stl10", f"{http_server}/s/", {"stl10_binary.tar.gz": archive}, True)
    root = tmp_path / "deep" / "root"
    with pytest.raises(DataError, match="points outside"):
        download_dataset("stl10", root, progress=False)
    assert not (root / "evil").exists() and not (root.parent / "evil").exists()
    assert not (root / "stl10" / "set").exists()


# --------------------------------------------------------------------------- archives on disk


def test_official_archive_already_present_is_checked_and_unpacked(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive = cifar_binary_archive()
    # the user has the *other* official archive; the download source is never asked
    python_archive = tar_gz(_python_members())
    use_source(
        monkeypatch,
        "cifar10",
        f"{http_server}/kriz/",
        {"cifar-10-binary.tar.gz": archive},
        unpack=True,
        also={"cifar-10-python.tar.gz": python_archive},
    )
    folder = tmp_path / "cifar10"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(python_archive)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz is there but not unpacked"):
        load_dataset("cifar10", root=tmp_path)

    download_dataset("cifar10", tmp_path, progress=False)

    assert http_state.requests == []
    dataset = load_dataset("cifar10", root=tmp_path)
    assert dataset.labels.tolist() == [1, 2, 3, 4, 5, 0]
    assert int(dataset.data[4].max()) == 5


def _python_members() -> dict[str, bytes]:
    def batch(label: int) -> bytes:
        data = np.full((1, 3072), label, dtype=np.uint8)
        return pickle.dumps({"data": data, "labels": [label]}, protocol=2)

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(i) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(0)
    return members


# --------------------------------------------------------------------------- no address


@pytest.mark.parametrize(
    ("name", "words"),
    [("usps", "kaggle.com"), ("imagenet10", "image-net.org"), ("digits", "built in")],
)
def test_sets_without_an_address_say_where_to_get_them(
    name: str, words: str, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match=words):
        download_dataset(name, tmp_path, progress=False)


def test_registry_error_names_the_download_command(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"run `contraclust datasets download stl10`"):
        load_dataset("stl10", root=tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset("imagenet-dogs", root=tmp_path)
    assert "datasets download" not in str(info.value)
    assert "image-net.org" in str(info.value)


def test_ensure_dataset_downloads_only_when_missing(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = idx_files(tmp_path)
    for name, data in files.items():
        http_state.files[f"/m/{name}"] = data
    use_source(monkeypatch, "mnist", f"{http_server}/m/", files)
    assert ensure_dataset("mnist-test", tmp_path, progress=False) is True
    assert ensure_dataset("mnist-test", tmp_path, progress=False) is False
    assert ensure_dataset(str(tmp_path), tmp_path, progress=False) is False  # a folder
    with pytest.raises(DataError, match=r"usps: missing .*kaggle"):
        ensure_dataset("usps", tmp_path, progress=False)


def test_mirror_must_be_http(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(download.MIRROR_ENV, "ftp://example.invalid/data")
    with pytest.raises(DataError, match=r"not an http\(s\) URL"):
        download_dataset("mnist", tmp_path, progress=False)
    assert not any(p.suffix == ".part" for p in tmp_path.rglob("*"))


def test_unreachable_address_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    use_source(monkeypatch, "mnist", f"http://127.0.0.1:{port}/", {MNIST_NAMES[0]: b"x"})
    with pytest.raises(DataError, match=rf"cannot reach http://127\.0\.0\.1:{port}/train-images"):
        download_dataset("mnist", tmp_path, progress=False)


def test_sha256_is_preferred_to_md5() -> None:
    remote = RemoteFile("a.bin", md5="0" * 32, sha256="f" * 64)
    assert remote.checksum == ("sha256", "f" * 64)
    assert RemoteFile("b.bin", md5="A" * 32).checksum == ("md5", "a" * 32)


def test_progress_is_a_tqdm_bar_on_stderr(
    http_server: str,
    http_state: ServerState,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = big_payload()
    http_state.files["/m/train-images-idx3-ubyte.gz"] = payload
    use_source(monkeypatch, "mnist", f"{http_server}/m/", {"train-images-idx3-ubyte.gz": payload})
    with pytest.raises(DataError, match="t10k-images"):  # only the first file is served
        download_dataset("mnist", tmp_path, progress=True)
    err = capsys.readouterr().err
    assert f"mnist: downloading {http_server}/m/train-images-idx3-ubyte.gz" in err
    assert "train-images-idx3-ubyte.gz: 100%" in err and "293k/293k" in err
