"""Spawn targets for the multi-rank loader tests (real gloo process groups on 127.0.0.1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


def _init(rank: int, world: int, port: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)


def _take(loader: Any, n: int | None) -> list[list[str]]:
    out: list[list[str]] = []
    for batch in loader:
        out.append(batch["keys"])
        if n is not None and len(out) == n:
            break
    return out


def epoch_save_resume(rank: int, world: int, port: int, cfg_dict: dict, stop: int, out_dir: str) -> None:
    """Reference epoch, then a run interrupted after ``stop`` batches and resumed from its saved state."""
    from shards.loader import LoaderConfig, ShardLoader

    _init(rank, world, port)
    try:
        cfg = LoaderConfig(**cfg_dict)
        reference = _take(ShardLoader(cfg), None)  # rank and world from the process group
        counts = torch.tensor([len(reference)])
        gathered = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
        dist.all_gather(gathered, counts)  # a collective per batch would hang on unequal counts
        first = ShardLoader(cfg)
        head = _take(first, stop)
        state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
        dist.barrier()
        resumed = ShardLoader(cfg)
        resumed.load_state_dict(state)
        tail = _take(resumed, None)
        Path(out_dir, f"rank{rank}.json").write_text(
            json.dumps(
                {
                    "reference": reference,
                    "head": head,
                    "tail": tail,
                    "state": state,
                    "counts": [int(g) for g in gathered],
                }
            )
        )
    finally:
        dist.destroy_process_group()


def resume_from_states(
    rank: int, world: int, port: int, cfg_dict: dict, states: list[dict], out_dir: str
) -> None:
    """Load the states saved by a run with another world size and finish the epoch."""
    from shards.loader import LoaderConfig, ShardLoader

    _init(rank, world, port)
    try:
        loader = ShardLoader(LoaderConfig(**cfg_dict))
        loader.load_state_dict(states if len(states) > 1 else states[0])
        tail = _take(loader, None)
        Path(out_dir, f"resumed{rank}.json").write_text(json.dumps({"tail": tail, "len": len(tail)}))
    finally:
        dist.destroy_process_group()
