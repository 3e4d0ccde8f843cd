"""The real backbones as the evaluator's ``generate_fn``, and loading a trained model for evaluation.

A model comes from the trainer's consolidated export (``cluster.export``: ``runs/<name>/model.pt``), from a
complete checkpoint directory (consolidated in memory), or from a run directory (its ``model.pt`` if there,
else its newest complete checkpoint). The backbone is rebuilt from the recorded ``model``, ``preset`` and
``model_overrides``; the text width from ``text_dim`` (or, for exports that lack it, the shards' embedder).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from actiongpt.models.base import MotionModel
from actiongpt.models.generate import generate_features
from actiongpt.models.inputs import lengths_to_mask, text_from_batch
from actiongpt.models.registry import build_model
from actiongpt.models.sampling import derive_seed, per_sample_noise
from actiongpt.models.sequence import _yaw_difference, generate_sequence_features
from actiongpt.motion.features import NORM_EPS, NUM_FEATURE_JOINTS, _rotate_2d
from actiongpt.motion.joints_fast import gram_schmidt_rows_into
from actiongpt.motion.rotations import (
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
    rotation_about_axis,
)
from cluster.evaluator import GenerateFn, is_pair_batch

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedModel:
    model: MotionModel
    meta: dict[str, Any]
    source: Path


def model_config(name: str, preset: str = "paper", overrides: Mapping[str, Any] | None = None) -> Any:
    """The backbone config the trainer builds for (model, preset, model_overrides): ``cluster.components``."""
    from cluster.components import model_config as train_model_config
    from cluster.train_config import TrainConfig

    return train_model_config(TrainConfig(model=name, preset=preset, model_overrides=dict(overrides or {})))


def _state_and_meta(path: Path) -> tuple[dict[str, Tensor], dict[str, Any], Path]:
    from cluster.checkpoint import latest, read_marker
    from cluster.export import load_exported, model_state_from_checkpoint

    if path.is_file():
        state, meta = load_exported(path)
        return state, meta, path
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    marker = read_marker(path)
    if marker is not None:  # a checkpoint step directory
        from cluster.checkpoint import CheckpointInfo

        return model_state_from_checkpoint(CheckpointInfo(path, marker["step"], marker)), marker, path
    if (path / "model.pt").is_file():  # a run directory with its export
        state, meta = load_exported(path / "model.pt")
        return state, meta, path / "model.pt"
    info = latest(path / "checkpoints")
    if info is None:
        raise FileNotFoundError(
            f"{path}: not an exported model file, a complete checkpoint or a run directory with model.pt "
            "or checkpoints/step-*/COMPLETE"
        )
    return model_state_from_checkpoint(info), info.meta, info.path


def load_model(
    path: str | Path, *, text_dim: int | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Rebuild and load a trained backbone in eval mode. ``text_dim``: fallback when the file lacks it."""
    state, meta, source = _state_and_meta(Path(path))
    name = meta.get("model")
    if not name:
        raise ValueError(f"{source}: the checkpoint does not say which model it holds (meta 'model' missing)")
    dim = meta.get("text_dim") or text_dim
    if not dim:
        raise ValueError(f"{source}: no text_dim recorded and none given")
    cfg = model_config(name, meta.get("preset", "paper"), meta.get("model_overrides"))
    model = build_model(name, cfg, int(dim))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not fit {name} (preset {meta.get('preset')!r}, text_dim {dim}): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.require_feature_stats(f"evaluating {source}")
    model.to(device).eval()
    return LoadedModel(model, dict(meta), source)


def model_generate_fn(
    model: MotionModel,
    *,
    mean: bool = False,
    fact: float = 1.0,
    slerp_window: int | None = 8,
    align: str = "full",
    yaw: str = "original",
) -> GenerateFn:
    """``generate_fn`` for the evaluator: the batch's precomputed text embeddings and reference lengths ->
    unnormalised features, noise from the per-sample seeds.

    Single actions (TEMOS, MotionCLIP): one decode per sample. Pairs (TEACH): ``forward_seq`` over the two
    actions with lengths ``[l_0, l_1]`` (``l_1`` includes the transition), slerp window and alignment as the
    original's evaluation (``slerp_ws 8``, ``align full``). MotionCLIP is deterministic (its text latent is
    the embedding itself); ``mean`` is forced for it.
    """
    pooled_only = model.name == "motionclip"
    use_mean = mean or not getattr(model, "variational", False)

    @torch.no_grad()
    def generate(batch: Mapping[str, Any], seeds: list[int]) -> Tensor:
        if is_pair_batch(batch):
            texts = [text_from_batch(batch, f"_{a}", pooled_only) for a in (0, 1)]
            lengths = torch.stack([batch["lengths_0"], batch["lengths_1"]], dim=1).long()
            return sequence_features(
                model,
                texts,
                lengths,
                seeds,
                mean=use_mean,
                fact=fact,
                slerp_window=slerp_window,
                align=align,
                yaw=yaw,
            )
        lengths = batch["lengths"].long()
        feats = generate_features(
            model, text_from_batch(batch, "", pooled_only), lengths, seeds=seeds, mean=use_mean, fact=fact
        )
        mask = lengths_to_mask(lengths.to(feats.device), feats.shape[1])
        return model.denormalize(feats) * mask[..., None]

    return generate


# -- sequences of actions, batched end to end ---------------------------------------------------------------
# ``actiongpt.models.generate.generate_sequences`` stitches the boundaries one sample at a time and also
# runs forward kinematics the evaluator does not use; on the CPU that loop costs ~5 ms per sample, several
# times the model itself. The same operations vectorised over the batch (checked against
# ``sequence.stitch`` and ``generate_sequences`` in tests/test_evaluator.py). ``sequence_features`` goes one
# step further: it never builds the (B, T, 22, 3, 3) rotations that ``stitch_batch`` works on, because
# re-encoding keeps only the first two rows of each matrix (bit-identical to stitching the full rotations,
# also checked there).


def stitch_batch(
    rotmats: Tensor,
    trans: Tensor,
    lengths: Tensor,
    slerp_window: int | None,
    align: str = "full",
    yaw: str = "original",
) -> tuple[Tensor, Tensor]:
    """``actiongpt.models.sequence.stitch`` for B sequences at once.

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
    """``stitch_batch`` when only the stitched 6D features are wanted: the root orientations ``root``
    (B, T, 3, 3) and ``trans`` are stitched as there; the other joints change only on the slerp frames, where
    their first two rows are written into ``out6`` (B, T, 22, 6). Full matrices are assembled (cross product)
    just for the two frames each boundary reads. The same operations on the same numbers as ``stitch_batch``
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


@torch.no_grad()
def sequence_features(
    model: MotionModel,
    texts: list[Any],
    lengths: Tensor,
    seeds: list[int],
    *,
    mean: bool = False,
    fact: float = 1.0,
    slerp_window: int | None = 8,
    align: str = "full",
    yaw: str = "original",
) -> Tensor:
    """What ``generate_sequences(...).features`` returns (same seeds -> same noise), batched: unnormalised
    features (B, T, 135) re-encoded from the stitched rotations, zero after each sequence's length.

    The same numbers as ``features_to_motion`` -> ``stitch_batch`` -> ``rotations_to_features(..., "none")``
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
    out[..., 1:3] = _rotate_2d(vel, -theta)
    out[..., 0:1] = trans[..., 2:3]
    rz_t = rotation_about_axis(theta, "z").transpose(-1, -2)[..., None, :, :]  # (B, 1, 3, 3)
    out6[..., 0, :] = (rz_t @ root)[..., :2, :].flatten(-2)
    return out.mul_(mask[..., None])
