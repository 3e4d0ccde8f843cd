"""Step-based learning-rate schedule: the learning rate is a pure function of the optimizer step.

Being a function of the step (not an object that counts calls) makes it trivially exact after a resume,
after a world-size change and under DeepSpeed, whose optimizer we set the same way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

KINDS = ("constant", "warmup_cosine", "warmup_linear")


@dataclasses.dataclass(frozen=True)
class StepSchedule:
    """``constant`` (the papers' setting: AdamW, no scheduler), optionally with linear warm-up, or warm-up
    then cosine / linear decay to ``min_ratio * lr`` at ``total_steps``."""

    kind: str
    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown schedule {self.kind!r}; choose one of {KINDS}")
        if self.base_lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {self.base_lr}")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based: the step about to be taken)."""
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min(max(step - self.warmup_steps, 0) / span, 1.0)
        if self.kind == "warmup_cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * t))
        else:
            factor = 1.0 - t
        return self.base_lr * (self.min_ratio + (1.0 - self.min_ratio) * factor)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set the learning rate of every parameter group for ``step``; returns it."""
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
