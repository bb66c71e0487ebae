"""Tests of streamed image sets: same pixels as the in-memory loader, no pixels held,
bad files named or skipped, and the choice between streaming and memory."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contraclust.config import DataConfig
from contraclust.data import ArrayDataset, load_dataset, load_image_folder
from contraclust.data import source as source_module
from contraclust.data.source import InMemorySource, StreamedSource, load_training_data
from contraclust.data.streaming import PathTable, StreamedImageDataset, stream_image_folder
from contraclust.errors import ConfigError, DataError


def write_folder(root: Path, n: int = 24, size: tuple[int, int] = (8, 8)) -> Path:
    """``n`` noise images in three class folders, some grey, some colour."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 4 == 0:
            pixels = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
        else:
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")
    return root


def truncated_jpeg(path: Path) -> Path:
    """A JPEG whose header is intact (it passes the pre-scan) but whose pixels are cut."""
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_folder_decodes_what_the_in_memory_loader_decodes(
    tmp_path: Path, workers: int
) -> None:
    root = write_folder(tmp_path / "imgs")
    Image.new("RGB", (12, 8), (1, 2, 3)).save(root / "class1" / "wide.png")  # mixed sizes
    memory = load_image_folder(root)
    streamed = stream_image_folder(root, workers=workers)
    assert isinstance(streamed, StreamedImageDataset)
    assert streamed.input_shape == memory.input_shape == (3, 64, 64)
    assert streamed.paths == memory.paths
    np.testing.assert_array_equal(streamed.labels, memory.labels)
    assert streamed.class_names == memory.class_names
    images = torch.cat(list(StreamedSource(streamed, workers=workers).batches(5)))
    assert torch.equal(images, memory.data)


def test_streamed_dataset_holds_the_file_list_not_the_pixels(tmp_path: Path) -> None:
    small = stream_image_folder(write_folder(tmp_path / "small", size=(8, 8)), workers=0)
    large = stream_image_folder(write_folder(tmp_path / "large", size=(64, 64)), workers=0)
    assert large.decoded_bytes == 64 * small.decoded_bytes
    arrays = [v for v in vars(large).values() if isinstance(v, (np.ndarray, torch.Tensor))]
    arrays += [v for v in vars(large._paths).values() if isinstance(v, np.ndarray)]
    held = sum(
        a.nbytes if isinstance(a, np.ndarray) else a.numel() * a.element_size() for a in arrays
    )
    assert held < 2_000  # labels, offsets and the path bytes of 24 files
    assert held < large.decoded_bytes / 100
    # what a worker process receives does not depend on the image size
    assert abs(len(pickle.dumps(large)) - len(pickle.dumps(small))) < 200


def test_path_table_round_trip() -> None:
    names = ["a/b.png", "ü/ñ.jpg", "", "x" * 300]
    table = PathTable(names)
    assert len(table) == 4 and table.tolist() == names and table[1] == "ü/ñ.jpg"


def test_unreadable_file_is_named_or_skipped(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "imgs")
    (root / "class2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"class2/broken\.png.*--skip-bad"):
        stream_image_folder(root, workers=0)
    streamed = stream_image_folder(root, skip_bad=True, workers=0)
    assert streamed.skipped == ["class2/broken.png"]
    assert len(streamed) == 24 and "class2/broken.png" not in streamed.paths


def test_file_failing_only_at_decoding_stops_or_is_skipped(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "imgs", size=(64, 64))
    truncated_jpeg(root / "class0" / "cut.jpg")
    streamed = stream_image_folder(root, workers=0)  # the pre-scan cannot see it
    cut = streamed.paths.index("class0/cut.jpg")
    perm = torch.arange(len(streamed))
    with pytest.raises(DataError, match=r"cannot decode .*class0/cut\.jpg"):
        list(StreamedSource(streamed, workers=0).train_batches(perm, 25, 1))
    source = StreamedSource(streamed, workers=0, skip_bad=True)
    [(index, images)] = list(source.train_batches(perm, 25, 1))
    assert cut not in index.tolist() and len(index) == len(images) == 24
    assert streamed.skipped == ["class0/cut.jpg"]
    # read-outs keep one row per listed file
    assert sum(len(b) for b in source.batches(10)) == 25


def test_train_batches_follow_the_permutation(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "imgs")
    memory = InMemorySource(load_image_folder(root).data)
    streamed = StreamedSource(stream_image_folder(root, workers=0), workers=2)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(5))
    for world, rank in ((1, 0), (2, 1)):
        got = list(streamed.train_batches(perm, 8, 3, rank, world))
        want = list(memory.train_batches(perm, 8, 3, rank, world))
        assert len(got) == len(want) == 3
        for (gi, gx), (wi, wx) in zip(got, want, strict=True):
            assert torch.equal(gi, wi) and torch.equal(gx, wx)


def test_stream_mode_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(write_folder(tmp_path / "imgs"))
    assert isinstance(load_training_data(DataConfig(name=root, stream="off")), ArrayDataset)
    auto = load_training_data(DataConfig(name=root, workers=0))
    assert isinstance(auto, ArrayDataset)  # 24 small images: under the budget
    assert torch.equal(auto.data, load_image_folder(root).data)
    on = load_training_data(DataConfig(name=root, stream="on", workers=0))
    assert isinstance(on, StreamedImageDataset)
    monkeypatch.setattr(source_module, "MEMORY_BUDGET", 1000)
    assert isinstance(load_training_data(DataConfig(name=root, workers=0)), StreamedImageDataset)
    assert isinstance(load_training_data(DataConfig(name="digits")), ArrayDataset)
    with pytest.raises(ConfigError, match="cannot be streamed"):
        load_training_data(DataConfig(name="digits", stream="on"))
    with pytest.raises(ConfigError, match=r"data\.stream"):
        load_training_data(DataConfig(name=root, stream="yes"))
    with pytest.raises(ConfigError, match=r"data\.workers"):
        load_training_data(DataConfig(name=root, workers=-1))


def test_auto_drops_files_that_fail_at_decoding_when_skipping(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "imgs", size=(64, 64))
    truncated_jpeg(root / "class0" / "cut.jpg")
    data = load_training_data(DataConfig(name=str(root), workers=0, skip_bad_images=True))
    assert isinstance(data, ArrayDataset)
    assert data.skipped == ["class0/cut.jpg"] and len(data) == 24
    assert data.paths is not None and "class0/cut.jpg" not in data.paths


def test_registered_folder_sets_stream(tmp_path: Path) -> None:
    from helpers import write_tiny_imagenet

    write_tiny_imagenet(tmp_path)
    for split in ("train", "test", "all"):
        memory = load_dataset("tiny-imagenet", root=tmp_path, split=split)
        streamed = load_dataset("tiny-imagenet", root=tmp_path, split=split, stream=True, workers=0)
        assert isinstance(streamed, StreamedImageDataset) and streamed.name == "tiny-imagenet"
        assert streamed.paths == memory.paths and streamed.class_names == memory.class_names
        np.testing.assert_array_equal(streamed.labels, memory.labels)
        images = torch.cat(list(StreamedSource(streamed, workers=0).batches(7)))
        assert torch.equal(images, memory.data)
    # sets stored as arrays ignore the request
    assert isinstance(load_dataset("digits", stream=True), ArrayDataset)
