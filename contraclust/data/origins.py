"""Where a family of data sets comes from: its remote files and their checksums, or how
to obtain it by hand where there is no public address.

Each family module in :mod:`contraclust.data.sets` writes its origin once and hands it
to :func:`~contraclust.data.registry.register_dataset`; the registry quotes it in its
messages and :mod:`~contraclust.data.download` fetches from it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DownloadSource", "ManualSource", "Origin", "RemoteFile"]


@dataclass(frozen=True)
class RemoteFile:
    """One official file of a set and its published checksum.

    Attributes:
        name: the file name at the address and in the family folder.
        md5: the published MD5 (hex), when that is what is published.
        sha256: the published SHA-256 (hex), preferred when known.
        unpack: whether it is an archive to unpack into the family folder.
    """

    name: str
    md5: str | None = None
    sha256: str | None = None
    unpack: bool = False

    @property
    def checksum(self) -> tuple[str, str]:
        """``(algorithm, hex digest)`` to check, SHA-256 when known."""
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        raise ValueError(f"{self.name} has no checksum")


@dataclass(frozen=True)
class DownloadSource:
    """A family that ``contraclust datasets download`` can fetch.

    Attributes:
        base_url: the canonical folder address (ends with ``/``).
        files: the files fetched, in order.
        also_accepted: other official archives of the same data, unpacked instead of
            downloading when the user already has one in the family folder.
    """

    base_url: str
    files: tuple[RemoteFile, ...]
    also_accepted: tuple[RemoteFile, ...] = ()

    def how_to_get(self, folder: str) -> str:
        """How to fetch the files by hand, for messages."""
        archives = [remote.name for remote in self.files if remote.unpack]
        if archives:
            return f"download {', '.join(archives)} from {self.base_url} and unpack it in {folder}/"
        return f"download the official files from {self.base_url} into {folder}/"

    @property
    def archives(self) -> tuple[RemoteFile, ...]:
        """The official archives (fetched or accepted) that are unpacked in place."""
        return tuple(remote for remote in (*self.files, *self.also_accepted) if remote.unpack)


@dataclass(frozen=True)
class ManualSource:
    """A family without a public download address (an account is needed, or none exists).

    Attributes:
        instructions: what to get and from where, as a phrase that reads on before
            ``", into <folder>/"`` (``"get usps.h5 from https://..."``).
    """

    instructions: str

    def how_to_get(self, folder: str) -> str:
        """How to obtain the files, for messages."""
        return f"{self.instructions}, into {folder}/"


#: Where a family comes from; None for a set bundled with a library (nothing to fetch).
Origin = DownloadSource | ManualSource | None
