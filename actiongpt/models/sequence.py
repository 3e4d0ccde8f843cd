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

Everything is batched over B sequences that have the same number of actions. ``stitch`` works on the full
rotations (``generate.generate_sequences``); ``sequence_features`` -- what the evaluator generates --
never builds the (B, T, 22, 3, 3) rotations: re-encoding keeps only the first two rows of each matrix, so
it stitches those rows (``_stitch_rows``), bit-identical to ``stitch`` then re-encoding (pinned in
tests/test_evaluator.py, which also checks ``stitch`` against a per-sample transcription of the loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from actiongpt.models.base import MotionModel
from actiongpt.models.inputs import TextBatch, lengths_to_mask
from actiongpt.models.sampling import derive_seed, per_sample_noise
from actiongpt.models.teach import TEACH, last_frames
from actiongpt.motion.features import NORM_EPS, NUM_FEATURE_JOINTS, rotate_2d, upright_yaw
from actiongpt.motion.joints_fast import gram_schmidt_rows_into
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


# -- stitching (batched) ------------------------------------------------------------------------------------
def _yaw_difference(first_root: Tensor, last_root: Tensor, yaw: YawMode) -> Tensor:
    if yaw == "original":
        return matrix_to_axis_angle(first_root)[..., 2] - matrix_to_axis_angle(last_root)[..., 2]
    if yaw == "heading":
        return upright_yaw(first_root) - upright_yaw(last_root)
    raise ValueError(f"unknown yaw mode {yaw!r} (use 'original' or 'heading')")


def stitch(
    rotmats: Tensor,
    trans: Tensor,
    lengths: Tensor,
    slerp_window: int | None,
    align: AlignMode = "full",
    yaw: YawMode = "original",
) -> tuple[Tensor, Tensor]:
    """Align and interpolate the boundaries of B concatenated sequences (the loop of ``forward_seq``).

    ``rotmats`` (B, T, 22, 3, 3), ``trans`` (B, T, 3) hold each sequence's actions back to back, ``lengths``
    (B, A) the actions' lengths (each including its reserved slerp frames). Returns new tensors.
    """
    if align not in ("full", "trajectory", "none"):
        raise ValueError(f"unknown align mode {align!r} (use 'full', 'trajectory' or 'none')")
    rot, tr = rotmats.clone(), trans.clone()
    bs, n_frames = rot.shape[:2]
    window = slerp_window or 0
    b = torch.arange(bs, device=rot.device)
    t = torch.arange(n_frames, device=rot.device)[None, :]
    starts = torch.cumsum(lengths, dim=1) - lengths
    for a in range(1, lengths.shape[1]):
        end_first = starts[:, a] - 1  # last frame of the (already stitched) previous action
        begin = starts[:, a] + window
        stop = starts[:, a] + lengths[:, a]
        chunk = (t >= begin[:, None]) & (t < stop[:, None])  # (B, T)
        last_pose, last_tr = rot[b, end_first], tr[b, end_first]
        if align == "full":
            angle = _yaw_difference(rot[b, begin, 0], last_pose[:, 0], yaw)  # type: ignore[arg-type]
            rz_t = rotation_about_axis(angle, "z").transpose(-1, -2)  # (B, 3, 3)
            rot[:, :, 0] = torch.where(chunk[..., None, None], rz_t[:, None] @ rot[:, :, 0], rot[:, :, 0])
            vel = torch.zeros_like(tr[..., :2])
            vel[:, 1:] = tr[:, 1:, :2] - tr[:, :-1, :2]
            vel = vel * (chunk & (t > begin[:, None]))[..., None]  # 0 at the chunk's first frame
            vel = torch.einsum("btj,bij->bti", vel, rz_t[:, :2, :2])
            traj = torch.cumsum(vel, dim=1) + last_tr[:, None, :2]
            tr[..., :2] = torch.where(chunk[..., None], traj, tr[..., :2])
        elif align == "trajectory":
            traj = tr[..., :2] - tr[b, begin, :2][:, None] + last_tr[:, None, :2]
            tr[..., :2] = torch.where(chunk[..., None], traj, tr[..., :2])
        if window:
            w = torch.linspace(0.0, 1.0, window + 2, dtype=rot.dtype, device=rot.device)[1:-1]  # (W,)
            q0 = matrix_to_quaternion(last_pose)[:, None]  # (B, 1, 22, 4)
            q1 = matrix_to_quaternion(rot[b, begin])[:, None]
            frames = end_first[:, None] + 1 + torch.arange(window, device=rot.device)[None, :]  # (B, W)
            rot[b[:, None], frames] = quaternion_to_matrix(quaternion_slerp(q0, q1, w[None, :, None]))
            wt = w[None, :, None]
            tr[b[:, None], frames] = (1 - wt) * last_tr[:, None] + wt * tr[b, begin][:, None]
    return rot, tr


def _stitch_rows(
    root: Tensor,
    trans: Tensor,
    rows: tuple[Tensor, Tensor],
    out6: Tensor,
    lengths: Tensor,
    slerp_window: int | None,
    align: str,
    yaw: str,
) -> tuple[Tensor, Tensor]:
    """``stitch`` when only the stitched 6D features are wanted: the root orientations ``root``
    (B, T, 3, 3) and ``trans`` are stitched as there; the other joints change only on the slerp frames, where
    their first two rows are written into ``out6`` (B, T, 22, 6). Full matrices are assembled (cross product)
    just for the two frames each boundary reads. The same operations on the same numbers as ``stitch``
    on ``rot6d_to_matrix`` of the rows. ``root``, ``trans`` and ``out6`` are updated in place."""
    if align not in ("full", "trajectory", "none"):
        raise ValueError(f"unknown align mode {align!r} (use 'full', 'trajectory' or 'none')")
    b1, b2 = rows
    bs, n_frames = root.shape[:2]
    window = slerp_window or 0
    b = torch.arange(bs, device=root.device)
    t = torch.arange(n_frames, device=root.device)[None, :]
    starts = torch.cumsum(lengths, dim=1) - lengths

    def pose(frame: Tensor) -> Tensor:
        """Every joint's matrix (B, 22, 3, 3) at ``frame`` (B,) -- never a slerp frame of an earlier
        boundary (each action after the first has more than window + 1 frames)."""
        r1, r2 = b1[b, frame], b2[b, frame]
        full = torch.stack([r1, r2, torch.cross(r1, r2, dim=-1)], dim=-2)
        full[:, 0] = root[b, frame]
        return full

    for a in range(1, lengths.shape[1]):
        end_first = starts[:, a] - 1  # last frame of the (already stitched) previous action
        begin = starts[:, a] + window
        stop = starts[:, a] + lengths[:, a]
        chunk = (t >= begin[:, None]) & (t < stop[:, None])  # (B, T)
        last_pose, last_tr = pose(end_first), trans[b, end_first]
        if align == "full":
            angle = _yaw_difference(root[b, begin], last_pose[:, 0], yaw)  # type: ignore[arg-type]
            rz_t = rotation_about_axis(angle, "z").transpose(-1, -2)  # (B, 3, 3)
            root = torch.where(chunk[..., None, None], rz_t[:, None] @ root, root)
            vel = torch.zeros_like(trans[..., :2])
            vel[:, 1:] = trans[:, 1:, :2] - trans[:, :-1, :2]
            vel = vel * (chunk & (t > begin[:, None]))[..., None]  # 0 at the chunk's first frame
            vel = torch.einsum("btj,bij->bti", vel, rz_t[:, :2, :2])
            traj = torch.cumsum(vel, dim=1) + last_tr[:, None, :2]
            trans[..., :2] = torch.where(chunk[..., None], traj, trans[..., :2])
        elif align == "trajectory":
            traj = trans[..., :2] - trans[b, begin, :2][:, None] + last_tr[:, None, :2]
            trans[..., :2] = torch.where(chunk[..., None], traj, trans[..., :2])
        if window:
            w = torch.linspace(0.0, 1.0, window + 2, dtype=root.dtype, device=root.device)[1:-1]  # (W,)
            q0 = matrix_to_quaternion(last_pose)[:, None]  # (B, 1, 22, 4)
            q1 = matrix_to_quaternion(pose(begin))[:, None]
            frames = end_first[:, None] + 1 + torch.arange(window, device=root.device)[None, :]  # (B, W)
            mats = quaternion_to_matrix(quaternion_slerp(q0, q1, w[None, :, None]))  # (B, W, 22, 3, 3)
            root[b[:, None], frames] = mats[:, :, 0]
            out6[b[:, None], frames, 1:] = mats[:, :, 1:, :2, :].flatten(-2)
            wt = w[None, :, None]
            trans[b[:, None], frames] = (1 - wt) * last_tr[:, None] + wt * trans[b, begin][:, None]
    return root, trans


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


@torch.no_grad()
def sequence_features(
    model: MotionModel,
    texts: Sequence[TextBatch],
    lengths: Tensor,
    seeds: Sequence[int],
    *,
    mean: bool = False,
    fact: float = 1.0,
    slerp_window: int | None = 8,
    align: AlignMode = "full",
    yaw: YawMode = "original",
) -> Tensor:
    """What ``generate_sequences(...).features`` returns (same seeds -> same noise), batched: unnormalised
    features (B, T, 135) re-encoded from the stitched rotations, zero after each sequence's length.

    The same numbers as ``features_to_motion`` -> ``stitch`` -> ``rotations_to_features(..., "none")``
    on every valid frame, without building and re-slicing the (B, T, 22, 3, 3) rotations: re-encoding keeps
    the first two rows of each matrix, which for every joint but the root are the Gram-Schmidt rows of the
    decoded features except on the slerp frames (``_stitch_rows``)."""
    bs, n_actions = lengths.shape
    device = model.feature_mean.device
    noise = None
    if not mean:
        flat = [derive_seed(s, "action", a) for s in seeds for a in range(n_actions)]
        noise = per_sample_noise(flat, model.latent_dim, device).view(bs, n_actions, -1)
    feats = generate_sequence_features(
        model, texts, lengths, slerp_window=slerp_window, mean=mean, fact=fact, noise=noise
    )
    # features_to_rotations(model.denormalize(feats)) kept as rows: the Gram-Schmidt rows of every joint
    # (rot6d_to_matrix's operations) are written straight into the output's 6D slots
    model.require_feature_stats("denormalising features")
    x = feats.mul_(model.feature_std.to(feats) + NORM_EPS).add_(model.feature_mean.to(feats))  # = denormalize
    traj = torch.cumsum(x[..., 1:3], dim=-2)
    trans = torch.cat([traj - traj[..., :1, :], x[..., 0:1]], dim=-1)
    out = torch.empty_like(x)
    out6 = out[..., 3:].unflatten(-1, (NUM_FEATURE_JOINTS, 6))  # (B, T, 22, 6) view
    b1, b2 = gram_schmidt_rows_into(x[..., 3:].unflatten(-1, (NUM_FEATURE_JOINTS, 6)), out6)
    root = torch.stack([b1[..., 0, :], b2[..., 0, :], torch.cross(b1[..., 0, :], b2[..., 0, :], dim=-1)], -2)
    lengths = lengths.to(device)
    root, trans = _stitch_rows(root, trans, (b1, b2), out6, lengths, slerp_window, align, yaw)
    mask = lengths_to_mask(lengths.sum(dim=1), root.shape[1])
    eye = torch.eye(3, dtype=root.dtype, device=root.device)
    root = torch.where(mask[..., None, None], root, eye)
    # rotations_to_features(rotmats, trans * mask, canonicalize="none") * mask, its operations on this layout
    trans = trans * mask[..., None]
    theta = root.new_zeros(bs)  # canonical_angle(..., "none")
    xy = trans[..., :2]
    vel = torch.cat([torch.zeros_like(xy[..., :1, :]), xy[..., 1:, :] - xy[..., :-1, :]], dim=-2)
    out[..., 1:3] = rotate_2d(vel, -theta)
    out[..., 0:1] = trans[..., 2:3]
    rz_t = rotation_about_axis(theta, "z").transpose(-1, -2)[..., None, :, :]  # (B, 1, 3, 3)
    out6[..., 0, :] = (rz_t @ root)[..., :2, :].flatten(-2)
    return out.mul_(mask[..., None])
