"""Training engines: the same train-step / checkpoint interface over DDP and DeepSpeed."""

from __future__ import annotations

from cluster.engines.base import Engine
from cluster.engines.registry import build_engine

__all__ = ["Engine", "build_engine"]
