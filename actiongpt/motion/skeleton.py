"""The 22-joint SMPL-H body topology and the bundled body skeleton.

A ``Skeleton`` holds absolute rest-pose joint positions in the SMPL body frame (y up, the body faces +z,
its left side is +x), exactly like the ``J`` that SMPL-H regresses from its shaped template. Forward
kinematics (``fk.py``) follows SMPL-H's root convention: the global orientation turns the body about the
pelvis joint and the pelvis lands at ``trans + rest[0]``, the rest offset *not* rotated. AMASS ``trans``
translates SMPL-H's model origin, so the bundled body keeps its pelvis where SMPL-H's male template
regresses it (``SMPLH_REST_PELVIS``, 24 cm below and 3 cm in front of the origin): real AMASS sequences
then land where the captured body was, up to the subject's own size (``stature.py`` fits that). Before this
convention the bundled pelvis sat at the origin, so every joint was off by this constant vector; a constant
shift leaves APE/AVE (floor removed, trajectory re-integrated) and the normalised features unchanged.

Besides the 22 joints a skeleton carries *end points* rigidly attached to a joint: heels and toe tips.
The heels are the MMM evaluation layout's ``LMrot``/``RMrot`` (SMPL-H takes them from mesh vertices;
rigidly attached to the ankle they move the same way up to skin deformation), and heels + toe tips give
the sole used for foot-contact checks.

Bundled proportions: segment lengths as fractions of stature H from the anthropometric table of
D. A. Winter, *Biomechanics and Motor Control of Human Movement* (4th ed., 2009, Fig. 4.1, after
Drillis & Contini 1966), for H = 1.75 m (a typical adult male, matching TEACH's male SMPL-H body):
ankle height 0.039H, knee height 0.285H, hip (greater trochanter) height 0.530H, shoulder height 0.818H,
chin 0.870H, hip-joint width 0.191H, shoulder width 0.259H, upper arm 0.186H, forearm 0.146H,
foot length 0.152H, with the spine split into SMPL's pelvis/spine1/spine2/spine3/neck/head joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SMPLH_BODY_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip

SMPLH_BODY_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
)  # fmt: skip

NUM_BODY_JOINTS = 22
JOINT_INDEX = {name: i for i, name in enumerate(SMPLH_BODY_JOINTS)}

# End points: name -> parent joint. Heels hang off the ankles, toe tips off the foot (ball) joints.
END_POINT_PARENTS: dict[str, str] = {
    "left_heel": "left_ankle",
    "right_heel": "right_ankle",
    "left_toe": "left_foot",
    "right_toe": "right_foot",
}

STATURE_M = 1.75
#: SMPL-H's male template pelvis joint (J_regressor @ v_template, mean shape; y up, +z forward, metres),
#: with its 2 mm lateral component dropped so the bundled body stays mirror-symmetric.
SMPLH_REST_PELVIS = (0.0, -0.24, 0.028)


@dataclass(frozen=True)
class Skeleton:
    """Rest joints (22, 3) and end points (E, 3), both absolute, in the SMPL body frame (y up, +z forward)."""

    rest_joints: torch.Tensor
    end_points: torch.Tensor
    end_point_names: tuple[str, ...]
    end_point_parents: tuple[int, ...]
    parents: tuple[int, ...] = SMPLH_BODY_PARENTS
    joint_names: tuple[str, ...] = SMPLH_BODY_JOINTS
    name: str = "custom"

    def __post_init__(self) -> None:
        if tuple(self.rest_joints.shape) != (len(self.parents), 3):
            raise ValueError(
                f"rest_joints must be ({len(self.parents)}, 3), got {tuple(self.rest_joints.shape)}"
            )
        if tuple(self.end_points.shape) != (len(self.end_point_names), 3):
            raise ValueError("end_points must be (E, 3) with one row per end point name")

    def end_point(self, name: str) -> int:
        return self.end_point_names.index(name)

    @property
    def offsets(self) -> torch.Tensor:
        """Bone vectors from each joint's parent (row 0 is the root's absolute rest position)."""
        par = torch.tensor([max(p, 0) for p in self.parents])
        off = self.rest_joints - self.rest_joints[par]
        off[0] = self.rest_joints[0]
        return off

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Skeleton:
        return Skeleton(
            rest_joints=self.rest_joints.to(device=device, dtype=dtype),
            end_points=self.end_points.to(device=device, dtype=dtype),
            end_point_names=self.end_point_names,
            end_point_parents=self.end_point_parents,
            parents=self.parents,
            joint_names=self.joint_names,
            name=self.name,
        )

    def floor_offset(self) -> float:
        """Height of the pelvis above the lowest sole point in the rest pose (metres)."""
        low = torch.cat([self.rest_joints, self.end_points])[:, 1].min()
        return float(self.rest_joints[0, 1] - low)

    def standing_trans_z(self) -> float:
        """AMASS ``trans`` z of the upright rest pose (root ``Rx(+90 deg)``) with the soles on the floor.

        The pelvis lands at ``trans + rest[0]`` unrotated, so the body-frame z (forward) of the rest
        pelvis adds to the world height."""
        return self.floor_offset() - float(self.rest_joints[0, 2])

    def scaled(self, factor: float) -> Skeleton:
        """The same body ``factor`` times as large, scaled about the model origin (as SMPL-H's shape
        coefficients grow a body about its template origin, the rest pelvis offset scales too)."""
        if not factor > 0:
            raise ValueError(f"scale factor must be positive, got {factor}")
        return Skeleton(
            rest_joints=self.rest_joints * factor,
            end_points=self.end_points * factor,
            end_point_names=self.end_point_names,
            end_point_parents=self.end_point_parents,
            parents=self.parents,
            joint_names=self.joint_names,
            name=self.name if factor == 1.0 else f"{self.name}x{factor:.3f}",
        )


def _bundled_rest_joints(h: float = STATURE_M) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute rest positions, built with the floor at y = 0 and then shifted so the pelvis sits at
    ``SMPLH_REST_PELVIS``."""
    ankle_y, knee_y, hip_y = 0.039 * h, 0.285 * h, 0.530 * h
    shoulder_y, chin_y = 0.818 * h, 0.870 * h
    hip_dx, shoulder_dx = 0.191 * h / 2, 0.259 * h / 2
    upper_arm, forearm = 0.186 * h, 0.146 * h
    foot_len = 0.152 * h
    heel_back = 0.22 * foot_len  # the ankle sits about a fifth of the foot length in front of the heel
    ball_fwd = 0.55 * foot_len  # ball of the foot (SMPL's "foot" joint) in front of the ankle
    pelvis_y = hip_y + 0.035 * h  # SMPL's pelvis joint sits a few cm above the hip joints
    j = {
        "pelvis": (0.0, pelvis_y, 0.0),
        "left_hip": (hip_dx, hip_y, 0.0),
        "right_hip": (-hip_dx, hip_y, 0.0),
        "spine1": (0.0, pelvis_y + 0.060 * h, -0.01),
        "left_knee": (hip_dx + 0.008, knee_y, 0.005),
        "right_knee": (-hip_dx - 0.008, knee_y, 0.005),
        "spine2": (0.0, pelvis_y + 0.135 * h, 0.0),
        "left_ankle": (hip_dx + 0.012, ankle_y, -0.01),
        "right_ankle": (-hip_dx - 0.012, ankle_y, -0.01),
        "spine3": (0.0, pelvis_y + 0.165 * h, 0.01),
        "left_foot": (hip_dx + 0.02, 0.012 * h, -0.01 + ball_fwd),
        "right_foot": (-hip_dx - 0.02, 0.012 * h, -0.01 + ball_fwd),
        "neck": (0.0, shoulder_y + 0.035 * h, -0.01),
        "left_collar": (0.045 * h, shoulder_y + 0.012 * h, -0.005),
        "right_collar": (-0.045 * h, shoulder_y + 0.012 * h, -0.005),
        "head": (0.0, chin_y + 0.02 * h, 0.02),
        "left_shoulder": (shoulder_dx, shoulder_y, -0.01),
        "right_shoulder": (-shoulder_dx, shoulder_y, -0.01),
        # A-pose-free T-pose like SMPL's template: arms stretched sideways along +-x.
        "left_elbow": (shoulder_dx + upper_arm, shoulder_y, -0.02),
        "right_elbow": (-shoulder_dx - upper_arm, shoulder_y, -0.02),
        "left_wrist": (shoulder_dx + upper_arm + forearm, shoulder_y, -0.02),
        "right_wrist": (-shoulder_dx - upper_arm - forearm, shoulder_y, -0.02),
    }
    ends = {
        "left_heel": (hip_dx + 0.012, 0.0, -0.01 - heel_back),
        "right_heel": (-hip_dx - 0.012, 0.0, -0.01 - heel_back),
        "left_toe": (hip_dx + 0.025, 0.0, -0.01 + foot_len - heel_back),
        "right_toe": (-hip_dx - 0.025, 0.0, -0.01 + foot_len - heel_back),
    }
    rest = torch.tensor([j[n] for n in SMPLH_BODY_JOINTS], dtype=torch.float32)
    end = torch.tensor([ends[n] for n in END_POINT_PARENTS], dtype=torch.float32)
    # SMPL-H's root convention: the pelvis sits at the template's rest pelvis, not at the model origin.
    shift = rest[0] - torch.tensor(SMPLH_REST_PELVIS, dtype=torch.float32)
    return rest - shift, end - shift


def bundled_skeleton() -> Skeleton:
    """The shipped 22-joint body with heel and toe end points (see the module docstring for sources)."""
    rest, ends = _bundled_rest_joints()
    return Skeleton(
        rest_joints=rest,
        end_points=ends,
        end_point_names=tuple(END_POINT_PARENTS),
        end_point_parents=tuple(JOINT_INDEX[p] for p in END_POINT_PARENTS.values()),
        name="bundled",
    )
