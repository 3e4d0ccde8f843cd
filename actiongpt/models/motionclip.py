"""MotionCLIP: a deterministic transformer auto-encoder whose latent is aligned with the text embedding.

Encoder: Linear(nfeats → latent) per frame, two learned query tokens in front, positions, transformer; the
latent z is the output at the first query. Decoder: time queries attending to z. There is no text encoder
and no sampling: the (aggregated, for Action-GPT) pooled text embedding *is* the text latent, used as the
cosine target in training and fed to the decoder at generation. So the latent width is the embedder's pooled
width.

Losses (``MotionClipLossWeights``): ``rc`` masked MSE of the features, ``rcxyz`` masked MSE of joint positions
(forward kinematics of the decoded and ground-truth features; root-centred without translation as the
original's ``--no-vertstrans``), ``vel`` masked MSE of frame differences of the features, ``text_cosine``
mean(1 − cos(text, z)).

Deviations, said plainly: (1) the original's CLIP *image* loss (on a rendered frame of each clip) is left out:
no renders exist here. (2) It worked on 24 SMPL joints in 6-D plus a translation row and its xyz loss used
the 6890 SMPL vertices; here it works on our 135-d features (22 joints in 6-D + root) and the xyz loss uses
the 22 joints of the skeleton. (3) The decoder's ``actionBiases`` parameter, unused by the original forward
pass, is not built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from actiongpt.models import losses as L
from actiongpt.models.base import MotionModel
from actiongpt.models.configs import MotionClipConfig, transformer_arch
from actiongpt.models.inputs import TextBatch, check_motion, check_text, lengths_to_mask, require
from actiongpt.models.motion_decoder import MotionDecoder
from actiongpt.models.motion_encoder import MotionEncoder
from actiongpt.motion.fk import forward_kinematics


class MotionCLIP(MotionModel):
    name = "motionclip"
    variational = False

    def __init__(self, cfg: MotionClipConfig, text_dim: int) -> None:
        super().__init__(cfg.nfeats, text_dim)
        if cfg.latent_dim is not None and cfg.latent_dim != text_dim:
            raise ValueError(
                f"motionclip: latent_dim {cfg.latent_dim} must equal the text embedder's pooled width "
                f"{text_dim} "
                "(the motion latent is aligned with the text embedding); leave latent_dim unset to follow it"
            )
        if text_dim % cfg.num_heads:
            raise ValueError(
                f"motionclip: latent width {text_dim} is not divisible by num_heads {cfg.num_heads}"
            )
        self.cfg = cfg
        self.latent_dim = text_dim
        arch = transformer_arch(cfg, latent_dim=text_dim)
        self.encoder = MotionEncoder(cfg.nfeats, **arch)
        self.decoder = MotionDecoder(cfg.nfeats, **arch)

    # -- building blocks ---------------------------------------------------------------------------------
    def encode_motion(self, motion: Tensor, lengths: Tensor) -> Tensor:
        return self.encoder.encode(motion, lengths)[0]

    def decode(self, z: Tensor, lengths: Tensor, nframes: int | None = None) -> Tensor:
        return self.decoder(z, lengths, nframes)

    def text_to_latent(
        self, text: TextBatch, *, mean: bool = True, fact: float = 1.0, noise: Tensor | None = None
    ) -> Tensor:
        """The pooled text embedding itself (deterministic: no latent sampling exists in MotionCLIP)."""
        if noise is not None or not mean:
            raise ValueError(
                "motionclip is deterministic: latent sampling does not apply (vary the descriptions)"
            )
        check_text(text, self.text_dim, len(text), self.name, need_tokens=False)
        return text.pooled

    def joints(self, features: Tensor) -> Tensor:
        """Normalised features (B, T, nfeats) -> joints (B, T, 22, 3) as the xyz loss compares them."""
        rotmats, trans = self.features_to_motion(features)
        if self.cfg.joints_with_translation:
            return forward_kinematics(rotmats, trans, self.skeleton)
        joints = forward_kinematics(rotmats, torch.zeros_like(trans), self.skeleton)
        return joints - joints[..., :1, :]

    # -- training ------------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        require(batch, ["motion", "lengths", "text_pooled"], self.name)
        motion, lengths = batch["motion"], batch["lengths"]
        check_motion(motion, lengths, self.nfeats, self.name)
        text = TextBatch(None, None, batch["text_pooled"])
        check_text(text, self.text_dim, motion.shape[0], self.name, need_tokens=False)
        w = self.cfg.losses
        lengths = lengths.to(motion.device)
        t_max = int(lengths.max())
        motion = motion[:, :t_max]
        mask = lengths_to_mask(lengths, t_max)

        z = self.encode_motion(motion, lengths)
        out = self.decode(z, lengths, t_max)
        terms = L.WeightedTerms()
        if w.rc:
            terms.add("rc", w.rc, L.masked_mse(out, motion, mask))
        if w.rcxyz:
            self.require_feature_stats("the joint-position loss (rcxyz)")
            with torch.no_grad():
                target_xyz = self.joints(motion)
            terms.add("rcxyz", w.rcxyz, L.masked_mse(self.joints(out), target_xyz, mask))
        if w.vel:
            terms.add("vel", w.vel, L.masked_velocity_mse(out, motion, mask))
        if w.text_cosine:
            terms.add("text_cosine", w.text_cosine, L.cosine_loss(text.pooled.to(z.dtype), z))
        return terms.result()
