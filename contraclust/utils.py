"""Small shared helpers: atomic file writes, run-directory locks, device choice."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from contraclust.errors import ConfigError, RunDirectoryError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); give it the usual mode under the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the duration; a second process is refused.

    The lock names its holder (host and pid). A lock left by a process that no longer
    exists on this host is taken over.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(
            f"output path {run_dir} exists and is not a directory; choose another --out"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirectoryError(
            f"cannot create output directory {run_dir}: {exc.strerror}; choose another --out"
        ) from None
    lock = run_dir / ".lock"
    me = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = lock.read_text().strip()
            except OSError:
                holder = "unknown"
            host, _, pid = holder.partition(":")
            if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    lock.unlink()
                continue
            raise RunDirectoryError(
                f"run directory {run_dir} is in use by process {holder} (lock file {lock}); "
                "wait for it to finish or remove the lock if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text().strip() == me:
                lock.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_device(device: str) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda`` into a device, refusing CUDA where there is none."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "device 'cuda' was requested but no CUDA GPU is available; use --device cpu"
            )
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device '{device}'; valid values: auto, cpu, cuda")
