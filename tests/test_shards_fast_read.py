"""The shard reader's fast paths give exactly what the general ones give: .npy headers parsed directly,
plain tars parsed without tarfile (anything else falls back to webdataset/tarfile), and batches normalised at
once in ``collate``."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from shards.collate import Prepared, collate, normalise
from shards.format import ShardError, _npy_fast, all_finite, npy_bytes, npy_load
from shards.manifest import Manifest
from shards.reader import _iter_raw_tarfile, iter_raw
from tests.dist_helpers.shards_data import build, make_source, make_store


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    store = make_store(tmp_path_factory.mktemp("emb"), k=4)
    build(out, store, {"train": make_source(12, "train")}, shard_multiple=2, target_shard_mb=0.02)
    return out


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.standard_normal((57, 135)).astype(np.float16),
        rng.standard_normal(3).astype(np.float32),
        rng.standard_normal((2, 3, 4)),
        np.zeros((0, 5), np.float16),
        np.array(2.5, np.float32),
        rng.standard_normal((12, 1)).astype(np.float32),
    ]


@pytest.mark.parametrize("i", range(6))
def test_npy_fast_path_equals_numpy(i):
    a = _arrays()[i]
    data = npy_bytes(a)
    assert _npy_fast(data) is not None
    got, want = npy_load(data, "x"), np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
    assert got.flags.writeable and got.flags.c_contiguous


def test_npy_other_layouts_fall_back_and_errors_are_shard_errors():
    rng = np.random.default_rng(1)
    for a in (rng.integers(0, 9, (4, 2)), rng.standard_normal((3, 4)).astype(">f4")):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a)
        data = buf.getvalue()
        assert _npy_fast(data) is None and np.array_equal(npy_load(data, "x"), a)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asfortranarray(rng.standard_normal((3, 4))))
    assert _npy_fast(buf.getvalue()) is None  # numpy parses Fortran order
    good = npy_bytes(rng.standard_normal((6, 135)).astype(np.float16))
    for bad in (good[:-3], good[:40], b"garbage", good[:8] + b"\xff\xff" + good[10:]):
        with pytest.raises(ShardError, match=r"cannot decode \.npy"):
            npy_load(bad, "shard s, sample k")


def test_all_finite_matches_isfinite():
    every_f16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    for chunk in np.split(every_f16, 256):
        assert all_finite(chunk) == bool(np.isfinite(chunk).all())
    assert all_finite(np.zeros((0, 3), np.float16))
    assert not all_finite(np.array([1.0, np.nan], np.float32)) and all_finite(np.ones(3))


def test_tar_fast_path_equals_tarfile(shards):
    m = Manifest.load(shards)
    for info in m.shards("train"):
        path = shards / info.name
        fast = list(iter_raw(path))
        assert fast == list(_iter_raw_tarfile(path)) and len(fast) == info.count


def _tar(path: Path, members: list[tuple[str, bytes]], fmt: int = tarfile.USTAR_FORMAT, dirs=()) -> None:
    with tarfile.open(path, "w", format=fmt) as tf:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "kind", ["plain", "pax", "gnu_longname", "directory", "meta_and_no_extension", "uppercase_ext"]
)
def test_tar_other_archives_read_the_same(tmp_path, kind):
    members = [(f"s{i:09d}.{ext}", f"{i}-{ext}".encode() * (i + 1)) for i in range(4) for ext in ("a", "b.c")]
    fmt, dirs = tarfile.USTAR_FORMAT, ()
    if kind == "pax":
        fmt, members = tarfile.PAX_FORMAT, [*members, ("s000000009.é", b"x")]
    elif kind == "gnu_longname":
        fmt, members = tarfile.GNU_FORMAT, [*members, ("d" * 120 + "/s000000009.a", b"x")]
    elif kind == "directory":
        dirs = ("somedir/",)
    elif kind == "meta_and_no_extension":
        members = [("__meta__", b"m"), ("README", b"r"), *members, ("x/__skip__/s1.a", b"z")]
    elif kind == "uppercase_ext":
        members = [(n.replace(".a", ".A"), d) for n, d in members]
    path = tmp_path / "t.tar"
    _tar(path, members, fmt, dirs)
    assert list(iter_raw(path)) == list(_iter_raw_tarfile(path))


def test_tar_duplicates_truncation_and_garbage_give_the_tarfile_errors(tmp_path):
    members = [(f"s{i:09d}.a", bytes(700)) for i in range(3)]
    dup = tmp_path / "dup.tar"
    _tar(dup, [*members, ("s000000002.a", b"again")])
    with pytest.raises(ShardError, match="duplicate file name"):
        list(iter_raw(dup))
    whole = tmp_path / "whole.tar"
    _tar(whole, members)
    data = whole.read_bytes()
    for end in (512 * 4, 512 * 5 + 100, 512 * 7):  # in the second member's data, a header, the last data
        cut = tmp_path / f"cut{end}.tar"
        cut.write_bytes(data[:end])
        with pytest.raises(ShardError) as fast:
            list(iter_raw(cut))
        with pytest.raises(ShardError) as slow:
            list(_iter_raw_tarfile(cut))
        assert str(fast.value) == str(slow.value) and f"shard {cut.name}: corrupt or truncated" in str(
            fast.value
        )
    for name, blob in (("empty.tar", b""), ("garbage.tar", b"\x01" * 4000)):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ShardError, match=f"shard {name}"):
            list(iter_raw(tmp_path / name))
    with pytest.raises(ShardError, match="not found"):
        list(iter_raw(tmp_path / "missing.tar"))


def test_collate_normalises_the_batch_like_each_sample(shards):
    rng = np.random.default_rng(2)
    mean, std = rng.standard_normal(135).astype(np.float32), rng.random(135).astype(np.float32)
    samples = []
    for i, n in enumerate((5, 9, 2)):
        motion = rng.standard_normal((n + 3, 135)).astype(np.float16)
        text = (rng.standard_normal((i + 2, 8)).astype(np.float32), rng.standard_normal(6).astype(np.float32))
        samples.append(Prepared(f"k{i}", motion, [n, 1, 2], [f"a{i}", f"b{i}"], [text, text]))
    per_sample = [
        Prepared(s.key, normalise(s.motion, mean, std), s.lengths, s.labels, s.texts) for s in samples
    ]
    for pairs in (True, False):
        a, b = collate(samples, pairs, mean, std), collate(per_sample, pairs)
        assert list(a) == list(b)  # the same field names
        for k, v in a.items():
            if isinstance(v, torch.Tensor):
                assert v.dtype == b[k].dtype and torch.equal(v, b[k]), k
            else:
                assert v == b[k], k
    x = rng.standard_normal((7, 135)).astype(np.float16)
    want = (x.astype(np.float32) - mean) / (std + np.float32(1e-12))
    assert np.array_equal(normalise(x, mean, std).view(np.int32), want.view(np.int32))
