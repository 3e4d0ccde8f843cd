"""The global batch of a run: kept across world-size changes, split over ranks and micro-batches, digested.

A run's global batch ``G`` (samples per optimizer step) is fixed when it starts: ``global_batch_size``, else
``batch_size x world size x grad_accum``. The checkpoint records it, and a resume on any number of ranks
keeps it: each rank takes ``ceil(G / W)`` or ``floor(G / W)`` samples per step, cut into ``A`` micro-batches
of at most ``batch_size`` (``A`` adapts to the world size). It cannot be kept only when there are more ranks
than samples; then the run stops with exit 2 unless ``allow_global_batch_change`` lets it continue with the
configured global batch (a warning, an event and the ``global_batch`` field of every metrics record).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from actiongpt.config import ConfigError
from actiongpt.models.step_context import StepContext
from cluster.process_group import ProcessGroupInfo
from cluster.train_config import TrainConfig

log = logging.getLogger(__name__)

DIGEST_BITS = 40  # per lane; lane sums stay exact in int64 for up to 2**23 samples per step


@dataclass(frozen=True)
class StepGeometry:
    """How one optimizer step's global batch is split at this world size."""

    global_batch: int
    world: int
    micro_steps: int  # gradient-accumulation steps (the same on every rank)
    micro_batch: int  # the largest micro-batch of any rank
    changed_from: int | None = None  # the checkpoint's global batch when the opt-in replaced it

    @property
    def uniform(self) -> bool:
        """Every rank's every micro-batch has ``micro_batch`` samples."""
        return self.global_batch == self.world * self.micro_steps * self.micro_batch


def split(global_batch: int, world: int, batch_size: int) -> StepGeometry:
    """Micro-steps and micro-batch size for ``global_batch`` over ``world`` ranks (``batch_size`` = the
    largest micro-batch wanted); raises ConfigError when a rank would get no sample."""
    if global_batch < world:
        raise ConfigError(
            f"a global batch of {global_batch} samples cannot give each of {world} ranks a sample"
        )
    share_max, share_min = math.ceil(global_batch / world), global_batch // world
    # every rank runs the same number of micro-steps, and none of its micro-batches may be empty
    steps = min(math.ceil(share_max / batch_size), share_min)
    return StepGeometry(global_batch, world, steps, math.ceil(share_max / steps))


def configured_global_batch(cfg: TrainConfig, world: int) -> int:
    assert cfg.batch_size is not None
    return cfg.global_batch_size or cfg.batch_size * world * cfg.grad_accum


def resolve(cfg: TrainConfig, world: int, meta: Mapping[str, Any] | None, where: str = "") -> StepGeometry:
    """The geometry of this launch: the checkpoint's global batch (``meta``) when resuming, else the config's.

    Raises ConfigError (exit 2) naming the numbers and the ways out when the global batch cannot be kept.
    """
    assert cfg.batch_size is not None
    wanted = configured_global_batch(cfg, world)
    old = meta.get("global_batch") if meta else None
    if old is None:
        return split(wanted, world, cfg.batch_size)
    old = int(old)
    if cfg.global_batch_size and cfg.global_batch_size != old:
        reason = f"the config asks for global_batch_size={cfg.global_batch_size}"
    elif old < world:
        reason = f"{world} ranks need at least one sample each per step"
    else:
        return split(old, world, cfg.batch_size)
    if not cfg.allow_global_batch_change:
        raise ConfigError(
            f"{where or 'the checkpoint'} was trained with a global batch of {old} samples per step, but "
            f"{reason}. Ways out: resume on at most {old} ranks with global_batch_size unset (or "
            f"={old}), or set allow_global_batch_change=true to continue with a global batch of {wanted} "
            "(same samples, but the loss curve differs from the uninterrupted run from here on)"
        )
    geo = split(wanted, world, cfg.batch_size)
    log.warning(
        "global batch changed %d -> %d at the resume (%s; allow_global_batch_change=true): the loss curve "
        "differs from the uninterrupted run from here on",
        old,
        wanted,
        reason,
    )
    return StepGeometry(geo.global_batch, world, geo.micro_steps, geo.micro_batch, changed_from=old)


def key_lanes(keys: Iterable[str]) -> tuple[int, int]:
    """Two 40-bit lane sums of SHA-256(key): added over ranks they give the step's batch digest."""
    a = b = 0
    mask = (1 << DIGEST_BITS) - 1
    for k in keys:
        h = int.from_bytes(hashlib.sha256(str(k).encode()).digest()[:10], "little")
        a += h & mask
        b += h >> DIGEST_BITS
    return a, b


def digest(lane_a: int, lane_b: int) -> str:
    """The batch digest: 24 hex digits, equal for two steps exactly when (up to hash collisions) they
    trained on the same set of sample keys, in any order and split."""
    return f"{lane_a % (1 << 48):012x}{lane_b % (1 << 48):012x}"


# --------------------------------------------------------------------------------------------- per step
def batch_keys(batch: Any) -> list[str] | None:
    """The sample keys of a batch (the dict schema's ``keys`` entry, or a typed batch's ``keys``)."""
    keys = batch.get("keys") if isinstance(batch, Mapping) else getattr(batch, "keys", None)
    return list(keys) if isinstance(keys, (list, tuple)) else None


def length_fields(batch: Any) -> dict[str, torch.Tensor]:
    """The batch's per-sample frame counts by their flat names (``lengths``; ``lengths_0``/``lengths_1``
    for pairs), as the losses name them under a step context."""
    if isinstance(batch, Mapping):
        return {k: v for k, v in batch.items() if k.startswith("lengths") and torch.is_tensor(v)}
    actions = getattr(batch, "actions", None)
    if actions is None:
        return {}
    if len(actions) == 1:
        return {"lengths": actions[0].lengths}
    return {f"lengths_{i}": a.lengths for i, a in enumerate(actions)}


@dataclass(frozen=True)
class StepStats:
    """What every rank knows about the whole global batch before its first forward of the step."""

    samples: int
    digest: str
    frames: dict[str, int]
    max_len: dict[str, int]

    def context(self, seed: int, step: int, batch: Any) -> StepContext:
        """The step context of one micro-batch (loss shares, keyed randomness)."""
        keys = batch_keys(batch)
        if keys is None:
            raise TypeError("split-invariant training needs the sample keys of every batch")
        return StepContext(seed, step, self.samples, self.frames, self.max_len, keys)


def step_stats(
    pg: ProcessGroupInfo, micro_batches: Sequence[Any], batch_size_of: Any, lengths: bool
) -> StepStats:
    """Sample count, key digest and (``lengths``) per-field frame sums and maxima of the global batch: one
    sum all-reduce, plus a max all-reduce when ``lengths``."""
    fields = sorted(length_fields(micro_batches[0])) if lengths else []
    lane_a = lane_b = samples = 0
    sums, maxes = [0] * len(fields), [0] * len(fields)
    for batch in micro_batches:
        samples += batch_size_of(batch)
        keys = batch_keys(batch)
        if keys is not None:
            a, b = key_lanes(keys)
            lane_a, lane_b = lane_a + a, lane_b + b
        values = length_fields(batch)
        for i, k in enumerate(fields):
            sums[i] += int(values[k].sum())
            maxes[i] = max(maxes[i], int(values[k].max()))
    total = torch.tensor([samples, lane_a, lane_b, *sums], dtype=torch.int64)
    top = torch.tensor(maxes, dtype=torch.int64)
    if pg.backend == "nccl":
        total, top = total.to(pg.device), top.to(pg.device)
    dist.all_reduce(total)
    if fields:
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    t, m = total.cpu().tolist(), top.cpu().tolist()
    return StepStats(t[0], digest(t[1], t[2]), dict(zip(fields, t[3:])), dict(zip(fields, m)))
