"""TEACH: TEMOS with a past-conditioned text encoder, trained on pairs of actions in two passes.

Training step (``allsplit_step`` with ``loss_on_transition: true``):
1. text₀ → z₀ → decode ``lengths_0`` frames;
2. the last ``hist_frames`` generated frames of that output (not detached; ground truth with
   ``teacher_forcing``) condition text₁ → z₁ → decode ``lengths_1`` frames, which hold the transition
   followed by action 2 (the transition is generated as part of the second action);
3. motion branch: the ground-truth ``motion_0`` and ``motion_1`` (transition + action 2) are encoded without
   history and decoded.
Every TEMOS term is computed for both actions (suffixes ``_0``/``_1``), weights in ``TeachLossWeights``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Normal

from actiongpt.models import losses as L
from actiongpt.models.base import MotionModel
from actiongpt.models.configs import TeachConfig, transformer_arch
from actiongpt.models.inputs import TextBatch, check_motion, check_text, require, text_from_batch
from actiongpt.models.motion_decoder import MotionDecoder
from actiongpt.models.motion_encoder import MotionEncoder
from actiongpt.models.sampling import sample_latent
from actiongpt.models.text_hist import TextHistEncoder


def last_frames(features: Tensor, lengths: Tensor, n: int) -> Tensor:
    """The last ``n`` valid frames of each padded sequence: (B, T, F) -> (B, n, F)."""
    if int(lengths.min()) < n:
        raise ValueError(f"every action needs at least {n} frames for the history, got {int(lengths.min())}")
    idx = lengths.to(features.device)[:, None] - n + torch.arange(n, device=features.device)[None, :]
    return torch.gather(features, 1, idx[..., None].expand(-1, -1, features.shape[-1]))


class TEACH(MotionModel):
    name = "teach"
    variational = True

    def __init__(self, cfg: TeachConfig, text_dim: int) -> None:
        super().__init__(cfg.nfeats, text_dim)
        self.cfg = cfg
        arch = transformer_arch(cfg)
        self.latent_dim = cfg.latent_dim
        self.hist_frames = cfg.hist_frames
        self.textencoder = TextHistEncoder(
            text_dim,
            cfg.nfeats,
            hist_frames=cfg.hist_frames,
            unused_motion_stack=cfg.unused_motion_stack,
            **arch,
        )
        if cfg.motion_branch:
            self.motionencoder = MotionEncoder(cfg.nfeats, **arch)
        self.motiondecoder = MotionDecoder(cfg.nfeats, **arch)

    # -- building blocks ---------------------------------------------------------------------------------
    def encode_text(self, text: TextBatch, hframes: Tensor | None = None) -> Normal:
        return self.textencoder(text.tokens, text.mask, hframes)

    def decode(self, z: Tensor, lengths: Tensor, nframes: int | None = None) -> Tensor:
        return self.motiondecoder(z, lengths, nframes)

    def text_to_latent(
        self,
        text: TextBatch,
        *,
        hframes: Tensor | None = None,
        mean: bool = False,
        fact: float = 1.0,
        noise: Tensor | None = None,
    ) -> Tensor:
        check_text(text, self.text_dim, len(text), self.name, need_tokens=True)
        return sample_latent(self.encode_text(text, hframes), mean=mean, fact=fact, noise=noise)

    def history(self, features: Tensor, lengths: Tensor) -> Tensor | None:
        """The frames that condition the next action (None when ``hist_frames`` is 0)."""
        if self.hist_frames == 0:
            return None
        return last_frames(features, lengths, self.hist_frames)

    # -- training ------------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Loss dict for a pairs batch (``actiongpt.models.batch``: by the names with suffixes _0/_1)."""
        need = [f"{k}_{i}" for i in (0, 1) for k in ("motion", "lengths", "text", "text_mask")]
        require(batch, need, self.name)
        cfg, w = self.cfg, self.cfg.losses
        motions, lengths, texts = [], [], []
        for i in (0, 1):
            m, n = batch[f"motion_{i}"], batch[f"lengths_{i}"]
            check_motion(m, n, self.nfeats, f"{self.name} (action {i})")
            n = n.to(m.device)
            motions.append(m[:, : int(n.max())])
            lengths.append(n)
            text = text_from_batch(batch, f"_{i}")
            check_text(text, self.text_dim, m.shape[0], f"{self.name} (action {i})", need_tokens=True)
            texts.append(text)
        if motions[0].shape[0] != motions[1].shape[0]:
            raise ValueError(f"{self.name}: motion_0 and motion_1 have different batch sizes")

        # Text branch: two passes, the second conditioned on the first's generated last frames.
        dist_t, z_t, out_t = [], [], []
        hframes = None
        for i in (0, 1):
            d = self.encode_text(texts[i], hframes)
            z = sample_latent(d)
            out = self.decode(z, lengths[i], motions[i].shape[1])
            dist_t.append(d)
            z_t.append(z)
            out_t.append(out)
            if i == 0:
                source = motions[0] if cfg.teacher_forcing else out
                hframes = self.history(source, lengths[0])

        terms = L.WeightedTerms()
        for i in (0, 1):
            if w.recons_text2rfeats:
                terms.add(
                    f"recons_text2rfeats_{i}",
                    w.recons_text2rfeats,
                    L.recons_loss(out_t[i], motions[i], lengths[i], cfg.recons_reduction, f"lengths_{i}"),
                )
        ref = L.standard_normal_like(dist_t[0])
        if cfg.motion_branch:
            dist_m, z_m = [], []
            for i in (0, 1):
                # The original passed no lengths here (padding attended); the flag keeps that behaviour.
                enc_lengths = lengths[i] if cfg.motion_encoder_masks_padding else None
                d = self.motionencoder(motions[i], enc_lengths)
                z = sample_latent(d)
                dist_m.append(d)
                z_m.append(z)
                if w.recons_rfeats2rfeats:
                    out = self.decode(z, lengths[i], motions[i].shape[1])
                    terms.add(
                        f"recons_rfeats2rfeats_{i}",
                        w.recons_rfeats2rfeats,
                        L.recons_loss(out, motions[i], lengths[i], cfg.recons_reduction, f"lengths_{i}"),
                    )
            for i in (0, 1):
                if w.kl_text2motion:
                    terms.add(f"kl_text2motion_{i}", w.kl_text2motion, L.kl_loss(dist_t[i], dist_m[i]))
                if w.kl_motion2text:
                    terms.add(f"kl_motion2text_{i}", w.kl_motion2text, L.kl_loss(dist_m[i], dist_t[i]))
        for i in (0, 1):
            if w.kl_text:
                terms.add(f"kl_text_{i}", w.kl_text, L.kl_loss(dist_t[i], ref))
        if cfg.motion_branch:
            for i in (0, 1):
                if w.kl_motion:
                    terms.add(f"kl_motion_{i}", w.kl_motion, L.kl_loss(dist_m[i], ref))
            for i in (0, 1):
                if w.latent_manifold:
                    terms.add(
                        f"latent_manifold_{i}", w.latent_manifold, L.latent_manifold_loss(z_t[i], z_m[i])
                    )
        return terms.result()
