"""Physical plausibility measures of a joint sequence (used as a generation guard and by the tests).

Limits (metres, seconds), chosen for everyday, non-athletic motion and well inside what people reach,
so that a violation means a modelling glitch, not an unusual person:
- feet: a foot marked as planted has a sole point within 3 cm of the floor (the ball joint sits 2.1 cm
  above the floor when the foot is flat) and does not slide (its floor point moves < 0.15 m/s); every
  frame not marked airborne has a sole point within 3 cm of the floor (no floating); nothing goes more
  than 2 cm below the floor (no sinking);
- speeds (frame-to-frame at the capture rate): trunk joints (pelvis, spine, hips, collars, shoulders,
  neck, head) < 7 m/s (a brisk run is 3-4 m/s; sprinters reach ~10 m/s); knees and elbows < 10 m/s;
  wrists, ankles, feet and toes < 12 m/s (boxers' punches ~9-12 m/s, a runner's swinging foot ~2x the
  running speed);
- pelvis height 0.45-1.6 m (seated on a chair-height surface ... top of a vigorous jump);
- knees and elbows flex one way only: the hinge component of their local rotation is never more than
  3 degrees into hyperextension; arms stay out of the torso: elbows and wrists keep >= 7 cm from the
  pelvis-neck axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actiongpt.motion.skeleton import JOINT_INDEX as J

TRUNK = tuple(
    J[n]
    for n in (
        "pelvis",
        "spine1",
        "spine2",
        "spine3",
        "left_hip",
        "right_hip",
        "left_collar",
        "right_collar",
        "left_shoulder",
        "right_shoulder",
        "neck",
        "head",
    )
)
MID = tuple(J[n] for n in ("left_knee", "right_knee", "left_elbow", "right_elbow"))
DISTAL = (
    J["left_wrist"],
    J["right_wrist"],
    J["left_ankle"],
    J["right_ankle"],
    J["left_foot"],
    J["right_foot"],
    22,
    23,
    24,
    25,
)
LIMITS = {"trunk": 7.0, "mid": 10.0, "distal": 12.0}
# per foot: sole points in the (T, 26, 3) joints layout (ankle, ball, heel, toe tip) and floor points
SOLE = ((J["left_ankle"], J["left_foot"], 22, 24), (J["right_ankle"], J["right_foot"], 23, 25))
FLOOR_POINTS = ((22, 24), (23, 25))  # heel and toe tip touch the floor


@dataclass
class PhysicsReport:
    contact_height: float = 0.0  # worst planted-foot height (m)
    floating: float = 0.0  # worst lowest-sole height of a grounded frame (m)
    penetration: float = 0.0  # deepest point below the floor (m, positive = below)
    slide: float = 0.0  # worst planted-foot floor-point speed (m/s)
    speed: dict[str, float] = field(default_factory=dict)  # worst speed per joint group (m/s)
    pelvis_range: tuple[float, float] = (0.0, 0.0)
    hyperextension: float = 0.0  # worst knee/elbow hinge angle past straight (rad)
    arm_torso: float = 1.0  # closest elbow/wrist to the torso axis (m)

    def violations(self) -> list[str]:
        out = []
        if self.contact_height > 0.03:
            out.append(f"planted foot {self.contact_height * 100:.1f} cm above the floor")
        if self.floating > 0.03:
            out.append(f"body floating {self.floating * 100:.1f} cm above the floor while not airborne")
        if self.penetration > 0.02:
            out.append(f"sole {self.penetration * 100:.1f} cm below the floor")
        if self.slide > 0.15:
            out.append(f"planted foot sliding at {self.slide:.2f} m/s")
        for group, v in self.speed.items():
            if v > LIMITS[group]:
                out.append(f"{group} joint at {v:.1f} m/s (limit {LIMITS[group]})")
        lo, hi = self.pelvis_range
        if lo < 0.45 or hi > 1.6:
            out.append(f"pelvis height {lo:.2f}..{hi:.2f} m outside 0.45..1.6")
        if self.hyperextension > np.radians(3):
            out.append(f"knee/elbow hyperextended by {np.degrees(self.hyperextension):.1f} deg")
        if self.arm_torso < 0.07:
            out.append(f"arm {self.arm_torso * 100:.1f} cm from the torso axis")
        return out


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    u = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + u[..., None] * ab), axis=-1)


def physics_report(
    joints: np.ndarray,
    fps: float,
    contact: np.ndarray,
    airborne: np.ndarray,
    local_axis_angle: np.ndarray | None = None,
) -> PhysicsReport:
    """Measure ``joints`` (T, 26, 3) z-up (22 joints + heels + toe tips) against the limits above.

    ``contact`` (T, 2) marks planted feet, ``airborne`` (T,) flight frames; ``local_axis_angle``
    (T, 22, 3) the local joint rotations (for the hinge checks), optional."""
    j = np.asarray(joints, dtype=np.float64)
    rep = PhysicsReport()
    z = j[..., 2]
    vel = np.linalg.norm(np.diff(j, axis=0), axis=-1) * fps  # (T-1, 26)
    hvel = np.linalg.norm(np.diff(j[..., :2], axis=0), axis=-1) * fps
    for side in (0, 1):
        planted = np.asarray(contact[:, side], dtype=bool)
        sole_z = z[:, list(SOLE[side])].min(1)
        if planted.any():
            rep.contact_height = max(rep.contact_height, float(sole_z[planted].max()))
            # a planted foot keeps at least one of heel/toe tip on the floor and still
            both = planted[1:] & planted[:-1]
            fp = list(FLOOR_POINTS[side])
            on_floor = z[1:, fp] < 0.03
            speed = np.where(on_floor, hvel[:, fp], np.inf).min(1)
            if both.any():
                rep.slide = max(rep.slide, float(speed[both].max()))
    all_sole = z[:, [i for s in SOLE for i in s]]
    grounded = ~np.asarray(airborne, dtype=bool)
    if grounded.any():
        rep.floating = float(all_sole[grounded].min(1).max())
    rep.penetration = float(max(0.0, -all_sole.min(), -z.min()))
    if len(vel):
        rep.speed = {
            "trunk": float(vel[:, list(TRUNK)].max()),
            "mid": float(vel[:, list(MID)].max()),
            "distal": float(vel[:, list(DISTAL)].max()),
        }
    rep.pelvis_range = (float(z[:, 0].min()), float(z[:, 0].max()))
    if local_axis_angle is not None:
        aa = np.asarray(local_axis_angle)
        knee_x = aa[:, [J["left_knee"], J["right_knee"]], 0]  # flexion is +x
        elbow_y = np.stack(
            [-aa[:, J["left_elbow"], 1], aa[:, J["right_elbow"], 1]], -1
        )  # flexion: -y left, +y right
        rep.hyperextension = float(max(0.0, -knee_x.min(), -elbow_y.min()))
    arms = j[:, [J["left_elbow"], J["right_elbow"], J["left_wrist"], J["right_wrist"]]]
    axis_a, axis_b = j[:, None, J["pelvis"]], j[:, None, J["neck"]]
    rep.arm_torso = float(_segment_distance(arms, axis_a, axis_b).min())
    return rep
