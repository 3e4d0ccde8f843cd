"""A small VAE over the real shard batch schema (single actions) for the elastic-training tests.

It uses the library's pieces whose behaviour the split of a global batch could change: the padded
per-frame reconstruction loss, the KL term, reparameterised latent sampling and dropout (through the
positional encoding), so a run on 1, 2, 3 or 4 ranks exercises the real normalisation and keyed randomness.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from actiongpt.models import losses as L
from actiongpt.models.layers import PositionalEncoding, gaussian
from actiongpt.models.sampling import sample_latent

NFEATS = 135


class ShardToyVAE(nn.Module):
    global_batch_loss = True

    def __init__(self, text_dim: int, latent: int = 16) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Linear(text_dim, 32), nn.GELU(), nn.Dropout(0.1), nn.Linear(32, 2 * latent)
        )
        self.pos = PositionalEncoding(latent, dropout=0.1)
        self.dec = nn.Linear(latent, NFEATS)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        lengths = batch["lengths"]
        t_max = int(lengths.max())
        motion = batch["motion"][:, :t_max]
        mu, logvar = self.enc(batch["text_pooled"]).chunk(2, dim=-1)
        dist = gaussian(mu, logvar)
        z = sample_latent(dist)
        frames = self.pos(z[:, None, :].expand(-1, t_max, -1))
        out = self.dec(frames)
        terms = L.WeightedTerms()
        terms.add("recons", 1.0, L.recons_loss(out, motion, lengths, "padded"))
        terms.add("kl", 1e-3, L.kl_loss(dist, L.standard_normal_like(dist)))
        return terms.result()
