"""Where each family comes from is written once, in its module, and read from there.

Every registered family has one origin: a download source whose files carry
well-formed published checksums, or instructions naming an address; the messages of
the registry and of ``download`` quote that one origin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from contraclust.data import ArrayDataset, list_datasets, load_dataset, register_dataset
from contraclust.data import registry as registry_module
from contraclust.data.download import download_dataset, is_downloadable
from contraclust.data.origins import DownloadSource, ManualSource
from contraclust.errors import DataError

_HEX = {"md5": 32, "sha256": 64}


def families() -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for info in list_datasets():
        grouped.setdefault(info.family, []).append(info.name)
    return grouped


def test_every_set_of_a_family_shares_its_origin() -> None:
    by_name = {info.name: info for info in list_datasets()}
    for family, names in families().items():
        origins = {id(by_name[name].origin) for name in names}
        assert len(origins) == 1, family
        expected = by_name[names[0]].needs_download or bool(by_name[names[0]].layouts)
        assert (by_name[names[0]].origin is not None) == expected, family


def test_download_sources_are_well_formed() -> None:
    sources = {
        info.family: info.origin
        for info in list_datasets()
        if isinstance(info.origin, DownloadSource)
    }
    assert set(sources) == {
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "stl10",
        "tiny-imagenet",
    }
    for family, source in sources.items():
        assert re.fullmatch(r"https?://[^/]+/(\S*/)?", source.base_url), family
        names = [remote.name for remote in (*source.files, *source.also_accepted)]
        assert len(names) == len(set(names)), family
        for remote in (*source.files, *source.also_accepted):
            algorithm, digest = remote.checksum
            assert re.fullmatch(rf"[0-9a-f]{{{_HEX[algorithm]}}}", digest), remote.name
            if remote.md5 and remote.sha256:
                assert len(remote.md5) == 32 and len(remote.sha256) == 64


def test_manual_sources_name_an_address_and_are_not_downloadable() -> None:
    for info in list_datasets():
        if isinstance(info.origin, ManualSource):
            assert "https://" in info.origin.instructions, info.name
            assert not is_downloadable(info.name)


@pytest.mark.parametrize("name", ["cifar10", "stl10", "usps"])
def test_messages_quote_the_family_origin(name: str, tmp_path: Path) -> None:
    origin = next(info.origin for info in list_datasets() if info.name == name)
    address = origin.base_url if isinstance(origin, DownloadSource) else "kaggle.com"
    with pytest.raises(DataError) as info:
        load_dataset(name, root=tmp_path)
    assert address in str(info.value)
    if isinstance(origin, ManualSource):
        with pytest.raises(DataError, match=re.escape(origin.instructions)):
            download_dataset(name, tmp_path, progress=False)


def test_a_family_is_registered_with_one_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    monkeypatch.setattr(registry_module, "_ORIGINS", dict(registry_module._ORIGINS))

    def loader(files: Mapping[str, Path]) -> ArrayDataset:
        raise AssertionError("never loaded")

    register_dataset("toy-a", "toys", "one", ["a.npy"], "https://a.example/")(loader)
    register_dataset("toy-b", "toys", "same origin", ["b.npy"], "https://a.example/")(loader)
    with pytest.raises(ValueError, match="already registered with another origin"):
        register_dataset("toy-c", "toys", "other", ["c.npy"], "https://b.example/")(loader)
