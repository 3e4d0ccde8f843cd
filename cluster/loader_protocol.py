"""What the trainer needs from a data loader (the shard loader and the test loader both satisfy it).

Contract (``shards.loader.ShardLoader`` is the real implementation):
- ``len(loader)``: batches per epoch *per rank*, the same on every rank (collectives would hang otherwise);
- ``set_epoch(e)``: start epoch ``e`` from its beginning (deterministic order from the seed and ``e``);
- ``iter(loader)``: yields the remaining batches of the current epoch, from the current position; the
  position advances as batches are *handed out* (so ``state_dict()`` right after a step describes exactly the
  batches consumed, with no prefetched batch counted);
- ``state_dict()`` / ``load_state_dict(s)``: plain JSON-safe data holding epoch and position; after
  ``load_state_dict`` the next ``iter()`` continues where the saved loader stopped;
- world-size change: ``load_state_dict([s_0, ..., s_{W-1}])`` with the states of *all* ranks of the old run
  restores a position from which this rank continues the same epoch without repeating or skipping samples,
  or raises ``ValueError`` when the loader cannot (then ``TrainConfig.on_world_size_change`` decides);
- optional attribute ``epoch``: the loader's current epoch (the trainer reports it).
"""

from __future__ import annotations

from typing import Any

from actiongpt.models.batch import MotionBatch


def check_loader(loader: object, name: str) -> None:
    """Raise TypeError naming the missing methods when ``loader`` does not meet the contract."""
    missing = [
        m
        for m in ("set_epoch", "__iter__", "__len__", "state_dict", "load_state_dict")
        if not hasattr(loader, m)
    ]
    if missing:
        raise TypeError(
            f"{name} loader {type(loader).__name__} lacks {missing} (see cluster.loader_protocol)"
        )


def batch_size_of(batch: Any) -> int:
    """Number of samples in a batch: a ``MotionBatch``, or a dict (``keys`` list, else the first tensor's
    leading dimension)."""
    if isinstance(batch, MotionBatch):
        return batch.size
    if isinstance(batch, dict):
        keys = batch.get("keys")
        if isinstance(keys, (list, tuple)):
            return len(keys)
        for v in batch.values():
            shape = getattr(v, "shape", None)
            if shape:
                return int(shape[0])
    raise TypeError(
        f"cannot tell the batch size of a {type(batch).__name__} (expected a MotionBatch or a dict)"
    )
