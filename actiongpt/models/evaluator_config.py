"""Config of the contrastive text-motion evaluator (``model=evaluator``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class EvaluatorConfig:
    """A TMR-style retrieval model: motion and text transformers into one unit-norm embedding space.

    ``paper()`` is a TMR-sized model (latent 256, 6 layers); ``tiny()`` a CPU model for tests and the demo.
    """

    nfeats: int = 135
    latent_dim: int = 256
    ff_size: int = 1024
    num_layers: int = 6
    num_heads: int = 4
    dropout: float = 0.1
    activation: Literal["gelu", "relu"] = "gelu"
    embed_dim: int = 256  # width of the shared, L2-normalised embedding space
    temperature: float = 0.1  # InfoNCE softmax temperature (TMR's value)
    # two texts of a batch whose pooled embeddings have cosine >= this are near-duplicates: neither is a
    # negative for the other's motion (same labels in a batch would otherwise be pushed apart)
    duplicate_threshold: float = 0.9
    lr: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("nfeats", "latent_dim", "ff_size", "num_layers", "num_heads", "embed_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.latent_dim % self.num_heads:
            raise ValueError(f"latent_dim {self.latent_dim} must be divisible by num_heads {self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not -1.0 <= self.duplicate_threshold <= 1.0:
            raise ValueError(
                f"duplicate_threshold must be a cosine in [-1, 1], got {self.duplicate_threshold}"
            )

    @classmethod
    def paper(cls) -> EvaluatorConfig:
        return cls()

    @classmethod
    def tiny(cls) -> EvaluatorConfig:
        return cls(latent_dim=32, ff_size=64, num_layers=1, num_heads=2, embed_dim=32, dropout=0.0, lr=1e-3)
