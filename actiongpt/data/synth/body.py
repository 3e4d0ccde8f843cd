"""Body geometry the motion models need, measured once from a `Skeleton`.

The generator works in the skeleton's own frame "G": y up, the body faces +z, its left is +x, the floor
at y = 0 (so a standing pelvis is at ``y = floor_offset``). Angles used throughout the package:

- heading ``psi``: rotation about +y, positive turns the body to its left (``Ry(psi)``);
- forward bend (pelvis, spine, head) ``Rx(+a)`` (turns up into forward);
- foot pitch ``Rx(+a)`` (toes down, heel up), negative = toes up;
- lateral lean to the body's left ``Rz(-a)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actiongpt.motion.skeleton import JOINT_INDEX, Skeleton, bundled_skeleton

J = JOINT_INDEX
#: index 0 = left, 1 = right for the paired channels (arms, feet); lateral sign of each side in G
SIDE_SIGN = np.array([1.0, -1.0])
HIP = (J["left_hip"], J["right_hip"])
KNEE = (J["left_knee"], J["right_knee"])
ANKLE = (J["left_ankle"], J["right_ankle"])
BALL = (J["left_foot"], J["right_foot"])
COLLAR = (J["left_collar"], J["right_collar"])
SHOULDER = (J["left_shoulder"], J["right_shoulder"])
ELBOW = (J["left_elbow"], J["right_elbow"])
WRIST = (J["left_wrist"], J["right_wrist"])


@dataclass(frozen=True)
class BodyGeometry:
    """Lengths and rest offsets (metres, frame G with the pelvis at the origin) used by the motion models."""

    skeleton: Skeleton
    rest: np.ndarray  # (22, 3) rest joints, pelvis at origin
    floor: float  # pelvis height above the floor in the rest pose
    hip_offset: np.ndarray  # (2, 3) hip joints relative to the pelvis
    thigh: float
    shank: float
    ankle_height: float  # ankle above the floor with the foot flat
    heel: np.ndarray  # (2, 3) heel end point relative to the ankle (rest orientation)
    ball: np.ndarray  # (2, 3) ball ("foot" joint) relative to the ankle
    toe: np.ndarray  # (2, 3) toe tip relative to the ball
    stance_half_width: float  # lateral ankle offset of the neutral stance (rest pose)
    stance_z: float  # forward ankle offset of the neutral stance

    @property
    def leg(self) -> float:
        return self.thigh + self.shank

    def neutral_feet(self) -> np.ndarray:
        """(2, 3) flat-foot ankle positions of the neutral stance (root at the origin, heading 0)."""
        out = self.rest[list(ANKLE)].copy()
        out[:, 1] = self.ankle_height
        return out


def body_geometry(skeleton: Skeleton | None = None) -> BodyGeometry:
    """Measure a skeleton (the bundled one by default); its end points must include heels and toes."""
    skel = skeleton or bundled_skeleton()
    rest = skel.rest_joints.double().numpy()
    rest = rest - rest[0]
    ends = skel.end_points.double().numpy() - skel.rest_joints[0].double().numpy()
    floor = float(skel.floor_offset())
    heel = np.stack(
        [ends[skel.end_point(f"{s}_heel")] - rest[ANKLE[i]] for i, s in enumerate(("left", "right"))]
    )
    toe = np.stack(
        [ends[skel.end_point(f"{s}_toe")] - rest[BALL[i]] for i, s in enumerate(("left", "right"))]
    )
    ball = np.stack([rest[BALL[i]] - rest[ANKLE[i]] for i in range(2)])
    return BodyGeometry(
        skeleton=skel,
        rest=rest,
        floor=floor,
        hip_offset=rest[list(HIP)],
        thigh=float(np.linalg.norm(rest[KNEE[0]] - rest[HIP[0]])),
        shank=float(np.linalg.norm(rest[ANKLE[0]] - rest[KNEE[0]])),
        ankle_height=float(rest[ANKLE[0], 1] + floor),
        heel=heel,
        ball=ball,
        toe=toe,
        stance_half_width=float(rest[ANKLE[0], 0]),
        stance_z=float(rest[ANKLE[0], 2]),
    )
