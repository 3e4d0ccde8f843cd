"""Aggregators of the k description embeddings of one action label (paper §2; the original code's
position-wise mean, ``aggregate_tokens(..., "original")``, is documented there).

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
method, kept). The backbone's own text transformer then attends over G (~130) tokens instead of the label's
~5, which costs TEMOS/TEACH about 30 % more per training step even with precomputed embeddings
(``bench/bench_train.py --parts agpt``).

Two compact aggregators (not in the paper's code; opt-in, compared with ``original`` by ``actiongpt results``)
take the paper's ``v_aggr = mean(v_i)`` with a sentence-level ``v_i``: each description's mean token state
``s_i = (1/n_i) sum_p h_i[p]`` (the mean pooling sentence encoders are trained for; unnormalised, so on the
scale of the token states the model otherwise sees):

- ``"sentence_mean"``: one token, ``mean_i s_i``: (1, D);
- ``"sentences"``: k tokens, ``s_1 … s_k`` in description order: (k, D).

Pooled vectors (MotionCLIP's CLIP path) are averaged by every aggregator: the paper's "mean of v_i"
(un-normalised, as the original).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

POSITIONWISE = ("original", "masked_mean")
SENTENCE_LEVEL = ("sentence_mean", "sentences")
AGGREGATORS = POSITIONWISE + SENTENCE_LEVEL


def check_aggregator(name: str) -> str:
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; choose one of {AGGREGATORS}")
    return name


def aggregate_tokens(tokens: Sequence[np.ndarray], method: str = "original") -> np.ndarray:
    """Aggregate k unpadded token arrays (n_i, D) into (L, D) float32, all L positions valid: L = G = max n_i
    for the position-wise aggregators, 1 for ``sentence_mean``, k for ``sentences``."""
    check_aggregator(method)
    if len(tokens) == 0:
        raise ValueError("cannot aggregate zero descriptions")
    if any(t.ndim != 2 for t in tokens) or len({t.shape[1] for t in tokens}) != 1:
        raise ValueError(f"token arrays must be (n_i, D) with one D, got shapes {[t.shape for t in tokens]}")
    if method in SENTENCE_LEVEL:
        if any(t.shape[0] == 0 for t in tokens):
            raise ValueError(f"a description without tokens has no mean: shapes {[t.shape for t in tokens]}")
        means = np.stack([t.astype(np.float32, copy=False).mean(0) for t in tokens])
        return means if method == "sentences" else means.mean(0, keepdims=True)
    length = max(t.shape[0] for t in tokens)
    total = np.zeros((length, tokens[0].shape[1]), dtype=np.float32)
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
    """Aggregate padded groups: hidden (..., k, L, D), mask (..., k, L) -> ((..., L', D), mask (..., L')).

    Position-wise: L' = L and the mask is the union of the k masks. With ``"original"`` the padded positions'
    values enter the mean exactly as in the original code (``sum / k`` over the raw padded states).
    Sentence-level: padded positions are ignored; L' = 1 (``sentence_mean``) or k (``sentences``), all valid.
    """
    check_aggregator(method)
    if hidden.dim() < 3 or mask.shape != hidden.shape[:-1]:
        raise ValueError(
            f"hidden (..., k, L, D) and mask (..., k, L) mismatch: {hidden.shape} vs {mask.shape}"
        )
    mask = mask.bool()
    if method in SENTENCE_LEVEL:
        m = mask.to(hidden.dtype).unsqueeze(-1)
        means = (hidden * m).sum(dim=-2) / m.sum(dim=-2).clamp_min(1.0)  # (..., k, D)
        if method == "sentence_mean":
            means = means.mean(dim=-2, keepdim=True)
        return means, torch.ones(means.shape[:-1], dtype=torch.bool, device=means.device)
    union = mask.any(dim=-2)
    if method == "original":
        return hidden.mean(dim=-3), union
    m = mask.to(hidden.dtype).unsqueeze(-1)
    agg = (hidden * m).sum(dim=-3) / m.sum(dim=-3).clamp_min(1.0)
    return agg, union
