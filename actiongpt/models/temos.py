"""TEMOS (as in the TEACH codebase that Action-GPT-TEMOS forks): text VAE + motion VAE + shared decoder.

Training step (``allsplit_step``): text → Normal → rsample z_T → decode; with the motion branch, the ground
truth → Normal → z_M → decode; losses (weights in ``TemosLossWeights``):
``recons_text2rfeats``, ``recons_rfeats2rfeats``, ``kl_text2motion`` = KL(q_text ‖ q_motion),
``kl_motion2text``, ``kl_text`` = KL(q_text ‖ N(0, I)), ``kl_motion``,
``latent_manifold`` = SmoothL1(z_T, z_M).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Normal

from actiongpt.models import losses as L
from actiongpt.models.base import MotionModel
from actiongpt.models.configs import TemosConfig, transformer_arch
from actiongpt.models.inputs import TextBatch, check_motion, check_text, require, text_from_batch
from actiongpt.models.motion_decoder import MotionDecoder
from actiongpt.models.motion_encoder import MotionEncoder
from actiongpt.models.sampling import sample_latent
from actiongpt.models.text_encoder import TextEncoder


class TEMOS(MotionModel):
    name = "temos"
    variational = True

    def __init__(self, cfg: TemosConfig, text_dim: int) -> None:
        super().__init__(cfg.nfeats, text_dim)
        self.cfg = cfg
        arch = transformer_arch(cfg)
        self.latent_dim = cfg.latent_dim
        self.textencoder = TextEncoder(text_dim, **arch)
        # Action-GPT-TEMOS trains with the motion branch (the encoder counts in the 16,065,159). Without it
        # the encoder would receive no gradient (dead weights that also break DDP), so it is not built.
        if cfg.motion_branch:
            self.motionencoder = MotionEncoder(cfg.nfeats, **arch)
        self.motiondecoder = MotionDecoder(cfg.nfeats, **arch)

    # -- building blocks ---------------------------------------------------------------------------------
    def encode_text(self, text: TextBatch) -> Normal:
        return self.textencoder(text.tokens, text.mask)

    def decode(self, z: Tensor, lengths: Tensor, nframes: int | None = None) -> Tensor:
        return self.motiondecoder(z, lengths, nframes)

    def text_to_latent(
        self, text: TextBatch, *, mean: bool = False, fact: float = 1.0, noise: Tensor | None = None
    ) -> Tensor:
        """The latent a text decodes from: the mean (``mean``), else loc + fact·scale·noise."""
        check_text(text, self.text_dim, len(text), self.name, need_tokens=True)
        return sample_latent(self.encode_text(text), mean=mean, fact=fact, noise=noise)

    # -- training ------------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Loss dict for a single-action batch (``actiongpt.models.batch``)."""
        require(batch, ["motion", "lengths", "text", "text_mask"], self.name)
        motion, lengths = batch["motion"], batch["lengths"]
        check_motion(motion, lengths, self.nfeats, self.name)
        text = text_from_batch(batch)
        check_text(text, self.text_dim, motion.shape[0], self.name, need_tokens=True)
        lengths = lengths.to(motion.device)
        t_max = int(lengths.max())
        motion = motion[:, :t_max]
        w = self.cfg.losses
        terms = L.WeightedTerms()

        dist_t = self.encode_text(text)
        z_t = sample_latent(dist_t)
        out_t = self.decode(z_t, lengths, t_max)
        if w.recons_text2rfeats:
            terms.add(
                "recons_text2rfeats",
                w.recons_text2rfeats,
                L.recons_loss(out_t, motion, lengths, self.cfg.recons_reduction),
            )
        ref = L.standard_normal_like(dist_t)
        if self.cfg.motion_branch:
            dist_m = self.motionencoder(motion, lengths)
            z_m = sample_latent(dist_m)
            if w.recons_rfeats2rfeats:
                out_m = self.decode(z_m, lengths, t_max)
                terms.add(
                    "recons_rfeats2rfeats",
                    w.recons_rfeats2rfeats,
                    L.recons_loss(out_m, motion, lengths, self.cfg.recons_reduction),
                )
            if w.kl_text2motion:
                terms.add("kl_text2motion", w.kl_text2motion, L.kl_loss(dist_t, dist_m))
            if w.kl_motion2text:
                terms.add("kl_motion2text", w.kl_motion2text, L.kl_loss(dist_m, dist_t))
        if w.kl_text:
            terms.add("kl_text", w.kl_text, L.kl_loss(dist_t, ref))
        if self.cfg.motion_branch:
            if w.kl_motion:
                terms.add("kl_motion", w.kl_motion, L.kl_loss(dist_m, ref))
            if w.latent_manifold:
                terms.add("latent_manifold", w.latent_manifold, L.latent_manifold_loss(z_t, z_m))
        return terms.result()

    @torch.no_grad()
    def reconstruct(self, motion: Tensor, lengths: Tensor, *, mean: bool = True) -> Tensor:
        """Motion → latent → motion (the auto-encoding path), e.g. for diagnostics."""
        if not self.cfg.motion_branch:
            raise RuntimeError("temos was built without the motion branch (motion_branch: false)")
        z = sample_latent(self.motionencoder(motion, lengths), mean=mean)
        return self.decode(z, lengths, motion.shape[1])
