"""Validation loss: mean loss terms over the validation loader on every rank, all-reduced.

Runs with its own RNG (seeded, then the training streams restored) so validating never shifts training.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist

from cluster import rng_state
from cluster.engines.base import Engine
from cluster.process_group import ProcessGroupInfo

log = logging.getLogger(__name__)


def validation_means(
    engine: Engine, loader: Any, pg: ProcessGroupInfo, seed: int, max_batches: int
) -> dict[str, float] | None:
    """``{"val_<term>": mean}`` over all ranks' batches (``max_batches`` per rank, 0 = all); None when the
    loader yielded nothing."""
    sums: dict[str, float] = {}
    count = 0
    with rng_state.isolated(seed=seed), engine.evaluating():
        loader.set_epoch(0)
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            terms = engine.eval_forward(batch)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
    keys = sorted(sums)
    vec = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
    if pg.backend == "nccl":
        vec = vec.to(pg.device)
    dist.all_reduce(vec)
    vec = vec.cpu()
    total = float(vec[-1])
    if total == 0:
        log.warning("validation loader yielded no batch")
        return None
    return {f"val_{k}": float(vec[i]) / total for i, k in enumerate(keys)}
