"""TEACH's past-conditioned text encoder (``TextHist`` of the original).

Token sequence ``[mu, logvar, H_1 … H_P, SEP, text tokens]`` (without history ``[mu, logvar, SEP, text]``):
the history frames (the last P generated feature frames of the previous action) go through
Linear(nfeats → latent), their own positional encoding and then the *same* transformer as the text, alone;
the result is placed into the full sequence, which goes through that transformer again. Positions are added
to the text tokens alone and to the history alone (each from 0); ``mu``, ``logvar`` and ``SEP`` get none.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from actiongpt.models.layers import PositionalEncoding, expand_token, gaussian, transformer_encoder


class TextHistEncoder(nn.Module):
    def __init__(
        self,
        text_dim: int,
        nfeats: int,
        hist_frames: int = 5,
        latent_dim: int = 256,
        ff_size: int = 1024,
        num_layers: int = 6,
        num_heads: int = 4,
        dropout: float = 0.1,
        activation: str = "gelu",
        unused_motion_stack: bool = False,
    ) -> None:
        super().__init__()
        self.text_dim = text_dim
        self.nfeats = nfeats
        self.hist_frames = hist_frames
        self.projection = nn.Sequential(nn.ReLU(), nn.Linear(text_dim, latent_dim))
        self.mu_token = nn.Parameter(torch.randn(latent_dim))
        self.logvar_token = nn.Parameter(torch.randn(latent_dim))
        # (sic) the original's spelling, kept so its checkpoints load by name.
        self.seperation_token = nn.Parameter(torch.randn(latent_dim))
        self.sequence_pos_encoding = PositionalEncoding(latent_dim, dropout)
        self.seqTransEncoder = transformer_encoder(
            latent_dim, ff_size, num_layers, num_heads, dropout, activation
        )
        self.skel_embedding = nn.Linear(nfeats, latent_dim)
        if unused_motion_stack:
            # Built but never called by the original (dead weights); only to reproduce its parameter count.
            self.motionTransEncoder = transformer_encoder(
                latent_dim, ff_size, num_layers, num_heads, dropout, activation
            )

    def forward(self, tokens: Tensor, mask: Tensor, hframes: Tensor | None = None) -> Normal:
        """tokens (B, L, D), mask (B, L), hframes (B, P, nfeats) or None -> Normal over (B, latent)."""
        x = self.sequence_pos_encoding(self.projection(tokens))
        bs = x.shape[0]
        parts = [expand_token(self.mu_token, bs), expand_token(self.logvar_token, bs)]
        if hframes is not None:
            if hframes.dim() != 3 or hframes.shape[0] != bs or hframes.shape[2] != self.nfeats:
                raise ValueError(f"hframes must be ({bs}, P, {self.nfeats}), got {tuple(hframes.shape)}")
            h = self.sequence_pos_encoding(self.skel_embedding(hframes))
            parts.append(self.seqTransEncoder(h))
        parts.append(expand_token(self.seperation_token, bs))
        n_extra = sum(p.shape[1] for p in parts)
        xseq = torch.cat([*parts, x], dim=1)
        aug_mask = torch.cat((torch.ones(bs, n_extra, dtype=torch.bool, device=x.device), mask), dim=1)
        final = self.seqTransEncoder(xseq, src_key_padding_mask=~aug_mask)
        return gaussian(final[:, 0], final[:, 1])
