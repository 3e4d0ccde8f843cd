"""Motion encoder (ACTOR's action-agnostic encoder as used by TEMOS/TEACH; MotionCLIP's encoder too).

Linear(nfeats → latent) per frame, two learnable tokens in front, sinusoidal positions over the whole
sequence, a transformer encoder with a key-padding mask; the outputs at the two token positions are
``(mu, logvar)``. TEMOS/TEACH make a Gaussian of them; MotionCLIP keeps ``mu`` as its deterministic latent
(its second query token is still part of the input, as in the original).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from actiongpt.models.inputs import lengths_to_mask
from actiongpt.models.layers import PositionalEncoding, expand_token, gaussian, transformer_encoder


class MotionEncoder(nn.Module):
    def __init__(
        self,
        nfeats: int,
        latent_dim: int = 256,
        ff_size: int = 1024,
        num_layers: int = 6,
        num_heads: int = 4,
        dropout: float = 0.1,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.nfeats = nfeats
        self.skel_embedding = nn.Linear(nfeats, latent_dim)
        self.mu_token = nn.Parameter(torch.randn(latent_dim))
        self.logvar_token = nn.Parameter(torch.randn(latent_dim))
        self.sequence_pos_encoding = PositionalEncoding(latent_dim, dropout)
        self.seqTransEncoder = transformer_encoder(
            latent_dim, ff_size, num_layers, num_heads, dropout, activation
        )

    def encode(self, features: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """features (B, T, nfeats); lengths (B,) or None (= no padding mask, every frame attended)."""
        bs, nframes, _ = features.shape
        if lengths is None:
            mask = torch.ones(bs, nframes, dtype=torch.bool, device=features.device)
        else:
            mask = lengths_to_mask(lengths.to(features.device), nframes)
        x = self.skel_embedding(features)
        xseq = torch.cat((expand_token(self.mu_token, bs), expand_token(self.logvar_token, bs), x), dim=1)
        aug_mask = torch.cat((torch.ones(bs, 2, dtype=torch.bool, device=x.device), mask), dim=1)
        xseq = self.sequence_pos_encoding(xseq)
        final = self.seqTransEncoder(xseq, src_key_padding_mask=~aug_mask)
        return final[:, 0], final[:, 1]

    def forward(self, features: Tensor, lengths: Tensor | None) -> Normal:
        return gaussian(*self.encode(features, lengths))
