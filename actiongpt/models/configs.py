"""One config dataclass per backbone; defaults are the original (paper) settings.

``paper()`` gives the configuration the parameter counts of the reference refer to; ``tiny()`` a few-thousand
parameter model for CPU tests and the demo. The text input width is not part of the configs: it is the
embedder's and is passed to ``build_model(name, cfg, text_dim)``.

Heads and dropout: the original TEMOS/TEACH YAML misspelt ``num_head``/``droupout``, so the constructor
defaults (4 heads, dropout 0.1) were in effect; those effective values are our defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, TypeVar

Activation = Literal["gelu", "relu"]
# "padded": SmoothL1 averaged over the whole zero-padded (B, T_max, F) tensor (torch.nn.SmoothL1Loss, the
# TEMOS config); "per_sample": SmoothL1 over each sample's valid frames, then averaged over the batch (TEACH's
# ``Recons``).
ReconsReduction = Literal["padded", "per_sample"]

C = TypeVar("C")


@dataclass
class TemosLossWeights:
    """λ of each TEMOS loss term (Action-GPT-TEMOS used the TEACH codebase's ``losses/temos.yaml``).

    A weight of 0 switches the term off (it is then neither computed nor logged).
    """

    recons_text2rfeats: float = 1.0
    recons_rfeats2rfeats: float = 1.0
    kl_text2motion: float = 32e-5
    kl_motion2text: float = 32e-5
    kl_text: float = 32e-5
    kl_motion: float = 32e-5
    latent_manifold: float = 1e-5


@dataclass
class TeachLossWeights:
    """λ of each TEACH loss term (``losses/teach.yaml``); each applies to both actions (suffix _0/_1)."""

    recons_text2rfeats: float = 1.0
    recons_rfeats2rfeats: float = 1.0
    kl_text2motion: float = 1e-5
    kl_motion2text: float = 1e-5
    kl_text: float = 1e-5
    kl_motion: float = 1e-5
    latent_manifold: float = 1e-5


@dataclass
class MotionClipLossWeights:
    """λ of each MotionCLIP term. The original also had an image term (CLIP image embedding of a rendered
    frame, λ = 1); there are no renders here, so it does not exist."""

    rc: float = 100.0
    rcxyz: float = 100.0
    vel: float = 100.0
    text_cosine: float = 1.0


@dataclass
class TemosConfig:
    """TEMOS as in the TEACH codebase (``configs/model/temos.yaml``, Action-GPT's ``motion_branch: true``)."""

    nfeats: int = 135
    latent_dim: int = 256
    ff_size: int = 1024
    num_layers: int = 6
    num_heads: int = 4
    dropout: float = 0.1
    activation: Activation = "gelu"
    motion_branch: bool = True
    recons_reduction: ReconsReduction = "padded"
    losses: TemosLossWeights = field(default_factory=TemosLossWeights)
    # Original optimiser: AdamW at this learning rate (the trainer may use it as its default).
    lr: float = 7e-5

    def __post_init__(self) -> None:
        _check_transformer(self)

    @classmethod
    def paper(cls) -> TemosConfig:
        return cls()

    @classmethod
    def tiny(cls) -> TemosConfig:
        return cls(latent_dim=32, ff_size=64, num_layers=1, num_heads=2, lr=1e-3)


@dataclass
class TeachConfig:
    """TEACH (``configs/model/teach.yaml``, ``losses/teach.yaml``)."""

    nfeats: int = 135
    latent_dim: int = 256
    ff_size: int = 1024
    num_layers: int = 6
    num_heads: int = 4
    dropout: float = 0.1
    activation: Activation = "gelu"
    motion_branch: bool = True
    # Last P generated frames of the previous action that condition the next one.
    hist_frames: int = 5
    # false in the original: the history is the *generated* frames (not detached), not the ground truth.
    teacher_forcing: bool = False
    recons_reduction: ReconsReduction = "per_sample"
    # The original TEACH ran the motion encoder without lengths, so padded frames were attended to.
    # Fixed here (True); set False to reproduce the original behaviour.
    motion_encoder_masks_padding: bool = True
    # The original TextHist also built a second transformer stack (``motionTransEncoder``) it never used.
    # Only for reproducing the original's parameter count (20,838,791); it receives no gradient (under DDP
    # that needs find_unused_parameters=True).
    unused_motion_stack: bool = False
    losses: TeachLossWeights = field(default_factory=TeachLossWeights)
    lr: float = 7e-5

    def __post_init__(self) -> None:
        _check_transformer(self)
        if self.hist_frames < 0:
            raise ValueError(f"hist_frames must be >= 0, got {self.hist_frames}")

    @classmethod
    def paper(cls) -> TeachConfig:
        return cls()

    @classmethod
    def tiny(cls) -> TeachConfig:
        return cls(latent_dim=32, ff_size=64, num_layers=1, num_heads=2, lr=1e-3)


@dataclass
class MotionClipConfig:
    """MotionCLIP (paper: ``latent_dim 512``, ``num_layers 8``; defaults ff 1024, 4 heads, dropout 0.1, gelu).

    ``latent_dim`` must equal the text embedder's pooled width (the motion latent is aligned with it);
    ``None`` takes it from the embedder at build time.
    """

    nfeats: int = 135
    latent_dim: int | None = None
    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 4
    dropout: float = 0.1
    activation: Activation = "gelu"
    # MotionCLIP used ``--no-vertstrans``: the xyz loss compares root-centred joints without translation.
    joints_with_translation: bool = False
    losses: MotionClipLossWeights = field(default_factory=MotionClipLossWeights)
    lr: float = 1e-4

    def __post_init__(self) -> None:
        _check_transformer(self)

    @classmethod
    def paper(cls) -> MotionClipConfig:
        return cls(latent_dim=512)

    @classmethod
    def tiny(cls) -> MotionClipConfig:
        return cls(ff_size=64, num_layers=1, num_heads=2, lr=1e-3)


def transformer_arch(
    cfg: TemosConfig | TeachConfig | MotionClipConfig, latent_dim: int | None = None
) -> dict[str, object]:
    """Keyword arguments shared by every encoder/decoder stack of a backbone."""
    return dict(
        latent_dim=cfg.latent_dim if latent_dim is None else latent_dim,
        ff_size=cfg.ff_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        dropout=cfg.dropout,
        activation=cfg.activation,
    )


def _check_transformer(cfg: TemosConfig | TeachConfig | MotionClipConfig) -> None:
    for name in ("nfeats", "ff_size", "num_layers", "num_heads"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}")
    if cfg.latent_dim is not None and (cfg.latent_dim <= 0 or cfg.latent_dim % cfg.num_heads):
        raise ValueError(
            f"latent_dim {cfg.latent_dim} must be positive and divisible by num_heads {cfg.num_heads}"
        )
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
    for f in dataclasses.fields(cfg.losses):
        if getattr(cfg.losses, f.name) < 0:
            raise ValueError(f"losses.{f.name} must be >= 0, got {getattr(cfg.losses, f.name)}")
