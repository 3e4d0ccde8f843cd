"""Features -> MMM-21 joints for large batches on the CPU: the same float32 numbers as the reference path.

``MMM21Joints(skeleton)(features)`` returns what ``joints_mmm21(*features_to_rotations(features), skeleton)``
returns, without its per-element costs on big batches (the evaluator converts tens of thousands of frames per
batch): the reference path spends most of its time in batched 3x3 ``matmul`` calls (a scalar loop per
matrix for such small matrices), reductions over a last dimension of size 3 (``F.normalize``,
``torch.cross``) and stacking 22 strided slices.

Here every frame's numbers are laid out component-major -- ``(joint, component, frame)``, the frames
contiguous -- and the same arithmetic runs as elementwise ops over all frames at once:

- Gram-Schmidt only for the 17 joints whose global rotation is needed (the leaves' local rotations are
  never used for positions);
- forward kinematics by tree depth: the joints of one depth whose children and parents are consecutive
  indices are one op on a slice (SMPL-H: 6 slices of global rotations, 9 of positions over 7 depths);
- ``padded`` converts only the valid frames of a padded batch (the rest come out as zeros);
- the products and sums are written in the order of the reference kernels, so the results are the same
  numbers: a 3x3 ``matmul`` here (a scalar loop) is ``(a0 b0 + a1 b1) + a2 b2`` with each product rounded
  (this is what plain ``*`` and ``+`` do); ``linalg_vector_norm`` over 3 values accumulates with fused
  multiply-adds (``torch.addcmul``) and takes a correctly rounded square root (``numpy.sqrt``; this torch
  build's vectorised float32 ``sqrt`` is not correctly rounded); ``torch.cross`` computes
  ``fma(a_i, b_j, -(a_j b_i))``.

Checked against the reference path in ``tests/test_joints_fast.py`` (bit-identical on the development
machine, whose kernels use FMA; elsewhere equal to float32 rounding). Other devices, other dtypes and inputs
that need gradients take the reference path itself. ``gram_schmidt_rows_into`` is the same Gram-Schmidt for
the rows of features in their own layout (``cluster.eval_model.sequence_features``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from actiongpt.motion.features import FEATURE_DIM, NUM_FEATURE_JOINTS, features_to_rotations
from actiongpt.motion.mmm import _GATHER, JOINTS_TYPES, MMM_SCALE, joints_mmm21
from actiongpt.motion.skeleton import Skeleton

_NORM_EPS = 1e-12  # F.normalize's default eps (rot6d_to_matrix)
_HEELS = ("left_heel", "right_heel")


@dataclass(frozen=True)
class _Run:
    """``out[children] = f(in[parents])`` for consecutive children; parents consecutive or one joint."""

    children: slice
    parents: slice


def _runs(pairs: list[tuple[int, int]]) -> list[_Run]:
    """Split (child, parent) pairs of one tree depth into runs of consecutive children whose parents are
    either consecutive too or all the same joint."""
    runs: list[list[int]] = []  # [first child, first parent, count, parent step (0 or 1)]
    for c, p in sorted(pairs):
        if runs:
            c0, p0, k, step = runs[-1]
            if c == c0 + k and ((k == 1 and p in (p0, p0 + 1)) or (k > 1 and p == p0 + step * k)):
                runs[-1] = [c0, p0, k + 1, p - p0 if k == 1 else step]
                continue
        runs.append([c, p, 1, 0])
    return [
        _Run(slice(c0, c0 + k), slice(p0, p0 + 1) if step == 0 else slice(p0, p0 + k))
        for c0, p0, k, step in runs
    ]


def _depths(parents: tuple[int, ...]) -> list[int]:
    depth = [0] * len(parents)
    for i, p in enumerate(parents):
        if i == 0:
            if p != -1:
                raise ValueError(f"joint 0 must be the root (parent -1), got parent {p}")
            continue
        if not 0 <= p < i:
            raise ValueError(f"parents must precede their children, joint {i} has parent {p}")
        depth[i] = depth[p] + 1
    return depth


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 square root (std::sqrt in the reference norm kernel)."""
    return torch.from_numpy(np.sqrt(x.numpy()))


def _norm3(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The 3 components along ``dim`` -> their ``linalg_vector_norm``, as its last-dim kernel computes it
    (fused multiply-add accumulation, then sqrt), clamped like ``F.normalize``; ``dim`` removed."""
    x0, x1, x2 = (x.select(dim, i) for i in range(3))
    s = torch.addcmul(torch.addcmul(x0 * x0, x1, x1), x2, x2)
    return _sqrt(s).clamp_min_(_NORM_EPS)


def gram_schmidt_rows_into(d6: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first two rows of ``rot6d_to_matrix(d6)`` for 6D values (..., 6), written into ``out`` (..., 6)
    (may be a strided view): the same numbers (see the module docstring); returns the two row views. CPU
    float32 without gradients; other inputs go through ``F.normalize`` itself."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1, b2 = out[..., :3], out[..., 3:]
    if d6.device.type != "cpu" or d6.dtype != torch.float32 or d6.requires_grad:
        torch.div(a1, a1.norm(2, -1, keepdim=True).clamp_min(_NORM_EPS).expand_as(a1), out=b1)
        u = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
        torch.div(u, u.norm(2, -1, keepdim=True).clamp_min(_NORM_EPS).expand_as(u), out=b2)
        return b1, b2
    torch.div(a1, _norm3(a1, -1)[..., None], out=b1)
    p = b1 * a2
    dot = p[..., 0] + p[..., 1] + p[..., 2]  # (b1 * a2).sum(-1): the reduction adds the three in order
    u = a2 - dot[..., None] * b1
    torch.div(u, _norm3(u, -1)[..., None], out=b2)
    return b1, b2


def _cross3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(K, 3, n) x (K, 3, n): ``torch.cross`` over the components, ``r_k = fma(a_i, b_j, -(a_j b_i))``."""
    out = torch.empty_like(a)
    for k, (i, j) in enumerate(((1, 2), (2, 0), (0, 1))):
        r = out[:, k]
        torch.mul(a[:, j], b[:, i], out=r)
        r.neg_().addcmul_(a[:, i], b[:, j])
    return out


class MMM21Joints:
    """Unnormalised features (..., T, 135) -> MMM-21 joints (..., T, 21, 3) on ``skeleton`` (see the module
    docstring). Build once, call per batch."""

    def __init__(self, skeleton: Skeleton, jointstype: str = "mmmns") -> None:
        if jointstype not in JOINTS_TYPES:
            raise ValueError(f"jointstype must be one of {JOINTS_TYPES}, got {jointstype!r}")
        parents = tuple(skeleton.parents)
        if len(parents) != NUM_FEATURE_JOINTS:
            raise ValueError(f"the features hold {NUM_FEATURE_JOINTS} joints, the skeleton {len(parents)}")
        try:
            heels = [skeleton.end_point(h) for h in _HEELS]
        except ValueError as exc:
            raise ValueError(f"skeleton {skeleton.name!r} has no left_heel/right_heel end points") from exc
        self.skeleton = skeleton
        self.jointstype = jointstype
        n_joints = len(parents)
        depth = _depths(parents)
        heel_parents = [skeleton.end_point_parents[e] for e in heels]
        # every point placed: joints 1..J-1, then the two heels (J, J + 1), each with its parent joint
        points = [(c, parents[c]) for c in range(1, n_joints)]
        points += [(n_joints + e, p) for e, p in enumerate(heel_parents)]
        # joints whose global rotation is needed (parents of placed points); in "local" index space
        need = sorted({p for _, p in points} | {0})
        local = {j: i for i, j in enumerate(need)}
        self.num_local = len(need)
        self.root_local = local[0]
        # copies of the needed joints' 6D values: (local slice, joint slice) per run of consecutive joints
        self.need_runs = [
            (slice(r.children.start, r.children.stop), slice(r.parents.start, r.parents.stop))
            for r in _runs([(i, j) for i, j in enumerate(need)])
        ]
        by_depth: dict[int, list[tuple[int, int]]] = {}
        for j in need:
            if j != 0:
                by_depth.setdefault(depth[j], []).append((local[j], local[parents[j]]))
        self.rot_runs = [r for d in sorted(by_depth) for r in _runs(by_depth[d])]
        by_depth = {}
        for c, p in points:
            by_depth.setdefault(depth[p] + 1, []).append((c, p))
        self.pos_runs = [r for d in sorted(by_depth) for r in _runs(by_depth[d])]
        self.bone_parents = torch.tensor([local[p] for _, p in points])
        # bone vectors as forward_kinematics computes them (float32 skeleton)
        skel = skeleton.to(dtype=torch.float32)
        offsets = skel.offsets
        bones = [offsets[c] for c in range(1, n_joints)]
        bones += [skel.end_points[e] - skel.rest_joints[p] for e, p in zip(heels, heel_parents)]
        self.bones = torch.stack(bones)[:, :, None, None]  # (M, 3, 1, 1)
        self.root_offset = offsets[0][:, None]
        self.out_rows = torch.tensor([3 * j + a for j in _GATHER for a in (1, 2, 0)])

    def reference(self, features: torch.Tensor) -> torch.Tensor:
        """The reference path (``features_to_rotations`` + ``joints_mmm21``)."""
        rotmats, trans = features_to_rotations(features)
        return joints_mmm21(rotmats, trans, self.skeleton, self.jointstype)

    def _check(self, features: torch.Tensor) -> bool:
        """Validate; True when the fast path applies (CPU float32 without gradients)."""
        if features.dim() < 2 or features.shape[-1] != FEATURE_DIM:
            raise ValueError(f"features must be (..., T, {FEATURE_DIM}), got {tuple(features.shape)}")
        if features.shape[-2] < 1:
            raise ValueError("a motion needs at least one frame")
        cpu = features.device.type == "cpu"
        return cpu and features.dtype == torch.float32 and not features.requires_grad

    @staticmethod
    def _trans(features: torch.Tensor) -> torch.Tensor:
        """The translation (..., T, 3) exactly as ``features_to_rotations`` computes it."""
        traj = torch.cumsum(features[..., 1:3], dim=-2)
        traj = traj - traj[..., :1, :]
        return torch.cat([traj, features[..., 0:1]], dim=-1)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        if not self._check(features):
            return self.reference(features)
        lead = features.shape[:-1]
        n = int(np.prod(lead))
        out = self._frames(features.reshape(n, FEATURE_DIM), self._trans(features).reshape(n, 3))
        return out.contiguous().view(*lead, 21, 3)

    def padded(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Padded features (B, T, 135) with valid ``lengths`` (B,) -> (B, T, 21, 3), exactly zero after each
        length (``torch.where(valid, self(features), 0)``); only the valid frames are converted."""
        fast = self._check(features)
        if features.dim() != 3:
            raise ValueError(f"features must be (B, T, {FEATURE_DIM}), got {tuple(features.shape)}")
        bs, n_frames = features.shape[:2]
        valid = torch.arange(n_frames, device=features.device)[None, :] < lengths[:, None].to(features.device)
        if not fast:
            joints = self.reference(features)
            return torch.where(valid[..., None, None], joints, torch.zeros((), dtype=joints.dtype))
        if bool(valid.all()):
            return self(features)
        idx = valid.reshape(-1).nonzero().squeeze(1)
        rows = self._frames(
            features.reshape(-1, FEATURE_DIM).index_select(0, idx),
            self._trans(features).reshape(-1, 3).index_select(0, idx),
        )
        out = torch.zeros(bs * n_frames, 21, 3, dtype=rows.dtype)
        return out.index_copy_(0, idx, rows).view(bs, n_frames, 21, 3)

    def _frames(self, flat: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """Frames (n, 135) with their translations (n, 3) -> MMM-21 joints (n, 21, 3) (a strided view)."""
        n = flat.shape[0]
        trans = trans.t()  # (3, n)

        # Gram-Schmidt of the needed joints in the (joint, component, frame) layout
        d6 = torch.empty(self.num_local, 6, n)
        src = flat[:, 3:].unflatten(-1, (NUM_FEATURE_JOINTS, 6)).permute(1, 2, 0)
        for dst, joints in self.need_runs:
            d6[dst].copy_(src[joints])
        a1, a2 = d6[:, :3], d6[:, 3:]  # overwritten by b1, b2 (in place: the same operations, less memory)
        b1 = torch.div(a1, _norm3(a1)[:, None], out=a1)
        p = b1 * a2
        dot = p[:, 0] + p[:, 1] + p[:, 2]
        u = torch.sub(a2, dot[:, None] * b1, out=a2)
        b2 = torch.div(u, _norm3(u)[:, None], out=a2)
        b3 = _cross3(b1, b2)
        rows = (b1[:, None], b2[:, None], b3[:, None])  # (K, 1, 3, n): row m of each local rotation

        # global rotations (K, 3, 3, n), level by level
        g = torch.empty(self.num_local, 3, 3, n)
        r0 = self.root_local
        g[r0, 0], g[r0, 1], g[r0, 2] = b1[r0], b2[r0], b3[r0]
        for run in self.rot_runs:
            gp, out = g[run.parents], g[run.children]
            torch.mul(gp[:, :, 0:1], rows[0][run.children], out=out)
            out.add_(gp[:, :, 1:2] * rows[1][run.children])
            out.add_(gp[:, :, 2:3] * rows[2][run.children])

        # bone vectors rotated by the parents' global rotations (M, 3, n), then positions (J + 2, 3, n)
        gb = g.index_select(0, self.bone_parents)
        bones = self.bones
        v = gb[:, :, 0] * bones[:, 0]
        v += gb[:, :, 1] * bones[:, 1]
        v += gb[:, :, 2] * bones[:, 2]
        pos = torch.empty(v.shape[0] + 1, 3, n)
        torch.add(trans, self.root_offset, out=pos[0])
        for run in self.pos_runs:
            vc = slice(run.children.start - 1, run.children.stop - 1)
            torch.add(pos[run.parents], v[vc], out=pos[run.children])

        # MMM joint j, axis a <- point _GATHER[j], AMASS axis (1, 2, 0)[a] (the last one negated)
        sel = pos.view(-1, n).index_select(0, self.out_rows).view(21, 3, n)
        sel[:, 2].neg_()
        out = sel.permute(2, 0, 1)  # (n, 21, 3), frames innermost in memory
        return out * MMM_SCALE if self.jointstype == "mmm" else out
