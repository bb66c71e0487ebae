"""Small helpers shared by the tests: writing and plainly reading IDX files, writing
small image files (and a Tiny ImageNet layout), and damaging files for the fuzz tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

#: IDX type code of each supported dtype (data are stored big-endian).
IDX_TYPE_CODES: dict[np.dtype, int] = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic, dimension sizes, big-endian data."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in IDX_TYPE_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError("IDX needs at least one dimension")
    header = bytes([0, 0, IDX_TYPE_CODES[native], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compresslevel: int = 6) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = idx_bytes(array)
    if path.suffix == ".gz":
        # mtime=0 keeps the file byte-identical from run to run
        with (
            path.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) as stream,
        ):
            stream.write(payload)
    else:
        path.write_bytes(payload)
    return path


def read_idx_plain(path: str | Path) -> np.ndarray:
    """A minimal IDX reader, independent of the library's, for building fixtures."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    code, ndim = raw[2], raw[3]
    dtype = {code: dtype for dtype, code in IDX_TYPE_CODES.items()}[code]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtype.newbyteorder(">"), offset=4 + 4 * ndim)
    return data.reshape(shape).astype(dtype)


#: Examples per fuzz test of a file reader.
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def damage(data: st.DataObject, valid: bytes) -> bytes:
    """``valid`` cut short, with a few bytes changed, or both."""
    blob = bytearray(valid)
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    return bytes(blob)


def noise(seed: int, size: int) -> bytes:
    """``size`` random bytes (hypothesis draws the seed: large blobs stay cheap)."""
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8).tobytes()


def save_image(path: Path, value: int, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (value, 255 - value, 7) if mode == "RGB" else value
    Image.new(mode, size, colour).save(path, format="JPEG" if path.suffix == ".JPEG" else None)


def write_tiny_imagenet(root: Path) -> list[str]:
    base = root / "tiny-imagenet" / "tiny-imagenet-200"
    wnids = ["n03000001", "n01000001", "n02000001"]  # wnids.txt is not sorted
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for position, wnid in enumerate(wnids):
        for k in range(2):
            save_image(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", 40 * position)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("boxes\n")
    annotations = []
    for k, wnid in enumerate(["n02000001", "n03000001", "n02000001"]):
        save_image(base / "val" / "images" / f"val_{k}.JPEG", 100 + k, mode="L" if k else "RGB")
        annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return sorted(wnids)


def one_class_in_two_and_two_in_one(
    centers: torch.Tensor, proj_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A made-up training set for cluster repair: features ``h``, embedding ``z`` and
    labels of 400 points, and ``centers`` (3 x d, set in place) to go with them.

    Three centres in the first two coordinates: one class (a Gaussian at the origin)
    cut in two by centres 0 and 1, and two tight groups at (20, -3) and (20, 3)
    sharing centre 2. Features and embedding are the same points.
    """
    gen = torch.Generator().manual_seed(0)
    blob = torch.randn(200, 2, generator=gen)
    pair = torch.randn(200, 2, generator=gen) * 0.3 + torch.tensor([20.0, 0.0])
    pair[:100, 1] -= 3.0
    pair[100:, 1] += 3.0
    points = torch.cat([blob, pair])
    labels = torch.cat([(blob[:, 0] >= 0).long(), torch.full((200,), 2)])
    h = torch.zeros(400, centers.shape[1])
    h[:, :2] = points
    z = torch.zeros(400, proj_dim)
    z[:, :2] = points
    with torch.no_grad():
        centers.zero_()
        centers[:, :2] = torch.tensor([[-0.8, 0.0], [0.8, 0.0], [20.0, 0.0]])
    return h, z, labels
