"""The contrastive text-motion evaluator: what R-precision, FID, diversity and MM-Dist are measured with.

A motion encoder over the 135-d features (normalised with the training statistics it stores) and a text
encoder over the stored per-token text embeddings (label or aggregated descriptions), both the TEMOS
transformer encoders read at their first token, projected into one space and L2-normalised. Trained with a
symmetric InfoNCE loss (text->motion and motion->text cross-entropy over a batch's similarity matrix). Texts
whose pooled embeddings are near-duplicates of the true text (cosine >= ``duplicate_threshold``: the same
label twice in a batch) are masked out as negatives, as TMR does: pushing apart two motions of "walk" only
teaches the model noise.

TEACH pair shards train it too: each action of a pair is an item (its frames without the transition).
Negatives are the rank's own micro-batch (no cross-rank gather in the loss).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actiongpt.models.base import MotionModel
from actiongpt.models.evaluator_config import EvaluatorConfig
from actiongpt.models.inputs import TextBatch, check_motion, check_text, require, text_from_batch
from actiongpt.models.motion_encoder import MotionEncoder
from actiongpt.models.text_encoder import TextEncoder
from actiongpt.motion.features import normalize


def duplicate_mask(pooled: Tensor, threshold: float) -> Tensor:
    """(B, B) bool, True where texts i != j are near-duplicates (cosine of pooled embeddings >= threshold)."""
    unit = F.normalize(pooled.float(), dim=-1)
    dup = unit @ unit.T >= threshold
    dup.fill_diagonal_(False)
    return dup


def info_nce(text: Tensor, motion: Tensor, temperature: float, ignore: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE of matched unit embeddings (B, E); ``ignore`` (B, B) masks negatives out."""
    logits = text @ motion.T / temperature
    if ignore is not None:
        logits = logits.masked_fill(ignore, float("-inf"))
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class ContrastiveEvaluator(MotionModel):
    name = "evaluator"
    variational = False

    def __init__(self, cfg: EvaluatorConfig, text_dim: int) -> None:
        super().__init__(cfg.nfeats, text_dim)
        self.cfg = cfg
        arch: dict[str, Any] = dict(
            latent_dim=cfg.latent_dim,
            ff_size=cfg.ff_size,
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            dropout=cfg.dropout,
            activation=cfg.activation,
        )
        self.motionencoder = MotionEncoder(cfg.nfeats, **arch)
        self.textencoder = TextEncoder(text_dim, **arch)
        self.motion_proj = nn.Linear(cfg.latent_dim, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.latent_dim, cfg.embed_dim)

    # -- embeddings ----------------------------------------------------------------------------------------
    def embed_motion(self, motion: Tensor, lengths: Tensor) -> Tensor:
        """NORMALISED features (B, T, nfeats) -> unit embeddings (B, E)."""
        mu, _ = self.motionencoder.encode(motion, lengths.to(motion.device))
        return F.normalize(self.motion_proj(mu), dim=-1)

    def embed_features(self, features: Tensor, lengths: Tensor) -> Tensor:
        """PHYSICAL (unnormalised) features (B, T, nfeats), e.g. generated ones -> unit embeddings (B, E)."""
        self.require_feature_stats("embedding unnormalised features")
        mean, std = self.feature_mean.to(features), self.feature_std.to(features)
        return self.embed_motion(normalize(features, mean, std), lengths)

    def embed_text(self, text: TextBatch) -> Tensor:
        """Per-token text embeddings -> unit embeddings (B, E)."""
        check_text(text, self.text_dim, len(text), self.name, need_tokens=True)
        assert text.tokens is not None and text.mask is not None
        dist = self.textencoder(text.tokens.to(self.text_proj.weight), text.mask)
        return F.normalize(self.text_proj(dist.loc), dim=-1)

    # -- training ------------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """InfoNCE loss of a batch of single actions, or of TEACH pairs (each action of a pair is an item:
        the first action's frames, and the second's after the transition); also the batch's top-1
        text->motion retrieval accuracy."""
        motion, lengths, text, pooled = self._items(batch)
        m = self.embed_motion(motion, lengths)
        t = self.embed_text(text)
        ignore = duplicate_mask(pooled.to(m.device), self.cfg.duplicate_threshold)
        loss = info_nce(t, m, self.cfg.temperature, ignore)
        with torch.no_grad():
            sim = (t @ m.T).masked_fill(ignore, float("-inf"))
            acc = (sim.argmax(1) == torch.arange(len(sim), device=sim.device)).float().mean()
        return {"loss": loss, "info_nce": loss.detach(), "t2m_top1": acc}

    def _items(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, TextBatch, Tensor]:
        """(motion (N, T, F), lengths (N,), text, pooled text (N, Dp)) of the batch's actions."""
        if "motion_0" not in batch:
            require(batch, ["motion", "lengths", "text", "text_mask", "text_pooled"], self.name)
            motion, lengths = batch["motion"], batch["lengths"]
            check_motion(motion, lengths, self.nfeats, self.name)
            lengths = lengths.to(motion.device)
            return motion[:, : int(lengths.max())], lengths, text_from_batch(batch), batch["text_pooled"]
        keys = ("motion", "lengths", "text", "text_mask", "text_pooled")
        require(batch, ["transition_lengths", *(f"{k}_{j}" for j in (0, 1) for k in keys)], self.name)
        m0, l0 = batch["motion_0"], batch["lengths_0"].to(batch["motion_0"].device)
        m1, l1 = batch["motion_1"], batch["lengths_1"].to(m0.device)
        check_motion(m0, l0, self.nfeats, self.name)
        check_motion(m1, l1, self.nfeats, self.name)
        tr = batch["transition_lengths"].to(m0.device)
        l1 = (l1 - tr).clamp_min(1)  # the second action without its transition frames
        width = int(torch.cat([l0, l1]).max())
        t = torch.arange(width, device=m0.device)[None, :]
        idx = (tr[:, None] + t).clamp(max=m1.shape[1] - 1)
        a1 = m1.gather(1, idx[..., None].expand(-1, -1, m1.shape[-1])) * (t < l1[:, None])[..., None]
        a0 = torch.zeros_like(a1)
        n0 = min(width, m0.shape[1])
        a0[:, :n0] = m0[:, :n0]
        t0, t1 = text_from_batch(batch, "_0"), text_from_batch(batch, "_1")
        width_t = max(t0.tokens.shape[1], t1.tokens.shape[1])  # type: ignore[union-attr]
        tokens = torch.cat([_pad(t0.tokens, width_t), _pad(t1.tokens, width_t)])  # type: ignore[arg-type]
        mask = torch.cat([_pad(t0.mask, width_t), _pad(t1.mask, width_t)])  # type: ignore[arg-type]
        pooled = torch.cat([batch["text_pooled_0"], batch["text_pooled_1"]])
        return torch.cat([a0, a1]), torch.cat([l0, l1]), TextBatch(tokens, mask), pooled


def _pad(x: Tensor, width: int) -> Tensor:
    """Zero-pad dim 1 of (B, L, ...) to ``width`` (False for a bool mask)."""
    if x.shape[1] == width:
        return x
    pad = torch.zeros((x.shape[0], width - x.shape[1], *x.shape[2:]), dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], 1)
