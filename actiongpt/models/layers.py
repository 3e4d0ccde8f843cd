"""Shared layers: sinusoidal positional encoding, transformer stacks, the Gaussian from distribution tokens.

All tensors are batch-first (B, T, d). The original code was sequence-first; parameter shapes (and hence
counts) are identical.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Normal


class PositionalEncoding(nn.Module):
    """Sinusoidal encoding added to (B, T, d), followed by dropout (as in ACTOR/TEMOS/TEACH).

    The table is a non-persistent buffer: it is recomputed, not stored in checkpoints.
    """

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div_term = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequence of {x.shape[1]} positions exceeds the encoding's {self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))


def transformer_encoder(
    latent_dim: int, ff_size: int, num_layers: int, num_heads: int, dropout: float, activation: str
) -> nn.TransformerEncoder:
    """Post-norm encoder stack as built by the originals (no final norm)."""
    layer = nn.TransformerEncoderLayer(
        d_model=latent_dim,
        nhead=num_heads,
        dim_feedforward=ff_size,
        dropout=dropout,
        activation=activation,
        batch_first=True,
    )
    # Nested tensors would zero padded positions only in eval mode; keep train and eval numerics alike.
    return nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)


def transformer_decoder(
    latent_dim: int, ff_size: int, num_layers: int, num_heads: int, dropout: float, activation: str
) -> nn.TransformerDecoder:
    layer = nn.TransformerDecoderLayer(
        d_model=latent_dim,
        nhead=num_heads,
        dim_feedforward=ff_size,
        dropout=dropout,
        activation=activation,
        batch_first=True,
    )
    return nn.TransformerDecoder(layer, num_layers=num_layers)


def expand_token(token: Tensor, batch_size: int) -> Tensor:
    """A learnable (d,) token -> (B, 1, d)."""
    return token.expand(batch_size, -1)[:, None, :]


def gaussian(mu: Tensor, logvar: Tensor) -> Normal:
    """``Normal(mu, exp(logvar) ** 0.5)`` from the outputs at the two distribution-token positions."""
    return Normal(mu, (0.5 * logvar).exp())
