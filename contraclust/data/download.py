"""Downloading the public benchmark sets: resumable, checksum-verified, safely unpacked.

:func:`download_dataset` fetches a set's official files into
``<data root>/<family>/``: each goes to ``<name>.part`` in that folder, a broken
transfer resumes with an HTTP ``Range`` request (starting over when the server ignores
it), the file's published checksum is checked *before* it is renamed into place, and
archives are unpacked with every absolute path, ``..`` component, link and device file
refused. :func:`verify_dataset` re-checks what is on disk.

Addresses and checksums are not written here: each family module in
:mod:`contraclust.data.sets` gives its :class:`~contraclust.data.origins.DownloadSource`
(the canonical address and the published checksums of its files, SHA-256 checked where
known, MD5 otherwise) or a :class:`~contraclust.data.origins.ManualSource` saying how
to obtain it by hand. A mirror replaces every address: give ``base_url``
(``--mirror``) or set ``$CONTRACLUST_MIRROR``; a mirror is laid out like the data root,
``<mirror>/<family>/<file name>``.

Archives are unpacked by :mod:`tarfile` with its ``"data"`` extraction filter (and
the same rules checked for ``.zip`` members); the progress bar is tqdm's.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import stat
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from contraclust.data.origins import DownloadSource, ManualSource, RemoteFile
from contraclust.data.registry import (
    DatasetInfo,
    find_dataset_files,
    get_dataset_info,
    resolve_data_root,
)
from contraclust.errors import DataError

__all__ = [
    "MIRROR_ENV",
    "DownloadSource",
    "RemoteFile",
    "archives_present",
    "dataset_status",
    "download_dataset",
    "ensure_dataset",
    "extract_archive",
    "is_downloadable",
    "verify_dataset",
]

logger = logging.getLogger(__name__)

#: Environment variable naming a mirror laid out as ``<mirror>/<family>/<file>``.
MIRROR_ENV = "CONTRACLUST_MIRROR"
#: File in a family folder recording which files passed their checksum, and when.
VERIFIED_MARKER = ".contraclust-verified.json"

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_USER_AGENT = "contraclust-downloader"


# --------------------------------------------------------------------------- look-ups


def _download_source(info: DatasetInfo) -> DownloadSource | None:
    origin = info.origin
    return origin if isinstance(origin, DownloadSource) else None


def is_downloadable(name: str) -> bool:
    """Whether ``contraclust datasets download NAME`` can fetch the set."""
    return _download_source(get_dataset_info(name)) is not None


def archives_present(name: str, folder: str | Path) -> list[str]:
    """The official archives of ``name``'s family lying in ``folder`` (not unpacked)."""
    source = _download_source(get_dataset_info(name))
    if source is None:
        return []
    return [remote.name for remote in source.archives if (Path(folder) / remote.name).is_file()]


def _source_url(
    family: str, source: DownloadSource, remote: RemoteFile, base_url: str | None
) -> str:
    mirror = base_url or os.environ.get(MIRROR_ENV, "")
    if mirror:
        url = f"{mirror.rstrip('/')}/{family}/{remote.name}"
        origin = "--mirror" if base_url else f"${MIRROR_ENV}"
    else:
        url = source.base_url + remote.name
        origin = "the canonical address"
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DataError(
            f"mirror address {mirror!r} (from {origin}) is not an http(s) URL; give one "
            "like https://host/path"
        )
    return url


def _folder(name: str, root: str | Path | None) -> tuple[Path, str]:
    data_root, _ = resolve_data_root(root)
    family = get_dataset_info(name).family
    return data_root / family, family


def _is_present(name: str, root: str | Path | None, split: str | None = None) -> bool:
    try:
        find_dataset_files(name, root, split)
    except DataError:
        return False
    return True


# --------------------------------------------------------------------------- checksums


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file (``"md5"`` or ``"sha256"``), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _marker_path(folder: Path) -> Path:
    return folder / VERIFIED_MARKER


def _read_marker(folder: Path) -> dict[str, dict[str, object]]:
    try:
        recorded = json.loads(_marker_path(folder).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _record_verified(folder: Path, path: Path, algorithm: str, digest: str) -> None:
    """Remember that ``path`` (as it is now: size and mtime) matched its checksum."""
    recorded = _read_marker(folder)
    info = path.stat()
    recorded[path.name] = {
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        algorithm: digest,
    }
    try:
        _marker_path(folder).write_text(json.dumps(recorded, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only data root still works, just without the marker
        logger.info("cannot record verification in %s: %s", folder, exc)


def _still_verified(folder: Path, remote: RemoteFile) -> bool:
    entry = _read_marker(folder).get(remote.name)
    path = folder / remote.name
    if not isinstance(entry, dict) or not path.is_file():
        return False
    algorithm, expected = remote.checksum
    info = path.stat()
    return (
        entry.get("size") == info.st_size
        and entry.get("mtime_ns") == info.st_mtime_ns
        and entry.get(algorithm) == expected
    )


# --------------------------------------------------------------------------- transfer


class _TransferInterruptedError(Exception):
    """The transfer stopped part-way; what arrived is kept for resuming."""


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(match.group(1)) if match else None


def _transfer(url: str, partial: Path, progress: bool) -> None:
    """Fetch ``url`` into ``partial``, appending when the server honours a Range request."""
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return  # nothing left to send: the part may be whole, the checksum decides
        raise DataError(
            f"{url} answered HTTP {exc.code} ({exc.reason}); check the address, or use a "
            f"mirror with --mirror or ${MIRROR_ENV}"
        ) from None
    except urllib.error.URLError as exc:  # no connection at all: refused, unknown host
        raise DataError(
            f"cannot reach {url} ({exc.reason}); check the network, or use a mirror with "
            f"--mirror or ${MIRROR_ENV}"
        ) from None
    except (OSError, http.client.HTTPException) as exc:  # connected, then dropped: retry
        raise _TransferInterruptedError(f"{type(exc).__name__}: {exc}") from None
    with response:
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if offset and response.status == 206:
            if _content_range_start(response.headers.get("Content-Range")) != offset:
                partial.unlink()  # resumed at the wrong place: start over next attempt
                raise _TransferInterruptedError("the server resumed at another offset")
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # a whole file: no Range asked, or the server ignored it
        expected = None if length is None else offset + length
        meter = tqdm(
            total=expected,
            initial=offset,
            desc=partial.name.removesuffix(".part"),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not progress,
            file=sys.stderr,
            leave=True,
        )
        with meter, partial.open(mode) as out:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _TransferInterruptedError(f"{type(exc).__name__}: {exc}") from None
                if not chunk:
                    break
                out.write(chunk)
                meter.update(len(chunk))
        size = partial.stat().st_size
        if expected is not None and size < expected:
            raise _TransferInterruptedError(
                f"the connection closed after {size} of {expected} bytes"
            )


def _fetch(url: str, target: Path, remote: RemoteFile, progress: bool, attempts: int) -> None:
    """Download ``url`` to ``target`` through ``<target>.part``, checked before renaming."""
    partial = target.with_name(target.name + ".part")
    algorithm, expected = remote.checksum
    resumed_earlier = partial.exists()
    while True:
        failure: _TransferInterruptedError | None = None
        for attempt in range(1, attempts + 1):
            try:
                _transfer(url, partial, progress)
                failure = None
                break
            except _TransferInterruptedError as exc:
                failure = exc
                logger.info("%s: attempt %d of %d stopped: %s", url, attempt, attempts, exc)
        if failure is not None:
            size = partial.stat().st_size if partial.exists() else 0
            raise DataError(
                f"download of {url} stopped after {size} bytes ({failure}), {attempts} times; "
                f"run the same command again to resume from {partial}"
            )
        actual = file_digest(partial, algorithm) if partial.exists() else "(nothing received)"
        if actual == expected:
            break
        partial.unlink(missing_ok=True)
        if resumed_earlier:
            resumed_earlier = False  # a stale part from an earlier run: start over once
            logger.info("%s: resumed file failed its checksum; downloading it again", url)
            continue
        raise DataError(
            f"{remote.name} from {url} fails its checksum ({algorithm} {actual}, expected "
            f"{expected}) and was deleted; run the command again, or use another mirror"
        )
    os.replace(partial, target)
    _record_verified(target.parent, target, algorithm, expected)


# --------------------------------------------------------------------------- unpacking


def _refuse(archive: Path, name: str, what: str) -> DataError:
    return DataError(
        f"{archive} holds {what} {name!r}; refusing to unpack it (only plain files and "
        "folders are accepted: replace the archive with the official file)"
    )


def _check_name(name: str, archive: Path) -> None:
    """Refuse an absolute member name or one with a ``..`` component."""
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned):
        raise DataError(
            f"{archive} holds the absolute path {name!r}; refusing to unpack it (replace the "
            "archive with the official file)"
        )
    if ".." in cleaned.split("/"):
        raise DataError(
            f"{archive} holds {name!r}, which points outside the folder; refusing to unpack "
            "it (replace the archive with the official file)"
        )


def _tar_filter(archive: Path) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    """tarfile's ``"data"`` filter, after refusing (not just rewriting) what it would
    sanitise or allow that no official archive holds: absolute names, ``..``, links."""

    def check(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo | None:
        _check_name(member.name, archive)
        if member.issym() or member.islnk():
            raise _refuse(archive, member.name, "the link")
        if member.ischr() or member.isblk() or member.isfifo():
            raise _refuse(archive, member.name, "the device or pipe")
        if not (member.isfile() or member.isdir()):
            raise _refuse(archive, member.name, "the special entry")
        try:
            return tarfile.data_filter(member, destination)
        except tarfile.FilterError as exc:
            raise _refuse(archive, member.name, f"an unsafe member ({exc})") from None

    return check


def _check_zip(archive: Path, bundle: zipfile.ZipFile) -> None:
    """Refuse the zip members :meth:`zipfile.ZipFile.extractall` would rename or flatten."""
    for info in bundle.infolist():
        _check_name(info.filename, archive)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise _refuse(archive, info.filename, "the link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse(archive, info.filename, "the device or pipe")


def extract_archive(archive: str | Path, destination: str | Path) -> list[str]:
    """Unpack a ``.tar``, ``.tar.gz``/``.tgz`` or ``.zip`` archive into ``destination``.

    Only plain files and folders are written, with default permissions. An absolute
    path, a ``..`` component, a symbolic or hard link, or a device or pipe refuses the
    whole archive. Members are written into a hidden folder first and moved into
    place only when all of them are unpacked; a file of the same name already in
    ``destination`` is replaced, other files there are kept.

    Returns:
        The top-level names placed in ``destination``.

    Raises:
        DataError: for an unsafe member or a damaged or unknown archive.
    """
    archive, destination = Path(archive), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    staging = destination / f".unpacking-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _unpack_into(archive, staging)
        tops = sorted(entry.name for entry in staging.iterdir())
        for top in tops:
            _move_into(staging / top, destination / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tops


def _move_into(source: Path, target: Path) -> None:
    """Move a staged file or folder into place, merging folders file by file."""
    if source.is_dir():
        if target.exists() and not target.is_dir():
            target.unlink()
        target.mkdir(exist_ok=True)
        for entry in source.iterdir():
            _move_into(entry, target / entry.name)
        return
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(source, target)


def _unpack_into(archive: Path, staging: Path) -> None:
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                _check_zip(archive, bundle)
                bundle.extractall(staging)
        elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(staging, filter=_tar_filter(archive))
        else:
            raise DataError(f"{archive}: unknown archive type; expected .tar.gz, .tar or .zip")
    except DataError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise DataError(
            f"{archive} is damaged ({type(exc).__name__}: {exc}); delete it and download again"
        ) from None


# --------------------------------------------------------------------------- public API


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _manual_message(info: DatasetInfo, folder: Path) -> str:
    if not info.needs_download and not info.layouts:
        return f"{info.name} is built in; there is nothing to download"
    origin = info.origin
    where = origin.how_to_get(str(folder)) if isinstance(origin, ManualSource) else ""
    return f"{info.name} cannot be downloaded by contraclust: {where or 'no address is known'}"


def download_dataset(
    name: str,
    root: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
    *,
    attempts: int = 3,
) -> Path:
    """Download, check and unpack a set's official files into its family folder.

    Does nothing when the set's files are already there. An official archive already
    lying in the folder (for CIFAR either the binary or the python one) is checked and
    unpacked instead of being downloaded again.

    Args:
        name: a registered set with a public address (a family whose origin is a
            :class:`~contraclust.data.origins.DownloadSource`).
        root: the data root (see :func:`~contraclust.data.resolve_data_root`).
        base_url: a mirror laid out as ``<base_url>/<family>/<file>``; default
            ``$CONTRACLUST_MIRROR``, else each set's canonical address.
        progress: report progress on stderr.
        attempts: tries per file before giving up (each resumes the previous one).

    Returns:
        The family folder holding the set.

    Raises:
        DataError: for a set without a public address (saying where to get it), an
            unreachable address, a checksum mismatch (naming both digests; the bad
            download is deleted), or an unsafe or damaged archive.

    Example:
        >>> download_dataset("cifar10", "~/data")  # doctest: +SKIP
        PosixPath('/home/me/data/cifar10')
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    info = get_dataset_info(name)
    folder, family = _folder(info.name, root)
    source = _download_source(info)
    if source is None:
        raise DataError(_manual_message(info, folder))
    if _is_present(info.name, root):
        _say(progress, f"{info.name}: already in {folder}")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for remote in source.also_accepted:
        local = folder / remote.name
        if local.is_file():
            _check_local(local, remote)
            _say(progress, f"{info.name}: unpacking {local}")
            extract_archive(local, folder)
            if _is_present(info.name, root):
                return folder
    for remote in source.files:
        target = folder / remote.name
        if not (target.is_file() and _local_matches(target, remote)):
            url = _source_url(family, source, remote, base_url)
            _say(progress, f"{info.name}: downloading {url}")
            _fetch(url, target, remote, progress, attempts)
        if remote.unpack:
            _say(progress, f"{info.name}: unpacking {target}")
            extract_archive(target, folder)
    if not _is_present(info.name, root):
        find_dataset_files(info.name, root)  # raises, naming what is still missing
    return folder


def _local_matches(path: Path, remote: RemoteFile) -> bool:
    if _still_verified(path.parent, remote):
        return True
    algorithm, expected = remote.checksum
    if file_digest(path, algorithm) == expected:
        _record_verified(path.parent, path, algorithm, expected)
        return True
    logger.info("%s fails its checksum; downloading it again", path)
    return False


def _check_local(path: Path, remote: RemoteFile) -> None:
    algorithm, expected = remote.checksum
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{path} fails its checksum ({algorithm} {actual}, expected {expected}); delete "
            "it and run the command again"
        )
    _record_verified(path.parent, path, algorithm, expected)


def ensure_dataset(
    spec: str,
    root: str | Path | None = None,
    split: str | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> bool:
    """Download a registered set when its files for ``split`` are missing.

    ``spec`` that is not a registered name (a folder, an array file) is left alone.

    Returns:
        True when something was downloaded.

    Raises:
        DataError: as :func:`download_dataset`; for a missing set without a public
            address, the registry's message saying where to get it.
    """
    try:
        info = get_dataset_info(spec)
    except DataError:
        return False
    if _is_present(info.name, root, split):
        return False
    if not is_downloadable(info.name):
        find_dataset_files(info.name, root, split)  # raises the registry's message
        return False
    download_dataset(info.name, root, base_url=base_url, progress=progress)
    return True


def verify_dataset(name: str, root: str | Path | None = None) -> list[tuple[str, bool, str]]:
    """Check a set on disk: each official download against its checksum, then its files.

    Returns:
        ``(file, ok, detail)`` rows: one per official download (its checksum, or why
        it cannot be checked) and one for the files the loader reads.
    """
    info = get_dataset_info(name)
    folder, _ = _folder(info.name, root)
    if not info.needs_download and not info.layouts:
        return [(info.name, True, "built in")]
    rows: list[tuple[str, bool, str]] = []
    present = _is_present(info.name, root)
    source = _download_source(info)
    read = set(info.files) | {
        official
        for layout in info.layouts
        for split in layout.split_names
        for official in layout.files_for(split)
    }
    if source is not None:
        for remote in (*source.files, *source.also_accepted):
            if not remote.unpack and remote.name not in read:
                continue  # another set of the family reads it (mnist-test: no train files)
            path = folder / remote.name
            algorithm, expected = remote.checksum
            if path.is_file():
                actual = file_digest(path, algorithm)
                if actual == expected:
                    _record_verified(folder, path, algorithm, expected)
                    rows.append((remote.name, True, f"{algorithm} matches {expected}"))
                else:
                    rows.append(
                        (
                            remote.name,
                            False,
                            f"{algorithm} {actual}, expected {expected}: delete it and run "
                            f"`contraclust datasets download {info.name}`",
                        )
                    )
            elif remote in source.files:
                if remote.unpack and present:
                    rows.append((remote.name, True, "not kept; its unpacked files are present"))
                else:
                    rows.append(
                        (
                            remote.name,
                            False,
                            f"missing: run `contraclust datasets download {info.name}`",
                        )
                    )
    try:
        found = find_dataset_files(info.name, root)
    except DataError as exc:
        rows.append((f"{info.name} files", False, str(exc)))
    else:
        note = "present" if source is not None else "present (no published checksum)"
        checked = {row[0] for row in rows}
        rows.extend((official, True, note) for official in found if official not in checked)
    return rows


def dataset_status(name: str, root: str | Path | None = None) -> str:
    """``"built in"``, ``"missing"``, ``"present"``, or ``"verified"`` (its official
    downloads passed their checksum since they last changed)."""
    info = get_dataset_info(name)
    if not info.needs_download and not info.layouts:
        return "built in"
    if not _is_present(info.name, root):
        return "missing"
    folder, _ = _folder(info.name, root)
    source = _download_source(info)
    if source is None:
        return "present"
    kept = [remote for remote in source.files if (folder / remote.name).is_file()]
    if kept and all(_still_verified(folder, remote) for remote in kept):
        return "verified"
    return "present"
