"""Build a backbone by name from its config (dataclass, mapping or None = paper defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actiongpt.config import ConfigError, from_dict
from actiongpt.models.base import MotionModel
from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.evaluator import ContrastiveEvaluator
from actiongpt.models.evaluator_config import EvaluatorConfig
from actiongpt.models.motionclip import MotionCLIP
from actiongpt.models.teach import TEACH
from actiongpt.models.temos import TEMOS

MODELS: dict[str, tuple[type[MotionModel], type]] = {
    "temos": (TEMOS, TemosConfig),
    "teach": (TEACH, TeachConfig),
    "motionclip": (MotionCLIP, MotionClipConfig),
    # not a generator: the contrastive text-motion model the retrieval metrics are measured with
    "evaluator": (ContrastiveEvaluator, EvaluatorConfig),
}
MODEL_NAMES = tuple(MODELS)


def config_class(name: str) -> type:
    """The config dataclass of backbone ``name``."""
    return _lookup(name)[1]


def build_model(name: str, cfg: Any = None, text_dim: int = 768) -> MotionModel:
    """Instantiate backbone ``name`` for text embeddings of width ``text_dim``.

    ``cfg``: the backbone's config dataclass, a mapping of its fields (validated, unknown keys rejected), or
    None for the paper configuration.
    """
    model_cls, cfg_cls = _lookup(name)
    if cfg is None:
        cfg = cfg_cls()
    elif isinstance(cfg, Mapping):
        cfg = from_dict(cfg_cls, cfg, where=name)
    elif not isinstance(cfg, cfg_cls):
        raise ConfigError(f"model {name!r} needs a {cfg_cls.__name__}, got {type(cfg).__name__}")
    return model_cls(cfg, text_dim)


def _lookup(name: str) -> tuple[type[MotionModel], type]:
    key = name.lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {list(MODELS)}")
    return MODELS[key]
