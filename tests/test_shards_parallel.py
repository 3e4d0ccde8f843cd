"""Builders running concurrently as ranks of one job (real gloo processes) write the bytes of one builder."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from tests.dist_helpers.build_ranks import build_rank
from tests.dist_helpers.shards_data import build, make_source, make_store

pytestmark = pytest.mark.dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_two_concurrent_builders_match_one(tmp_path: Path) -> None:
    store = make_store(tmp_path / "emb")
    n = 48
    build(
        tmp_path / "one",
        store,
        {"train": make_source(n, "train"), "val": make_source(n // 4, "val")},
        shard_multiple=4,
        target_shard_mb=0.02,
    )
    mp.spawn(
        build_rank,
        args=(2, _free_port(), str(tmp_path / "emb"), str(tmp_path / "two"), n),
        nprocs=2,
        join=True,
    )
    one, two = _digests(tmp_path / "one"), _digests(tmp_path / "two")
    assert "manifest.json" in one and len(one) > 10
    assert one == two
