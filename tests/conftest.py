"""Session fixtures giving tests the shared benchmark data.

``shared_data_dir`` is the read-only folder of benchmark files (``$CONTRACLUST_SHARED_DATA``
or ``<repo>/../shared/data``); ``shared_file(name)`` returns one of its files after
checking it against ``SHA256SUMS``. ``data_root`` is a data root in the official
layout (what a user downloads), assembled once from the shared chunks into
``<repo>/.cache/test-data-root`` and reused while its sources are unchanged.

A missing or altered file fails the test run rather than skipping: in CI a skipped
data test would hide a broken set-up.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import read_idx_plain, write_idx

#: Fixtures of a local HTTP server for the download tests.
pytest_plugins = ["local_http"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_ENV = "CONTRACLUST_SHARED_DATA"
DATA_ROOT_CACHE = REPO_ROOT / ".cache" / "test-data-root"
_MARKER = ".complete.json"
_LAYOUT_VERSION = 2


@dataclass(frozen=True)
class RootFile:
    """One file of the test data root and the shared files it is made from."""

    target: str  # path inside the data root
    sources: tuple[str, ...]  # shared files; several are chunks joined in order
    #: how chunks are joined: "idx" (IDX arrays along the first axis, written as IDX) or
    #: "bytes" (each chunk gunzipped, the bytes concatenated: whole binary records)
    join: str = "idx"

    @property
    def joined(self) -> bool:
        return len(self.sources) > 1


#: The official layout the tests read. Extending it is one line per file.
DATA_ROOT_LAYOUT: tuple[RootFile, ...] = (
    RootFile("mnist/t10k-images-idx3-ubyte.gz", ("mnist-t10k-images-idx3-ubyte.gz",)),
    RootFile("mnist/t10k-labels-idx1-ubyte.gz", ("mnist-t10k-labels-idx1-ubyte.gz",)),
    RootFile(
        "mnist/train-images-idx3-ubyte.gz",
        tuple(f"mnist-train-images-idx3-ubyte.part{i}of4.gz" for i in range(1, 5)),
    ),
    RootFile("mnist/train-labels-idx1-ubyte.gz", ("mnist-train-labels-idx1-ubyte.gz",)),
    RootFile("usps/usps.h5", ("usps.h5",)),
    RootFile(
        "cifar10/cifar-10-batches-bin/test_batch.bin",
        tuple(f"cifar10-test_batch.bin.part{i:02d}of10.gz" for i in range(1, 11)),
        join="bytes",
    ),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared benchmark data folder; fails the run when it is absent."""
    configured = os.environ.get(SHARED_DATA_ENV)
    folder = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    origin = f"${SHARED_DATA_ENV}" if configured else "the default <repo>/../shared/data"
    if not folder.is_dir():
        pytest.fail(
            f"shared benchmark data not found at {folder} (from {origin}); "
            f"set {SHARED_DATA_ENV} to the folder holding SHA256SUMS and the data files",
            pytrace=False,
        )
    if not (folder / "SHA256SUMS").is_file():
        pytest.fail(f"{folder} has no SHA256SUMS file; it is not the shared data folder")
    return folder.resolve()


@pytest.fixture(scope="session")
def shared_file(shared_data_dir: Path) -> Callable[[str], Path]:
    """A function returning a shared data file by name after checking its sha256."""
    expected: dict[str, str] = {}
    for line in (shared_data_dir / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            expected[name.lstrip("*")] = digest.lower()
    verified: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name in verified:
            return verified[name]
        path = shared_data_dir / name
        if name not in expected:
            pytest.fail(f"{name} is not listed in {shared_data_dir / 'SHA256SUMS'}")
        if not path.is_file():
            pytest.fail(f"missing shared data file {path}; restore it from the data bundle")
        actual = _sha256(path)
        if actual != expected[name]:
            pytest.fail(
                f"{path} fails its checksum (sha256 {actual}, expected {expected[name]}); "
                "restore the file from the data bundle"
            )
        verified[name] = path
        return path

    return get


def _build_data_root(destination: Path, shared_file: Callable[[str], Path]) -> None:
    for entry in DATA_ROOT_LAYOUT:
        target = destination / entry.target
        target.parent.mkdir(parents=True, exist_ok=True)
        if not entry.joined:
            shutil.copyfile(shared_file(entry.sources[0]), target)
            continue
        if entry.join == "bytes":
            with target.open("wb") as out:
                for name in entry.sources:
                    with gzip.open(shared_file(name), "rb") as chunk:
                        shutil.copyfileobj(chunk, out)
            continue
        chunks = [read_idx_plain(shared_file(name)) for name in entry.sources]
        write_idx(target, np.concatenate(chunks, axis=0), compresslevel=1)


def _root_is_complete(root: Path, manifest: dict[str, object]) -> bool:
    marker = root / _MARKER
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return recorded == manifest and all(
        (root / entry.target).is_file() for entry in DATA_ROOT_LAYOUT
    )


@pytest.fixture(scope="session")
def data_root(shared_file: Callable[[str], Path]) -> Path:
    """A data root in the official layout (mnist/, usps/, cifar10/), built once and cached."""
    manifest: dict[str, object] = {
        "version": _LAYOUT_VERSION,
        "files": {
            entry.target: [_sha256(shared_file(name)) for name in entry.sources]
            for entry in DATA_ROOT_LAYOUT
        },
    }
    if _root_is_complete(DATA_ROOT_CACHE, manifest):
        return DATA_ROOT_CACHE
    DATA_ROOT_CACHE.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="test-data-root.tmp-", dir=DATA_ROOT_CACHE.parent))
    try:
        _build_data_root(staging, shared_file)
        (staging / _MARKER).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if DATA_ROOT_CACHE.exists():
            shutil.rmtree(DATA_ROOT_CACHE, ignore_errors=True)
        try:
            staging.rename(DATA_ROOT_CACHE)
        except OSError:
            # another test process finished first; use its copy if it is whole
            if not _root_is_complete(DATA_ROOT_CACHE, manifest):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return DATA_ROOT_CACHE


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``$CONTRACLUST_DATA``: the data root is the argument or the default."""
    monkeypatch.delenv("CONTRACLUST_DATA", raising=False)
