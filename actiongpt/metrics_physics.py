"""Physical plausibility of motions from their MMM-21 joints (metres, y up, the floor at y = 0).

Per sequence, as sums and counts so that any number of sequences (and ranks) combine exactly:

- foot skating (m/s): horizontal speed of the heel and toe joints while in contact with the floor (below
  ``contact_height`` in both frames of a step), averaged over those contact steps. A planted foot gives 0, a
  foot sliding along the floor its sliding speed.
- floor penetration (m): depth of the lowest joint below the floor, averaged over frames (0 above it).
- floating (m): height of the lowest joint above ``contact_height``, averaged over frames (0 when some joint
  touches the floor).
- jerk (m/s^3): magnitude of the third time derivative of every joint position, averaged over joints and
  the frames where it exists (sequences of 4 frames or more).

The floor is the features' ground plane (y = 0); the reference motions are scored the same way, so their
row says how far the data itself is from these ideals.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from actiongpt.motion.mmm import MMM21_JOINTS

FOOT_JOINTS = tuple(MMM21_JOINTS.index(n) for n in ("LMrot", "LF", "RMrot", "RF"))  # heels and toes
CONTACT_HEIGHT = 0.05  # metres
PHYSICS_KEYS = ("foot_skating", "floor_penetration", "floating", "jerk")


@dataclass
class PhysicsSums:
    """Per-sequence sums (B, 4) and counts (B, 4) of the four quantities, in ``PHYSICS_KEYS`` order."""

    sums: Tensor
    counts: Tensor

    def per_sequence(self) -> Tensor:
        """(B, 4) means (NaN where a sequence has no count, e.g. no contact step)."""
        return self.sums / self.counts

    def pooled(self) -> dict[str, float]:
        total = self.sums.sum(0) / self.counts.sum(0).clamp_min(1)
        return {k: float(v) for k, v in zip(PHYSICS_KEYS, total)}


def physics_sums(
    joints: Tensor, lengths: Tensor, fps: float, contact_height: float = CONTACT_HEIGHT
) -> PhysicsSums:
    """Joints (B, T, 21, 3) zero-padded after each length -> per-sequence sums and counts (float64)."""
    if joints.dim() != 4 or joints.shape[-1] != 3:
        raise ValueError(f"joints must be (B, T, J, 3), got {tuple(joints.shape)}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    j = joints.double()
    bs, t = j.shape[:2]
    lengths = lengths.to(j.device).long()
    frame = torch.arange(t, device=j.device)[None, :]
    valid = frame < lengths[:, None]  # (B, T)
    step = valid[:, 1:] & valid[:, :-1]  # frames t and t+1 both valid

    feet = j[:, :, list(FOOT_JOINTS)]  # (B, T, 4, 3)
    low = feet[..., 1] < contact_height  # (B, T, 4)
    contact = low[:, 1:] & low[:, :-1] & step[..., None]
    speed = (feet[:, 1:, :, [0, 2]] - feet[:, :-1, :, [0, 2]]).norm(dim=-1) * fps  # (B, T-1, 4)
    skate_sum = (speed * contact).sum((1, 2))
    skate_n = contact.sum((1, 2)).double()

    lowest = j[..., 1].amin(-1)  # (B, T)
    frames = valid.sum(1).double()
    pen = (-lowest).clamp_min(0) * valid
    flo = (lowest - contact_height).clamp_min(0) * valid

    if t >= 4:
        third = j[:, 3:] - 3 * j[:, 2:-1] + 3 * j[:, 1:-2] - j[:, :-3]  # (B, T-3, J, 3)
        ok = valid[:, 3:]  # frame t+3 valid implies t..t+2 valid
        jerk = third.norm(dim=-1).mean(-1) * fps**3  # mean over joints
        jerk_sum, jerk_n = (jerk * ok).sum(1), ok.sum(1).double()
    else:
        jerk_sum = jerk_n = torch.zeros(bs, dtype=torch.float64, device=j.device)
    sums = torch.stack([skate_sum, pen.sum(1), flo.sum(1), jerk_sum], 1)
    counts = torch.stack([skate_n, frames, frames, jerk_n], 1)
    return PhysicsSums(sums.cpu(), counts.cpu())
