"""Loss terms of the three backbones, each a plain function of tensors (unweighted).

TEMOS/TEACH (``teach/model/losses``): SmoothL1 reconstruction (two reductions, see ``ReconsReduction``),
``KL(q ‖ p).mean()`` over batch and latent dimensions, SmoothL1 latent manifold.
MotionCLIP (``src/models/tools/losses.py``, ``modeltype/motionclip.py``): masked MSE, masked MSE of frame
differences, ``mean(1 − cos)`` between normalised vectors.

Under a training step context (:mod:`actiongpt.models.step_context`) every term returns this micro-batch's
share of the term over the whole global batch: the same sums divided by the global denominators (samples,
valid frames, or the padded size at the global batch's longest sequence). The shares of all micro-batches
on all ranks add up to the term computed on the global batch at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Normal, kl_divergence

from actiongpt.models.inputs import lengths_to_mask
from actiongpt.models.step_context import current


def recons_loss(
    output: Tensor, target: Tensor, lengths: Tensor, reduction: str, lengths_key: str = "lengths"
) -> Tensor:
    """SmoothL1 between decoded and ground-truth features (B, T, F) over the valid frames.

    ``"padded"``: mean over the whole (B, max(lengths), F) tensor with padding zeroed on both sides (padding
    adds 0 to the sum but counts in the denominator, as ``torch.nn.SmoothL1Loss`` on the padded batch did).
    ``"per_sample"``: mean over each sample's valid frames, then over the batch (TEACH's ``Recons``).
    ``lengths_key``: the batch key ``lengths`` came from (global normalisation under a step context).
    """
    t_max = int(lengths.max())
    output, target = output[:, :t_max], target[:, :t_max]
    mask = lengths_to_mask(lengths.to(output.device), t_max)[..., None].to(output.dtype)
    ctx = current()
    if reduction == "padded":
        if ctx is not None:
            total = F.smooth_l1_loss(output * mask, target * mask, reduction="sum")
            return total / (ctx.samples * ctx.max_len_of(lengths_key) * output.shape[-1])
        return F.smooth_l1_loss(output * mask, target * mask, reduction="mean")
    if reduction == "per_sample":
        per_elem = F.smooth_l1_loss(output, target, reduction="none") * mask
        denom = lengths.to(output.device, output.dtype) * output.shape[-1]
        per_sample = per_elem.sum(dim=(1, 2)) / denom
        return per_sample.sum() / ctx.samples if ctx is not None else per_sample.mean()
    raise ValueError(f"unknown reconstruction reduction {reduction!r} (use 'padded' or 'per_sample')")


def kl_loss(q: Distribution, p: Distribution) -> Tensor:
    """``KL(q ‖ p)`` averaged over batch and latent dimensions (not summed), as the original ``KLLoss``."""
    kl = kl_divergence(q, p)
    ctx = current()
    return kl.sum() / (ctx.samples * kl[0].numel()) if ctx is not None else kl.mean()


def standard_normal_like(dist: Normal) -> Normal:
    return Normal(torch.zeros_like(dist.loc), torch.ones_like(dist.scale))


def latent_manifold_loss(z_text: Tensor, z_motion: Tensor) -> Tensor:
    """SmoothL1 between the two latents (B, d), mean over everything (equal to TEACH's per-sample mean)."""
    ctx = current()
    if ctx is not None:
        return F.smooth_l1_loss(z_text, z_motion, reduction="sum") / (ctx.samples * z_text[0].numel())
    return F.smooth_l1_loss(z_text, z_motion, reduction="mean")


def masked_mse(
    output: Tensor, target: Tensor, mask: Tensor, lengths_key: str = "lengths", _per_sample_less: int = 0
) -> Tensor:
    """MSE over the valid frames only: output/target (B, T, ...), mask (B, T) bool."""
    ctx = current()
    if ctx is not None:
        frames = ctx.frames_of(lengths_key) - _per_sample_less * ctx.samples
        total = F.mse_loss(output[mask], target[mask], reduction="sum")
        return total / (max(frames, 1) * math.prod(output.shape[2:]))
    return F.mse_loss(output[mask], target[mask], reduction="mean")


def masked_velocity_mse(output: Tensor, target: Tensor, mask: Tensor, lengths_key: str = "lengths") -> Tensor:
    """MSE of frame-to-frame differences, counting difference t−1→t where frame t is valid (t ≥ 1)."""
    d_out = output[:, 1:] - output[:, :-1]
    d_tgt = target[:, 1:] - target[:, :-1]
    # a sample of n >= 1 frames has n - 1 differences
    return masked_mse(d_out, d_tgt, mask[:, 1:], lengths_key, _per_sample_less=1)


def cosine_loss(text_features: Tensor, motion_features: Tensor) -> Tensor:
    """``mean(1 − cos(t/|t|, z/|z|))`` (MotionCLIP's ``text_cosine``; eps 1e-6 as its CosineSimilarity)."""
    t = text_features / text_features.norm(dim=-1, keepdim=True)
    z = motion_features / motion_features.norm(dim=-1, keepdim=True)
    per_sample = 1 - F.cosine_similarity(t, z, dim=-1, eps=1e-6)
    ctx = current()
    return per_sample.sum() / ctx.samples if ctx is not None else per_sample.mean()


class WeightedTerms:
    """Accumulates weighted loss terms under their original names; ``result()`` adds ``loss`` (the total)."""

    def __init__(self) -> None:
        self.terms: dict[str, Tensor] = {}

    def add(self, name: str, weight: float, value: Tensor) -> None:
        if name in self.terms:
            raise KeyError(f"loss term {name!r} added twice")
        self.terms[name] = weight * value

    def result(self) -> dict[str, Tensor]:
        if not self.terms:
            raise ValueError("every loss weight is 0: nothing to optimise")
        total = torch.stack(list(self.terms.values())).sum()
        return {"loss": total, **self.terms}
