"""Restore the training loader's position from a checkpoint's per-rank loader states.

Same world size: each rank loads its own state. Another world size: ``TrainConfig.on_world_size_change``
decides between continuing the epoch from all old ranks' positions (``reshard``), replaying the epoch
(``restart_epoch``) and refusing (``error``). The loader contract is in ``cluster.loader_protocol``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from actiongpt.config import ConfigError

log = logging.getLogger(__name__)


def loader_epoch(loader: Any, default: int) -> int:
    """The loader's own epoch when it keeps one (it may roll over by itself on ``iter``), else ``default``."""
    epoch = getattr(loader, "epoch", None)
    return epoch if isinstance(epoch, int) else default


def restore_loader(
    loader: Any,
    ranks: list[dict[str, Any]],
    rank: int,
    world: int,
    epoch: int,
    policy: str,
    where: Path,
) -> str:
    """Put ``loader`` where the checkpointed run stopped; returns how (``exact`` or a resharding note).

    ``ranks``: the saved ``{"rank", "loader", "rng"}`` of every rank of the old run, in rank order.
    """
    old_world = len(ranks)
    if old_world == world:
        mine = ranks[rank]
        if mine.get("rank") != rank:
            raise ValueError(f"{where}: per-rank states are out of order")
        loader.load_state_dict(mine["loader"])
        return "exact"
    how = f"resharded {old_world}->{world} ranks"
    if policy == "error":
        raise ConfigError(f"checkpoint has {old_world} ranks, this run {world} (on_world_size_change=error)")
    if policy == "reshard":
        try:
            loader.load_state_dict([r["loader"] for r in ranks])
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"world size changed ({old_world} -> {world}) and {type(loader).__name__} "
                f"cannot continue the epoch from the old ranks' positions ({exc}); set "
                "on_world_size_change=restart_epoch to replay the epoch instead"
            ) from exc
        return how
    log.warning(
        "world size changed (%d -> %d): restarting epoch %d from its beginning (samples repeat)",
        old_world,
        world,
        epoch,
    )
    loader.set_epoch(epoch)
    return how
