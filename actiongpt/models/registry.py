"""The backbones, one record each: every fact the rest of the project needs about a backbone lives here.

Adding a backbone is one :class:`BackboneSpec` in ``BACKBONES`` (its model class, config dataclass with
``paper()``/``tiny()`` presets and an ``lr`` field, which text it reads, whether it trains on pairs, its
training defaults and display name). Training, evaluation, sampling, the demo, the results runner and the
benchmarks read the record; none of them lists backbones by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from actiongpt.config import ConfigError, from_dict
from actiongpt.models.base import MotionModel
from actiongpt.models.configs import (
    MotionClipConfig,
    MotionClipLossWeights,
    TeachConfig,
    TeachLossWeights,
    TemosConfig,
    TemosLossWeights,
)
from actiongpt.models.evaluator import ContrastiveEvaluator
from actiongpt.models.evaluator_config import EvaluatorConfig
from actiongpt.models.motionclip import MotionCLIP
from actiongpt.models.teach import TEACH
from actiongpt.models.temos import TEMOS


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """One backbone. The learning rate is not here: each preset of ``config_cls`` carries its own ``lr``
    (paper: the published rate; tiny: the CPU rate), which training uses when ``lr`` is left unset."""

    name: str  # the config value (``model: teach``)
    model_cls: type[MotionModel]
    config_cls: type  # dataclass with paper()/tiny() presets and an ``lr`` field
    text: Literal["tokens", "pooled"]  # per-token text embeddings, or the pooled sentence vector
    pairs: (
        bool  # trains on action pairs with a transition (shards built with mode=pairs), else single actions
    )
    batch_size: int  # the original per-GPU batch size
    epochs: int  # the original number of epochs
    display_name: str  # in tables, plots and logs
    losses: type | None = None  # the dataclass of loss-term weights (its fields name the terms)
    rootless: bool = False  # predicts local pose only (no trajectory): root metrics are not reported
    either_layout: bool = False  # trains on pair or single-action shards alike (``pairs`` is then moot)
    generates: bool = True  # generates motion from text (False: scores text-motion pairs only)

    def text_dim(self, pooled_dim: int, token_dim: int) -> int:
        """The text width this backbone consumes from shards or an embedder with these widths."""
        return pooled_dim if self.text == "pooled" else token_dim

    @property
    def shard_mode(self) -> str:
        """The shard mode it trains on (``shards build mode=...``)."""
        return "pairs" if self.pairs else "seg"


BACKBONES: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        BackboneSpec(
            name="temos",
            model_cls=TEMOS,
            config_cls=TemosConfig,
            text="tokens",
            pairs=False,
            batch_size=4,  # Action-GPT-TEMOS: 4 GPUs x batch 4
            epochs=1003,
            display_name="TEMOS",
            losses=TemosLossWeights,
        ),
        BackboneSpec(
            name="teach",
            model_cls=TEACH,
            config_cls=TeachConfig,
            text="tokens",
            pairs=True,
            batch_size=4,
            epochs=1003,
            display_name="TEACH",
            losses=TeachLossWeights,
        ),
        BackboneSpec(
            name="motionclip",
            model_cls=MotionCLIP,
            config_cls=MotionClipConfig,
            text="pooled",
            pairs=False,
            batch_size=20,  # one GPU, batch 20
            epochs=100,
            display_name="MotionCLIP",
            losses=MotionClipLossWeights,
            rootless=True,
        ),
        # Not a generator: the contrastive text-motion model the retrieval metrics are measured with.
        BackboneSpec(
            name="evaluator",
            model_cls=ContrastiveEvaluator,
            config_cls=EvaluatorConfig,
            text="tokens",
            pairs=False,
            either_layout=True,
            batch_size=32,
            epochs=100,
            display_name="Text-motion evaluator",
            generates=False,
        ),
    )
}
MODEL_NAMES = tuple(BACKBONES)


def backbone(name: str) -> BackboneSpec:
    """The record of backbone ``name`` (case-insensitive); ConfigError naming the choices otherwise."""
    key = str(name).lower()
    if key not in BACKBONES:
        raise ConfigError(f"unknown model {name!r}; choose from {list(BACKBONES)}")
    return BACKBONES[key]


def display_name(name: str) -> str:
    """The backbone's name in tables; an unregistered name is shown as given."""
    spec = BACKBONES.get(str(name).lower())
    return spec.display_name if spec else str(name)


def config_class(name: str) -> type:
    """The config dataclass of backbone ``name``."""
    return backbone(name).config_cls


def build_model(name: str, cfg: Any = None, text_dim: int = 768) -> MotionModel:
    """Instantiate backbone ``name`` for text embeddings of width ``text_dim``.

    ``cfg``: the backbone's config dataclass, a mapping of its fields (validated, unknown keys rejected), or
    None for the paper configuration.
    """
    spec = backbone(name)
    cfg_cls = spec.config_cls
    if cfg is None:
        cfg = cfg_cls()
    elif isinstance(cfg, Mapping):
        cfg = from_dict(cfg_cls, cfg, where=spec.name)
    elif not isinstance(cfg, cfg_cls):
        raise ConfigError(f"model {name!r} needs a {cfg_cls.__name__}, got {type(cfg).__name__}")
    return spec.model_cls(cfg, text_dim)
