"""A preview of one real AMASS file: its joints on a body, with its BABEL labels over the frames.

For users checking their data on a laptop (``actiongpt data render --amass FILE.npz``). The motion goes
through the real reader (``load_amass_npz``: 30 fps, TEACH's frame indices). Bodies:

- ``bundled``: the bundled skeleton, scaled to the subject by fitting the motion to the floor
  (``actiongpt.motion.stature``) unless a fixed stature is given;
- ``smplh``: the SMPL-H model file's skeleton for the file's gender and betas (rigid heels and toes).

BABEL labels: the record is picked by ``babel_sid`` or, without one, by its ``feat_p`` matching the file's
path; each frame shows the frame labels whose ``[start_t, end_t)`` holds its time, or the sequence labels
when the record has no frame labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actiongpt.data.amass import AmassMotion, load_amass_npz
from actiongpt.data.babel import BabelSequence, amass_relpath, load_babel_split
from actiongpt.data.errors import DataError
from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.rotations import axis_angle_to_matrix
from actiongpt.motion.skeleton import STATURE_M, Skeleton, bundled_skeleton
from actiongpt.motion.stature import fit_stature

BODIES = ("bundled", "smplh")


@dataclass
class AmassPreview:
    """Joints (T, 26, 3) in the AMASS world (22 body joints + heels and toe tips), per-frame labels and
    a one-line note on the body used."""

    motion: AmassMotion
    joints: np.ndarray
    frame_labels: list[str]
    body_note: str
    record: BabelSequence | None = None


def find_record(babel_json: str | Path, amass_file: str | Path, sid: int | None = None) -> BabelSequence:
    """The BABEL record of ``amass_file``: the one with ``babel_sid == sid``, else the one whose ``feat_p``
    (with or without its first folder) is a path suffix of the file. Raises ``DataError`` naming the json."""
    seqs = load_babel_split(babel_json)
    if sid is not None:
        hit = [s for s in seqs if s.babel_sid == sid]
        if not hit:
            raise DataError(babel_json, f"no record with babel_sid {sid}", reason="missing_record")
        return hit[0]
    posix = Path(amass_file).resolve().as_posix()
    for s in seqs:
        for rel in {s.feat_p, amass_relpath(s.feat_p)}:
            if rel and posix.endswith("/" + rel.lstrip("/")):
                return s
    raise DataError(
        babel_json,
        f"no record's feat_p matches {amass_file}; pass --sid N (the record's babel_sid)",
        reason="missing_record",
    )


def frame_labels(record: BabelSequence, num_frames: int, fps: float) -> list[str]:
    """One text per frame: the frame labels active at ``t / fps`` (joined by " + "), or the sequence
    labels when the record has no frame labels."""
    frame_ann = next((a for a in record.frame_anns if a is not None), None)
    if frame_ann is None:
        seq = " + ".join(
            lab.proc_label or lab.raw_label or "" for a in record.seq_anns for lab in a.labels
        )
        return [seq] * num_frames
    out = []
    for t in range(num_frames):
        time = t / fps
        active = [
            lab.proc_label or lab.raw_label or ""
            for lab in frame_ann.labels
            if lab.start_t is not None and lab.end_t is not None and lab.start_t <= time < lab.end_t
        ]
        out.append(" + ".join(dict.fromkeys(active)))
    return out


def _body(
    motion: AmassMotion,
    rot: torch.Tensor,
    trans: torch.Tensor,
    body: str,
    stature_m: float | None,
    smplh_path: str | Path | None,
    vertex_ids: dict[str, int] | None,
) -> tuple[Skeleton, str]:
    if body == "smplh":
        from actiongpt.motion.smplh import load_smplh_skeleton

        if smplh_path is None:
            raise ValueError("body 'smplh' needs the SMPL-H model path")
        skel = load_smplh_skeleton(smplh_path, motion.gender, betas=motion.betas[:10], vertex_ids=vertex_ids)
        return skel, f"SMPL-H {motion.gender}, the file's betas"
    if body != "bundled":
        raise ValueError(f"body must be one of {BODIES}, got {body!r}")
    if stature_m is not None:
        return bundled_skeleton().scaled(stature_m / STATURE_M), f"bundled body, stature {stature_m:.2f} m"
    fit = fit_stature(rot, trans)
    return fit.skeleton, f"bundled body, {fit.describe()}"


def amass_preview(
    amass_file: str | Path,
    babel_json: str | Path | None = None,
    sid: int | None = None,
    body: str = "bundled",
    stature_m: float | None = None,
    smplh_path: str | Path | None = None,
    vertex_ids: dict[str, int] | None = None,
) -> AmassPreview:
    """Read ``amass_file`` (and its BABEL record from ``babel_json``) and pose a body on it; see the
    module docstring. ``stature_m`` fixes the bundled body's height (None: fitted to the floor)."""
    motion = load_amass_npz(amass_file)
    record = find_record(babel_json, amass_file, sid) if babel_json is not None else None
    rot = axis_angle_to_matrix(torch.as_tensor(motion.poses, dtype=torch.float64))
    trans = torch.as_tensor(motion.trans, dtype=torch.float64)
    skel, note = _body(motion, rot, trans, body, stature_m, smplh_path, vertex_ids)
    joints = forward_kinematics(rot, trans, skel.to(dtype=torch.float64), with_end_points=True)
    labels = frame_labels(record, motion.num_frames, motion.fps) if record is not None else []
    return AmassPreview(motion, joints.float().numpy(), labels, note, record)
