"""Motion decoder (ACTOR/TEMOS/TEACH/MotionCLIP): time queries attending to a one-token memory, the latent.

Queries are zeros + sinusoidal positions for every frame; a transformer decoder (target key-padding mask
hides padded frames) attends to ``z``; Linear(latent → nfeats); padded output frames are set to 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actiongpt.models.inputs import lengths_to_mask
from actiongpt.models.layers import PositionalEncoding, transformer_decoder


class MotionDecoder(nn.Module):
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
        self.latent_dim = latent_dim
        self.sequence_pos_encoding = PositionalEncoding(latent_dim, dropout)
        self.seqTransDecoder = transformer_decoder(
            latent_dim, ff_size, num_layers, num_heads, dropout, activation
        )
        self.final_layer = nn.Linear(latent_dim, nfeats)

    def forward(self, z: Tensor, lengths: Tensor, nframes: int | None = None) -> Tensor:
        """z (B, latent), lengths (B,) -> (B, nframes or max(lengths), nfeats), zero past each length."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {tuple(z.shape)}")
        mask = lengths_to_mask(lengths.to(z.device), nframes)
        bs, nframes = mask.shape
        queries = self.sequence_pos_encoding(
            torch.zeros(bs, nframes, self.latent_dim, device=z.device, dtype=z.dtype)
        )
        output = self.seqTransDecoder(tgt=queries, memory=z[:, None, :], tgt_key_padding_mask=~mask)
        return self.final_layer(output) * mask[..., None].to(output.dtype)
