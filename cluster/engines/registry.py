"""Build the training engine a config names. A new engine: a module with an :class:`Engine` subclass
and one line in ``ENGINES`` (kept apart from ``base`` so the base class imports none of its subclasses)."""

from __future__ import annotations

import importlib
from typing import Any

import torch

from actiongpt.config import ConfigError
from cluster.engines.base import Engine
from cluster.process_group import ProcessGroupInfo
from cluster.train_config import TrainConfig

# name -> "module:class"; imported on use (DeepSpeed is a heavy import that DDP runs never need)
ENGINES: dict[str, str] = {
    "ddp": "cluster.engines.ddp:DDPEngine",
    "deepspeed": "cluster.engines.deepspeed_engine:DeepSpeedEngine",
}
# engines that take the trainer's extra keyword arguments
_TAKES_KWARGS = {"deepspeed"}


def build_engine(
    model: torch.nn.Module, cfg: TrainConfig, pg: ProcessGroupInfo, accum: int, **kwargs: Any
) -> Engine:
    """The engine named by ``cfg.engine``."""
    if cfg.engine not in ENGINES:
        raise ConfigError(f"engine: unknown engine {cfg.engine!r} ({' | '.join(ENGINES)})")
    module, _, name = ENGINES[cfg.engine].partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(model, cfg, pg, accum, **(kwargs if cfg.engine in _TAKES_KWARGS else {}))
