"""Per-frame pose targets: what a motion model asks for before inverse kinematics turns it into rotations.

All positions are in frame G (y up, floor at y = 0; see `body`). Arms are given by anatomical angles in
the chest frame, legs by ankle targets and foot orientation (solved by two-bone IK), so feet can be
planted exactly and elbows/knees can only bend one way.

Channels (T frames; paired channels: index 0 = left, 1 = right):
- ``root`` (T, 3): desired pelvis position (the solver may lower y so the legs can reach the feet);
- ``heading`` (T,): facing angle about +y; ``pelvis`` (T, 3): (forward bend, lean left, yaw offset);
- ``spine`` (T, 3) and ``neck`` (T, 3): (forward bend, lean left, twist left), spread over the joints;
- ``arms`` (T, 2, 4): (flexion, abduction, elbow flexion, swivel) in radians. Flexion raises the arm
  forward, abduction sideways (both 0 = hanging); the elbow flexes in a plane turned by the swivel
  (positive = towards the body's midline);
- ``shrug`` (T, 2), ``wrist`` (T, 2): collar elevation and wrist flexion;
- ``ankle`` (T, 2, 3), ``foot_yaw`` (T, 2), ``foot_pitch`` (T, 2) (+ = toes down), ``toe`` (T, 2) toe bend;
- ``contact`` (T, 2): the foot is planted (its heel or ball/toe stays on the floor and does not slide);
- ``reach`` (T, 2) in [0, 1]: how strongly the pelvis is lowered so the leg reaches this ankle target
  (1 for planted feet; faded out during a swing so a trailing foot does not drag the body down);
- ``airborne`` (T,): no foot touches the floor (flight phase of jumps and runs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .body import BodyGeometry

_FIELDS = (
    "root",
    "heading",
    "pelvis",
    "spine",
    "neck",
    "arms",
    "shrug",
    "wrist",
    "ankle",
    "foot_yaw",
    "foot_pitch",
    "toe",
    "contact",
    "reach",
    "airborne",
)
#: channels that are blended during transitions (feet stay where they are)
SOFT_FIELDS = ("root", "pelvis", "spine", "neck", "arms", "shrug", "wrist")


def rot(angle: np.ndarray | float, axis: str) -> np.ndarray:
    """Elementary rotation matrices (..., 3, 3), numpy twin of `rotations.rotation_about_axis` (the
    planner calls it thousands of times on small arrays, where a torch round trip costs 10x more)."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    if axis == "x":
        rows = [i, o, o, o, c, -s, o, s, c]
    elif axis == "y":
        rows = [c, o, s, o, i, o, -s, o, c]
    elif axis == "z":
        rows = [c, -s, o, s, c, o, o, o, i]
    else:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    return np.stack(rows, axis=-1).reshape(*a.shape, 3, 3)


def rotate_y(psi: np.ndarray | float, v: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 3) about +y by ``psi`` (broadcasting)."""
    psi = np.asarray(psi, dtype=np.float64)
    c, s = np.cos(psi), np.sin(psi)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([c * x + s * z, np.broadcast_to(y, np.broadcast(x, c).shape), -s * x + c * z], axis=-1)


@dataclass
class PoseTargets:
    root: np.ndarray
    heading: np.ndarray
    pelvis: np.ndarray
    spine: np.ndarray
    neck: np.ndarray
    arms: np.ndarray
    shrug: np.ndarray
    wrist: np.ndarray
    ankle: np.ndarray
    foot_yaw: np.ndarray
    foot_pitch: np.ndarray
    toe: np.ndarray
    contact: np.ndarray
    reach: np.ndarray
    airborne: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.heading.shape[0])

    def copy(self) -> PoseTargets:
        return PoseTargets(**{f: getattr(self, f).copy() for f in _FIELDS})

    def frames(self, index: slice | np.ndarray | int) -> PoseTargets:
        """A subset of frames (an int keeps a length-1 time axis)."""
        if isinstance(index, (int, np.integer)):
            i = int(index) % self.num_frames
            index = slice(i, i + 1)
        return PoseTargets(**{f: getattr(self, f)[index].copy() for f in _FIELDS})

    def transformed(self, dx: float, dz: float, dpsi: float) -> PoseTargets:
        """The same motion after turning by ``dpsi`` about +y and moving by (dx, dz) on the floor."""
        out = self.copy()
        shift = np.array([dx, 0.0, dz])
        out.root = rotate_y(dpsi, self.root) + shift
        out.ankle = rotate_y(dpsi, self.ankle) + shift
        out.heading = self.heading + dpsi
        out.foot_yaw = self.foot_yaw + dpsi
        return out

    def check(self) -> None:
        t = self.num_frames
        shapes = {
            "root": (t, 3),
            "heading": (t,),
            "pelvis": (t, 3),
            "spine": (t, 3),
            "neck": (t, 3),
            "arms": (t, 2, 4),
            "shrug": (t, 2),
            "wrist": (t, 2),
            "ankle": (t, 2, 3),
            "foot_yaw": (t, 2),
            "foot_pitch": (t, 2),
            "toe": (t, 2),
            "contact": (t, 2),
            "reach": (t, 2),
            "airborne": (t,),
        }
        for name, shape in shapes.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"PoseTargets.{name} has shape {arr.shape}, expected {shape}")
            if arr.dtype != bool and not np.isfinite(arr).all():
                raise ValueError(f"PoseTargets.{name} has non-finite values")


def concat(parts: list[PoseTargets]) -> PoseTargets:
    return PoseTargets(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS})


def relaxed_arms(geo: BodyGeometry | None = None) -> np.ndarray:
    """(2, 4) arms hanging relaxed: slightly abducted, elbows a little bent."""
    del geo
    return np.array([[0.05, 0.12, 0.25, 0.0], [0.05, 0.12, 0.25, 0.0]])


def standing(geo: BodyGeometry, num_frames: int, pelvis_drop: float = 0.012) -> PoseTargets:
    """Neutral standing (root at the origin, heading 0, feet flat in the rest stance) for ``num_frames``."""
    t = num_frames
    root = np.zeros((t, 3))
    root[:, 1] = geo.floor - pelvis_drop  # knees a touch soft, as people stand
    feet = geo.neutral_feet()
    return PoseTargets(
        root=root,
        heading=np.zeros(t),
        pelvis=np.zeros((t, 3)),
        spine=np.zeros((t, 3)),
        neck=np.zeros((t, 3)),
        arms=np.broadcast_to(relaxed_arms(), (t, 2, 4)).copy(),
        shrug=np.zeros((t, 2)),
        wrist=np.zeros((t, 2)),
        ankle=np.broadcast_to(feet, (t, 2, 3)).copy(),
        foot_yaw=np.zeros((t, 2)),
        foot_pitch=np.zeros((t, 2)),
        toe=np.zeros((t, 2)),
        contact=np.ones((t, 2), dtype=bool),
        reach=np.ones((t, 2)),
        airborne=np.zeros(t, dtype=bool),
    )


def planted_foot(
    geo: BodyGeometry, side: int, xz: np.ndarray, yaw: np.ndarray, pitch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ankle position (..., 3) and toe bend (...) of a foot on the floor at footprint ``xz`` (ankle, flat).

    ``pitch`` < 0 rolls the foot back onto its heel (toes up), > 0 lifts the heel and pivots on the ball
    with the toes kept flat on the floor, so the floor contact point never moves.
    """
    xz = np.asarray(xz, dtype=np.float64)
    yaw = np.asarray(yaw, dtype=np.float64)
    pitch = np.asarray(pitch, dtype=np.float64)
    flat = np.stack([xz[..., 0], np.full(xz.shape[:-1], geo.ankle_height), xz[..., 1]], axis=-1)
    ry = rot(yaw, "y")
    r = ry @ rot(pitch, "x")
    heel_pt = flat + (ry @ geo.heel[side])
    ball_pt = flat + (ry @ geo.ball[side])
    on_heel = heel_pt - (r @ geo.heel[side])
    on_ball = ball_pt - (r @ geo.ball[side])
    ankle = np.where((pitch < 0)[..., None], on_heel, on_ball)
    return ankle, -np.maximum(pitch, 0.0)


def sole_points(
    geo: BodyGeometry, side: int, ankle: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, toe: np.ndarray
) -> np.ndarray:
    """(..., 3, 3) heel, ball and toe-tip positions of a foot pose (for floor-clearance checks)."""
    r = rot(yaw, "y") @ rot(pitch, "x")
    heel = ankle + r @ geo.heel[side]
    ball = ankle + r @ geo.ball[side]
    tip = ball + (r @ rot(toe, "x")) @ geo.toe[side]
    return np.stack([heel, ball, tip], axis=-2)


def fields() -> tuple[str, ...]:
    return _FIELDS


def replace(tg: PoseTargets, **kwargs: np.ndarray) -> PoseTargets:
    return dataclasses.replace(tg, **kwargs)
