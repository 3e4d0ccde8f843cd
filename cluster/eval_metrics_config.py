"""Which metrics ``actiongpt eval`` computes beside APE/AVE, and the retrieval protocol's settings
(``EvalConfig.metrics``, ``EvalConfig.evaluator``, ``EvalConfig.retrieval``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from actiongpt import config as cfglib
from actiongpt.metrics_retrieval import DIVERSITY_PAIRS, PROTOCOL_BATCH

METRIC_GROUPS = ("ape", "retrieval", "physics")


@dataclasses.dataclass
class RetrievalSettings:
    """``EvalConfig.retrieval``: the protocol's constants (HumanML3D's) and the physics frame rate."""

    batch: int = PROTOCOL_BATCH  # R-precision: the true text among this many
    diversity_pairs: int = DIVERSITY_PAIRS
    fps: float = 30.0  # frame rate of the features (the dataset's target rate), for speeds and jerk

    def __post_init__(self) -> None:
        if self.batch < 2:
            raise cfglib.ConfigError(f"retrieval.batch: must be >= 2, got {self.batch}")
        if self.diversity_pairs < 1:
            raise cfglib.ConfigError(f"retrieval.diversity_pairs: must be >= 1, got {self.diversity_pairs}")
        if self.fps <= 0:
            raise cfglib.ConfigError(f"retrieval.fps: must be > 0, got {self.fps}")


def metric_groups(cfg: Any) -> tuple[str, ...]:
    """The metric groups to compute: ``cfg.metrics``, else all of them when an evaluator is given (APE/AVE
    alone without one, as before). APE/AVE are always computed (the evaluation's core)."""
    if cfg.metrics is None:
        return METRIC_GROUPS if cfg.evaluator else ("ape",)
    names = [m.strip().lower() for m in cfg.metrics]
    unknown = sorted(set(names) - set(METRIC_GROUPS))
    if unknown:
        raise cfglib.ConfigError(f"metrics: unknown {unknown}; choose from {list(METRIC_GROUPS)}")
    if "retrieval" in names and not cfg.evaluator:
        raise cfglib.ConfigError(
            "metrics: 'retrieval' needs an evaluator checkpoint (evaluator=runs/evaluator; train "
            "one with `actiongpt train -c configs/train/evaluator.yaml`)"
        )
    return tuple(m for m in METRIC_GROUPS if m in names or m == "ape")
