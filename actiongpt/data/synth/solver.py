"""Pose targets -> SMPL-H body rotations and AMASS translation (inverse kinematics + floor contact).

Legs: analytic two-bone IK from the hip to the ankle target with the knee turned towards the toes, so a
knee can only flex (never hyperextend or bend sideways); the pelvis is lowered where the legs could not
otherwise reach their feet. Arms: the upper arm is aimed from anatomical angles and the elbow is a
hinge about the rest pose's elbow axis, flexing one way only. Output follows AMASS: the root
orientation maps the body's y-up frame to the world's z-up frame (``Rx(+90 deg)``, as real AMASS
standing poses have) composed with the heading about world z, and ``trans`` follows SMPL-H's root
convention: the pelvis position (z up) minus the skeleton's rest pelvis, which is not rotated. A
final per-frame vertical shift puts the lowest sole point of every grounded frame on the floor (it is
sub-millimetre here because the IK already places the feet; it guards the invariant).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.rotations import axis_angle_to_matrix, matrix_to_axis_angle, rotation_about_axis

from .body import ANKLE, BALL, COLLAR, ELBOW, HIP, KNEE, SHOULDER, SIDE_SIGN, WRIST, BodyGeometry, J
from .targets import PoseTargets, concat, rot

DT = torch.float32  # the files store float32; float64 doubles the solve time for ~1 um
REACH = 0.998  # fraction of the full leg length the IK may use (a knee is never locked straight)
SPINE_SHARE = (0.4, 0.3, 0.3)  # spine1, spine2, spine3 share of the trunk angles
NECK_SHARE = (0.4, 0.6)  # neck, head
#: end points appended by forward_kinematics(with_end_points=True): left/right heel, left/right toe
SOLE_POINTS = (ANKLE[0], ANKLE[1], BALL[0], BALL[1], 22, 23, 24, 25)
LEFT_SOLE = (ANKLE[0], BALL[0], 22, 24)
RIGHT_SOLE = (ANKLE[1], BALL[1], 23, 25)
_RX90 = rotation_about_axis(torch.tensor(math.pi / 2, dtype=DT), "x")


@dataclass
class SolvedMotion:
    """``rotmats`` (T, 22, 3, 3): joint 0 the global root orientation in AMASS axes, the rest local;
    ``trans`` (T, 3) AMASS translation (z up); ``joints`` (T, 26, 3): 22 joints + heels and toe tips."""

    rotmats: torch.Tensor
    trans: torch.Tensor
    joints: torch.Tensor
    contact: np.ndarray
    airborne: np.ndarray
    poses: np.ndarray  # (T, 22, 3) axis-angle of ``rotmats`` (the AMASS ``poses`` body columns)
    stats: dict[str, float] = field(default_factory=dict)

    def axis_angle(self) -> np.ndarray:
        return self.poses


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=DT)


def _rx(a: torch.Tensor) -> torch.Tensor:
    return rotation_about_axis(a, "x")


def _ry(a: torch.Tensor) -> torch.Tensor:
    return rotation_about_axis(a, "y")


def _rz(a: torch.Tensor) -> torch.Tensor:
    return rotation_about_axis(a, "z")


def _trunk(angles: torch.Tensor, share: float) -> torch.Tensor:
    """(T, 3) (bend forward, lean left, twist left) -> local rotation for one joint of the chain."""
    a = angles * share
    return _ry(a[:, 2]) @ _rx(a[:, 0]) @ _rz(-a[:, 1])


def _perp(v: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Unit component of ``v`` orthogonal to unit ``axis``."""
    return F.normalize(v - (v * axis).sum(-1, keepdim=True) * axis, dim=-1)


def _frame_hinge(v: torch.Tensor, hinge: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns [v, hinge x v, hinge] with the hinge made orthogonal to v."""
    e1 = F.normalize(v, dim=-1)
    e3 = _perp(hinge, e1)
    e2 = torch.cross(e3, e1, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def _frame_plane(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns [v, w made orthogonal to v, v x w]."""
    e1 = F.normalize(v, dim=-1)
    e2 = _perp(w, e1)
    return torch.stack([e1, e2, torch.cross(e1, e2, dim=-1)], dim=-1)


def arm_directions(arms: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, 4) arm angles -> upper-arm direction and elbow bend direction, both in the chest frame."""
    s = float(SIDE_SIGN[side])
    flex, abd, swivel = arms[:, 0], arms[:, 1], arms[:, 3]
    d = torch.stack(
        [s * torch.sin(abd), -torch.cos(abd) * torch.cos(flex), torch.cos(abd) * torch.sin(flex)], -1
    )
    # Default bend plane: forearm goes forward (and a little up and inwards) from the upper arm.
    ref = torch.tensor([-0.3 * s, 0.5, 1.0], dtype=DT).expand_as(d)
    n0 = _perp(ref, d)
    medial = s * torch.cross(d, n0, dim=-1)
    n = torch.cos(swivel)[:, None] * n0 + torch.sin(swivel)[:, None] * medial
    return d, n


def pelvis_heights(tg: PoseTargets, geo: BodyGeometry, fps: float) -> np.ndarray:
    """Desired pelvis heights lowered where a leg could not reach its (weight-bearing) ankle target.

    The required drop (desired height minus the highest reachable one) is spread smoothly in time: a
    max-filter then two box filters of half-width ~50 ms give a curve that is never below the drop
    itself, so every planted foot stays reachable while the pelvis dips without jerks.
    """
    n = tg.num_frames
    y = tg.root[:, 1].copy()
    leg_max = REACH * geo.leg
    r = rot(tg.heading + tg.pelvis[:, 2], "y") @ rot(tg.pelvis[:, 0], "x") @ rot(-tg.pelvis[:, 1], "z")
    deficit = np.zeros(n)
    for i in range(2):
        off = r @ geo.hip_offset[i]
        dxz = np.hypot(*(tg.root + off - tg.ankle[:, i])[:, [0, 2]].T)
        limit = tg.ankle[:, i, 1] + np.sqrt(np.maximum(leg_max**2 - dxz**2, 0.05**2)) - off[:, 1]
        active = tg.reach[:, i] > 0.5
        deficit = np.maximum(deficit, np.where(active, y - limit, 0.0))
    deficit = np.maximum(deficit, 0.0)
    if deficit.any():
        h = max(1, round(0.05 * fps))
        d = maximum_filter1d(deficit, size=4 * h + 1, mode="nearest")
        d = uniform_filter1d(uniform_filter1d(d, 2 * h + 1, mode="nearest"), 2 * h + 1, mode="nearest")
        y = y - np.maximum(d, deficit)
    return y


def solve_frames(
    tg: PoseTargets, geo: BodyGeometry, pelvis_y: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame inverse kinematics (frames are independent, so many sequences can be solved at once).

    Returns local rotations (T, 22, 3, 3) with joint 0 the AMASS root orientation, the AMASS
    translation (T, 3) and the joints + heel/toe end points (T, 26, 3), before the floor correction.
    """
    n = tg.num_frames
    rest = torch.as_tensor(geo.rest, dtype=DT)
    root = _t(tg.root).clone()
    root[:, 1] = _t(pelvis_y)
    heading = _t(tg.heading)
    pel = _t(tg.pelvis)
    r_pelvis = _ry(heading + pel[:, 2]) @ _rx(pel[:, 0]) @ _rz(-pel[:, 1])
    ankle = _t(tg.ankle)
    foot_yaw = _t(tg.foot_yaw)
    foot_pitch = _t(tg.foot_pitch)
    leg_max = REACH * (geo.thigh + geo.shank)

    local = torch.zeros(n, 22, 3, 3, dtype=DT)
    local[:] = torch.eye(3, dtype=DT)
    spine = _t(tg.spine)
    for name, share in zip(("spine1", "spine2", "spine3"), SPINE_SHARE):
        local[:, J[name]] = _trunk(spine, share)
    neck = _t(tg.neck)
    local[:, J["neck"]] = _trunk(neck, NECK_SHARE[0])
    local[:, J["head"]] = _trunk(neck, NECK_SHARE[1])

    # Legs.
    up = torch.tensor([0.0, 1.0, 0.0], dtype=DT)
    zf = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    for i in range(2):
        hip = root + r_pelvis @ torch.as_tensor(geo.hip_offset[i], dtype=DT)
        vec = ankle[:, i] - hip
        dist = torch.linalg.norm(vec, dim=-1).clamp(0.15, leg_max)
        u = F.normalize(vec, dim=-1)
        fwd = torch.stack(
            [torch.sin(foot_yaw[:, i]), torch.zeros(n, dtype=DT), torch.cos(foot_yaw[:, i])], -1
        )
        p = _perp(fwd + 0.4 * up, u)
        l1, l2 = geo.thigh, geo.shank
        cos_a = ((l1**2 + dist**2 - l2**2) / (2 * l1 * dist)).clamp(-1.0, 1.0)
        sin_a = torch.sqrt(1 - cos_a**2)
        thigh = cos_a[:, None] * u + sin_a[:, None] * p
        knee = hip + l1 * thigh
        shank = F.normalize(hip + dist[:, None] * u - knee, dim=-1)
        hinge = F.normalize(torch.cross(thigh, _perp(p, thigh), dim=-1), dim=-1)
        a0 = F.normalize(rest[KNEE[i]] - rest[HIP[i]], dim=-1)
        s0 = F.normalize(rest[ANKLE[i]] - rest[KNEE[i]], dim=-1)
        c0 = F.normalize(torch.cross(a0, _perp(zf, a0), dim=-1), dim=-1)
        r_thigh = _frame_hinge(thigh, hinge) @ _frame_hinge(a0, c0).transpose(-1, -2)
        r_shank = _frame_hinge(shank, hinge) @ _frame_hinge(s0, c0).transpose(-1, -2)
        r_foot = _ry(foot_yaw[:, i]) @ _rx(foot_pitch[:, i])
        local[:, HIP[i]] = r_pelvis.transpose(-1, -2) @ r_thigh
        local[:, KNEE[i]] = r_thigh.transpose(-1, -2) @ r_shank
        local[:, ANKLE[i]] = r_shank.transpose(-1, -2) @ r_foot
        local[:, BALL[i]] = _rx(_t(tg.toe[:, i]))

    # Arms (directions are given in the chest = spine3 frame).
    r_chest = r_pelvis @ local[:, J["spine1"]] @ local[:, J["spine2"]] @ local[:, J["spine3"]]
    arms = _t(tg.arms)
    for i in range(2):
        s = float(SIDE_SIGN[i])
        d, nrm = arm_directions(arms[:, i], i)
        r_collar = _rz(s * _t(tg.shrug[:, i]))
        local[:, COLLAR[i]] = r_collar
        r0 = F.normalize(rest[ELBOW[i]] - rest[SHOULDER[i]], dim=-1)
        rest_frame = _frame_plane(r0, zf)
        r_upper = r_chest @ _frame_plane(d, nrm) @ rest_frame.transpose(-1, -2)
        local[:, SHOULDER[i]] = (r_chest @ r_collar).transpose(-1, -2) @ r_upper
        elbow_axis = rest_frame[:, 2]  # r0 x forward: flexion turns the forearm towards the front
        local[:, ELBOW[i]] = axis_angle_to_matrix(elbow_axis * arms[:, i, 2:3])
        local[:, WRIST[i]] = axis_angle_to_matrix(elbow_axis * 0.5 * _t(tg.wrist[:, i : i + 1]))

    # To AMASS axes: world z up.
    rx90 = _RX90.to(DT)
    local[:, 0] = rx90 @ r_pelvis
    skel = geo.skeleton.to(dtype=DT)
    trans = root @ rx90.T - skel.rest_joints[0]  # FK puts the pelvis at trans + rest[0]
    joints = forward_kinematics(local, trans, skel, with_end_points=True)
    return local, trans, joints


def floor_correction(joints: torch.Tensor, airborne: np.ndarray) -> np.ndarray:
    """Vertical shift (T,) that puts the lowest sole point of every grounded frame on the floor,
    interpolated linearly across flight phases."""
    n = joints.shape[0]
    low = joints[:, list(SOLE_POINTS), 2].min(dim=1).values.numpy()
    grounded = np.flatnonzero(~np.asarray(airborne, dtype=bool))
    if not len(grounded):
        return np.zeros(n)
    return np.interp(np.arange(n), grounded, -low[grounded])


def _finish(
    tg: PoseTargets, local: torch.Tensor, trans: torch.Tensor, joints: torch.Tensor, poses: np.ndarray
) -> SolvedMotion:
    airborne = np.asarray(tg.airborne, dtype=bool)
    dz = torch.as_tensor(floor_correction(joints, airborne), dtype=DT)
    trans = trans.clone()
    trans[:, 2] += dz
    joints = joints.clone()
    joints[..., 2] += dz[:, None]
    stats = {"max_floor_shift_m": float(dz.abs().max()) if len(dz) else 0.0}
    return SolvedMotion(local, trans, joints, np.asarray(tg.contact, dtype=bool), airborne, poses, stats)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily run torch on ``n`` intra-op threads.

    The solver's tensors are long but thin (T x 3 x 3); on a busy machine OpenMP synchronisation costs
    far more than it saves (measured: cos of 27k doubles 19 ms on 2 threads vs 0.08 ms on 1).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def solve(tg: PoseTargets, geo: BodyGeometry, fps: float) -> SolvedMotion:
    """Inverse kinematics and floor contact for all frames of ``tg`` (captured at ``fps``)."""
    return solve_many([(tg, fps)], geo)[0]


def solve_many(items: list[tuple[PoseTargets, float]], geo: BodyGeometry) -> list[SolvedMotion]:
    """`solve` for several sequences at once: the per-frame part runs on all frames together (fast on
    CPUs where each tensor operation has a large fixed cost); temporal steps stay per sequence."""
    if not items:
        return []
    for tg, _ in items:
        tg.check()
    ys = [pelvis_heights(tg, geo, fps) for tg, fps in items]
    big = concat([tg for tg, _ in items]) if len(items) > 1 else items[0][0]
    with torch_threads(1):
        local, trans, joints = solve_frames(big, geo, np.concatenate(ys))
        poses = matrix_to_axis_angle(local).numpy()
        out, start = [], 0
        for tg, _ in items:
            end = start + tg.num_frames
            out.append(_finish(tg, local[start:end], trans[start:end], joints[start:end], poses[start:end]))
            start = end
    return out
