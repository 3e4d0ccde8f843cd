"""Spawn target: ranks of one job building shards together (gloo barrier, rank 0 merges)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist


def build_rank(rank: int, world: int, port: int, emb: str, out: str, n: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        from actiongpt.text.embedding_store import EmbeddingStore
        from tests.dist_helpers.shards_data import build, make_source

        sources = {"train": make_source(n, "train"), "val": make_source(n // 4, "val")}
        res = build(
            Path(out),
            EmbeddingStore(emb),
            sources,
            part=rank,
            num_parts=world,
            shard_multiple=4,
            target_shard_mb=0.02,
            barrier=dist.barrier,
        )
        assert res.manifest is not None  # every rank sees the manifest after the final barrier
    finally:
        dist.destroy_process_group()
