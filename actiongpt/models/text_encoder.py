"""TEMOS text encoder over precomputed per-token embeddings (``distilbert_transformer.py`` of the original).

ReLU → Linear(D → latent) on the frozen embedder's token states, two learnable distribution tokens
(``mu_token``, ``logvar_token``) in front, sinusoidal positions over the whole sequence (tokens included),
a transformer encoder with a key-padding mask (the two tokens are never masked), and ``Normal(mu, std)``
read at the two token positions. The frozen text model itself is not part of this module: its embeddings
come precomputed in the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from actiongpt.models.layers import PositionalEncoding, expand_token, gaussian, transformer_encoder


class TextEncoder(nn.Module):
    def __init__(
        self,
        text_dim: int,
        latent_dim: int = 256,
        ff_size: int = 1024,
        num_layers: int = 6,
        num_heads: int = 4,
        dropout: float = 0.1,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.text_dim = text_dim
        # Parameter names follow the original so its checkpoints map one to one.
        self.projection = nn.Sequential(nn.ReLU(), nn.Linear(text_dim, latent_dim))
        self.mu_token = nn.Parameter(torch.randn(latent_dim))
        self.logvar_token = nn.Parameter(torch.randn(latent_dim))
        self.sequence_pos_encoding = PositionalEncoding(latent_dim, dropout)
        self.seqTransEncoder = transformer_encoder(
            latent_dim, ff_size, num_layers, num_heads, dropout, activation
        )

    def forward(self, tokens: Tensor, mask: Tensor) -> Normal:
        """tokens (B, L, D), mask (B, L) bool True = valid -> Normal over (B, latent)."""
        x = self.projection(tokens)
        bs = x.shape[0]
        xseq = torch.cat((expand_token(self.mu_token, bs), expand_token(self.logvar_token, bs), x), dim=1)
        aug_mask = torch.cat((torch.ones(bs, 2, dtype=torch.bool, device=x.device), mask), dim=1)
        xseq = self.sequence_pos_encoding(xseq)
        final = self.seqTransEncoder(xseq, src_key_padding_mask=~aug_mask)
        return gaussian(final[:, 0], final[:, 1])
