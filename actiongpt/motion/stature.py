"""The bundled body scaled to the subject of one real AMASS motion, fitted from the motion itself.

AMASS ``trans`` comes from each subject's own SMPL-H body, while the bundled skeleton is a 1.75 m male:
on a shorter subject its feet go through the floor (5-20 cm below the optical markers on public samples,
measured before the root convention was fixed), on a taller one they float.
Without the SMPL-H model files the subject's ``betas`` cannot be turned into a height (that needs the
model's shape directions), so the height is fitted from the motion instead:

- scaling every rest position by ``s`` about the model origin (the rest pelvis offset included, see
  ``Skeleton.scaled``) puts a point at ``trans + s * q``, where ``q`` is that point of the unit body posed
  with zero translation; a frame's lowest point is therefore ``trans_z + s * m`` with ``m = min q_z``,
  linear in ``s``, and the frame touches the AMASS floor (z = 0) at ``s_t = -trans_z / m``;
- frames with a foot (or a knee, a hand) on the floor give the subject's scale and frames in the air a
  larger one, so the fit takes a low quantile of ``s_t`` over the frames that reach well below the
  origin (``m < -MIN_REACH_M``: not lying flat, where joint centres sit a body's thickness above the floor).
  This generalises "standing pelvis height / 0.565" to any pose with floor contact.

Limits, stated plainly: proportions stay Winter's (only the size follows the subject); a motion that never
touches z = 0 (a subject on a platform throughout, a capture whose floor is not at 0) gets a wrong
height, bounded by ``STATURE_RANGE_M``; frames below the quantile may sink by up to ``max_sink_m``
(reported). Published-number comparisons on real data use ``body=smplh`` with the male model and zero
betas, as TEACH does, not this fit: the fit is for previews and sanity checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.skeleton import STATURE_M, Skeleton, bundled_skeleton

#: plausible adult statures; a fit outside is clamped (and says so)
STATURE_RANGE_M = (1.40, 2.10)
#: a frame is used when its lowest point reaches this far below the model origin (unit body)
MIN_REACH_M = 0.3
#: quantile of the per-frame contact scales: frames below it may sink slightly, the rest float above
QUANTILE = 0.02


@dataclass(frozen=True)
class StatureFit:
    """The fitted body and how the fit went (``frames_used == 0``: nothing to fit, the input body kept)."""

    skeleton: Skeleton
    scale: float
    stature_m: float
    frames_used: int
    clamped: bool
    max_sink_m: float  # deepest point below z = 0 over the motion, with the fitted body

    def describe(self) -> str:
        if self.frames_used == 0:
            return f"stature {self.stature_m:.2f} m (kept: no frame reaches the floor)"
        note = f", clamped to {STATURE_RANGE_M[0]:.2f}-{STATURE_RANGE_M[1]:.2f} m" if self.clamped else ""
        return (
            f"stature {self.stature_m:.2f} m fitted to the floor from {self.frames_used} frames{note}; "
            f"lowest point {-self.max_sink_m * 100:+.1f} cm"
        )


def fit_stature(
    rotmats: torch.Tensor,
    trans: torch.Tensor,
    skeleton: Skeleton | None = None,
    stature_m: float = STATURE_M,
    quantile: float = QUANTILE,
) -> StatureFit:
    """Scale ``skeleton`` (the bundled body, of height ``stature_m``) so that the motion (rotations
    (T, 22, 3, 3), AMASS translation (T, 3), z up) stands on the floor z = 0; see the module docstring."""
    skel = skeleton or bundled_skeleton()
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0, 1), got {quantile}")
    rot = torch.as_tensor(rotmats, dtype=torch.float64)
    tz = torch.as_tensor(trans, dtype=torch.float64)[..., 2].reshape(-1).numpy()
    zero = torch.zeros(*rot.shape[:-3], 3, dtype=torch.float64)
    q = forward_kinematics(rot, zero, skel.to(dtype=torch.float64), with_end_points=True)
    low = q[..., 2].min(dim=-1).values.reshape(-1).numpy()
    use = (low < -MIN_REACH_M) & (tz > 0)
    if not use.any():
        return StatureFit(skel, 1.0, stature_m, 0, False, float(max(0.0, -(tz + low).min())))
    s = float(np.quantile(tz[use] / -low[use], quantile))
    lo, hi = (r / stature_m for r in STATURE_RANGE_M)
    clamped = not lo <= s <= hi
    s = float(np.clip(s, lo, hi))
    sink = float(max(0.0, -(tz + s * low).min()))
    return StatureFit(skel.scaled(s), s, s * stature_m, int(use.sum()), clamped, sink)
