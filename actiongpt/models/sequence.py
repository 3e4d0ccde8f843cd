"""Generation of a sequence of actions (TEACH's ``forward_seq``; TEMOS's variant without history).

1. Actions are generated one after another; for TEACH each action after the first is conditioned on the last
   ``hist_frames`` generated (normalised) feature frames of the previous one.
2. With a slerp window W (the original's ``slerp_ws = 8``), each action after the first is decoded with
   ``length − W`` frames and W empty frames are reserved in front of it.
3. The concatenated features become rotations + translation. At each boundary the next chunk is aligned to
   the last pose of the previous one: ``"full"`` (``aligining_bodies``) rotates its root orientations and
   trajectory about the vertical so that its yaw matches and continues the trajectory from the last ground
   position; ``"trajectory"`` only translates; ``"none"`` leaves it.
4. The W reserved frames are filled by slerp of all 22 joint rotations and linear interpolation of the
   translation between the last frame of action i and the first frame of action i + 1.

Batched over B sequences that have the same number of actions (the per-sample stitching is a small loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from actiongpt.models.base import MotionModel
from actiongpt.models.inputs import TextBatch, lengths_to_mask
from actiongpt.models.teach import TEACH, last_frames
from actiongpt.motion.features import upright_yaw
from actiongpt.motion.rotations import (
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
    rotation_about_axis,
)

AlignMode = Literal["full", "trajectory", "none"]
# "original": the yaw difference is the difference of the axis-angle z components of the two root
# orientations (the original's approximation, not the true heading for an upright AMASS body);
# "heading": the exact vertical twist (actiongpt.motion.features.upright_yaw).
YawMode = Literal["original", "heading"]


# -- boundary operations (one sequence) ------------------------------------------------------------------
def _yaw_difference(first_root: Tensor, last_root: Tensor, yaw: YawMode) -> Tensor:
    if yaw == "original":
        return matrix_to_axis_angle(first_root)[..., 2] - matrix_to_axis_angle(last_root)[..., 2]
    if yaw == "heading":
        return upright_yaw(first_root) - upright_yaw(last_root)
    raise ValueError(f"unknown yaw mode {yaw!r} (use 'original' or 'heading')")


def align_full_bodies(
    last_pose: Tensor, last_trans: Tensor, poses: Tensor, trans: Tensor, yaw: YawMode = "original"
) -> tuple[Tensor, Tensor]:
    """Turn a chunk (poses (N, 22, 3, 3), trans (N, 3)) about the vertical to face like ``last_pose``.

    Root orientations are left-multiplied by ``Rz(Δ)ᵀ`` with Δ the yaw difference (chunk start − last pose);
    ground velocities are turned the same way and integrated from the last ground position; height is kept.
    """
    angle = _yaw_difference(poses[0, 0], last_pose[0], yaw)
    rz_t = rotation_about_axis(angle, "z").transpose(-1, -2)
    root = rz_t @ poses[:, 0]
    turned = torch.cat((root[:, None], poses[:, 1:]), dim=1)
    vel = torch.diff(trans[:, :2], dim=0)
    vel = torch.cat((torch.zeros_like(vel[:1]), vel), dim=0)
    vel = vel @ rz_t[:2, :2].T
    traj = torch.cumsum(vel, dim=0) + last_trans[:2]
    return turned, torch.cat((traj, trans[:, 2:]), dim=1)


def align_trajectory(last_trans: Tensor, trans: Tensor) -> Tensor:
    """Translate a chunk's ground trajectory so that it starts at the last ground position."""
    traj = trans[:, :2] - trans[:1, :2] + last_trans[:2]
    return torch.cat((traj, trans[:, 2:]), dim=1)


def slerp_poses(last_pose: Tensor, new_pose: Tensor, n: int) -> Tensor:
    """n in-between poses (n, 22, 3, 3): slerp weights linspace(0, 1, n + 2) without the two ends."""
    w = torch.linspace(0.0, 1.0, n + 2, dtype=last_pose.dtype, device=last_pose.device)[1:-1]
    q0 = matrix_to_quaternion(last_pose)[None]
    q1 = matrix_to_quaternion(new_pose)[None]
    return quaternion_to_matrix(quaternion_slerp(q0, q1, w[:, None]))


def slerp_translation(last_trans: Tensor, new_trans: Tensor, n: int) -> Tensor:
    w = torch.linspace(0.0, 1.0, n + 2, dtype=last_trans.dtype, device=last_trans.device)[1:-1, None]
    return (1 - w) * last_trans + w * new_trans


def stitch(
    rotmats: Tensor,
    trans: Tensor,
    lengths: Sequence[int],
    slerp_window: int | None,
    align: AlignMode = "full",
    yaw: YawMode = "original",
) -> tuple[Tensor, Tensor]:
    """Align and interpolate the boundaries of one concatenated sequence (the loop of ``forward_seq``).

    ``rotmats`` (T, 22, 3, 3) and ``trans`` (T, 3) hold the actions back to back, ``lengths`` their lengths
    (each including its reserved slerp frames). Returns new tensors; the inputs are not modified.
    """
    if align not in ("full", "trajectory", "none"):
        raise ValueError(f"unknown align mode {align!r} (use 'full', 'trajectory' or 'none')")
    rotmats, trans = rotmats.clone(), trans.clone()
    window = slerp_window or 0
    end_first = lengths[0] - 1
    for length in lengths[1:]:
        begin = end_first + 1 + window
        stop = end_first + 1 + length
        if align == "full":
            rotmats[begin:stop], trans[begin:stop] = align_full_bodies(
                rotmats[end_first], trans[end_first], rotmats[begin:stop], trans[begin:stop], yaw
            )
        elif align == "trajectory":
            trans[begin:stop] = align_trajectory(trans[end_first], trans[begin:stop])
        if window:
            rotmats[end_first + 1 : begin] = slerp_poses(rotmats[end_first], rotmats[begin], window)
            trans[end_first + 1 : begin] = slerp_translation(trans[end_first], trans[begin], window)
        end_first += length
    return rotmats, trans


# -- generation (batched) --------------------------------------------------------------------------------
def check_sequence_lengths(lengths: Tensor, slerp_window: int | None, hist_frames: int) -> None:
    if lengths.dim() != 2 or lengths.shape[1] < 1:
        raise ValueError(f"lengths must be (B, n_actions), got {tuple(lengths.shape)}")
    window = slerp_window or 0
    if window < 0:
        raise ValueError(f"slerp_window must be >= 0, got {slerp_window}")
    if int(lengths.min()) < max(1, hist_frames):
        raise ValueError(
            f"every action needs at least {max(1, hist_frames)} frames, got {int(lengths.min())}"
        )
    if lengths.shape[1] > 1 and int(lengths[:, 1:].min()) - window < 2:
        raise ValueError(
            f"actions after the first need more than {window + 1} frames (slerp window {window} + at least 2 "
            f"generated), got {int(lengths[:, 1:].min())}"
        )


def generate_sequence_features(
    model: MotionModel,
    texts: Sequence[TextBatch],
    lengths: Tensor,
    *,
    slerp_window: int | None = 8,
    mean: bool = False,
    fact: float = 1.0,
    noise: Tensor | None = None,
) -> Tensor:
    """Decode B sequences of A actions: normalised features (B, max total length, nfeats), zero-padded.

    ``texts[a]`` holds action a of every sequence (B rows); ``lengths`` (B, A) the frames per action
    (including the reserved slerp frames); ``noise`` (B, A, latent) the sampling noise (None: global RNG).
    TEACH conditions each action on the previous one's last generated frames; TEMOS decodes them
    independently (its original ``forward_seq``).
    """
    if not getattr(model, "variational", False):
        raise ValueError(f"{model.name} cannot generate sequences of actions (use TEACH or TEMOS)")
    hist_frames = model.hist_frames if isinstance(model, TEACH) else 0
    check_sequence_lengths(lengths, slerp_window, hist_frames)
    bs, n_actions = lengths.shape
    if len(texts) != n_actions:
        raise ValueError(f"{len(texts)} texts for {n_actions} actions")
    if noise is not None and tuple(noise.shape) != (bs, n_actions, model.latent_dim):
        raise ValueError(f"noise must be ({bs}, {n_actions}, {model.latent_dim}), got {tuple(noise.shape)}")
    device = model.feature_mean.device
    lengths = lengths.to(device)
    window = slerp_window or 0
    totals = lengths.sum(dim=1)
    out = torch.zeros(bs, int(totals.max()), model.nfeats, device=device)
    offsets = torch.cumsum(lengths, dim=1) - lengths
    hframes = None
    for a in range(n_actions):
        text = texts[a].to(device)
        kwargs = {"hframes": hframes} if hist_frames else {}
        z = model.text_to_latent(
            text, mean=mean, fact=fact, noise=None if noise is None else noise[:, a].to(device), **kwargs
        )
        gap = window if a > 0 else 0
        gen_lengths = lengths[:, a] - gap
        feats = model.decode(z, gen_lengths)
        # Reserve the slerp frames in front (zeros, as the original; overwritten after stitching).
        chunk = torch.cat((feats.new_zeros(bs, gap, model.nfeats), feats), dim=1)
        if hist_frames:
            hframes = last_frames(chunk, lengths[:, a], hist_frames)
        # every sample's first lengths[b, a] frames to out[b, offsets[b, a]:]: one indexed copy per action
        bi, ti = lengths_to_mask(lengths[:, a], chunk.shape[1]).nonzero(as_tuple=True)
        rows = chunk.reshape(-1, model.nfeats).index_select(0, bi * chunk.shape[1] + ti)
        out.view(-1, model.nfeats).index_copy_(0, bi * out.shape[1] + offsets[bi, a] + ti, rows)
    return out
