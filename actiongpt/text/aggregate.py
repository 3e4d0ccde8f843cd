"""Aggregators of the k description embeddings of one action label (paper §2, reference §3).

Token states (TEMOS/TEACH path), descriptions i = 1..k with n_i tokens each, G = max n_i:

- ``"original"``: the original code's element-wise mean **by position** over the k sequences,
  ``agg[p] = (1/k) sum_i h_i[p]``, with the union of the k masks (length G). It is unmasked: a description
  shorter than p still counts in the denominator. In the original, its padded positions hold DistilBERT's
  states at ``[PAD]`` tokens (which depend on how far the whole batch was padded); we store no padding, so
  from unpadded inputs those positions contribute **zeros**. :func:`aggregate_padded` takes padded tensors
  and reproduces the original exactly when given its padded states.
- ``"masked_mean"``: at each position, the mean over the descriptions that have a token there,
  ``agg[p] = sum_i m_i[p] h_i[p] / sum_i m_i[p]``; same union mask.

Both are position-wise: position p of different descriptions holds different words (a property of the
method, kept). Pooled vectors (MotionCLIP's CLIP path) are averaged by both aggregators: the paper's
"mean of v_i" (un-normalised, as the original).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

AGGREGATORS = ("original", "masked_mean")


def check_aggregator(name: str) -> str:
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; choose one of {AGGREGATORS}")
    return name


def aggregate_tokens(tokens: Sequence[np.ndarray], method: str = "original") -> np.ndarray:
    """Aggregate k unpadded token arrays (n_i, D) into (G, D) float32, G = max n_i (all G positions valid)."""
    check_aggregator(method)
    if len(tokens) == 0:
        raise ValueError("cannot aggregate zero descriptions")
    dims = {t.shape[1] for t in tokens}
    if len(dims) != 1 or any(t.ndim != 2 for t in tokens):
        raise ValueError(f"token arrays must be (n_i, D) with one D, got shapes {[t.shape for t in tokens]}")
    length = max(t.shape[0] for t in tokens)
    total = np.zeros((length, dims.pop()), dtype=np.float32)
    count = np.zeros((length, 1), dtype=np.float32)
    for t in tokens:
        total[: t.shape[0]] += t.astype(np.float32, copy=False)
        count[: t.shape[0]] += 1.0
    if method == "original":
        return total / np.float32(len(tokens))
    return total / np.maximum(count, 1.0)


def aggregate_pooled(pooled: np.ndarray) -> np.ndarray:
    """Mean of k pooled vectors (k, Dp) -> (Dp,) float32."""
    pooled = np.asarray(pooled)
    if pooled.ndim != 2 or pooled.shape[0] == 0:
        raise ValueError(f"pooled must be (k, Dp) with k >= 1, got {pooled.shape}")
    return pooled.astype(np.float32).mean(0)


def aggregate_padded(
    hidden: torch.Tensor, mask: torch.Tensor, method: str = "original"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aggregate padded groups: hidden (..., k, L, D), mask (..., k, L) -> ((..., L, D), union mask (..., L)).

    With ``"original"`` the padded positions' values enter the mean exactly as in the original code
    (``sum / k`` over the raw padded states).
    """
    check_aggregator(method)
    if hidden.dim() < 3 or mask.shape != hidden.shape[:-1]:
        raise ValueError(
            f"hidden (..., k, L, D) and mask (..., k, L) mismatch: {hidden.shape} vs {mask.shape}"
        )
    mask = mask.bool()
    union = mask.any(dim=-2)
    if method == "original":
        return hidden.mean(dim=-3), union
    m = mask.to(hidden.dtype).unsqueeze(-1)
    agg = (hidden * m).sum(dim=-3) / m.sum(dim=-3).clamp_min(1.0)
    return agg, union
