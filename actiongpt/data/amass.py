"""AMASS ``.npz`` reader: body poses and root translation resampled to 30 fps as TEACH does.

Real layout (SMPL-H "G" release and SMPL-X release): ``poses`` (T, 156) or (T, 165) axis-angle,
``trans`` (T, 3) metres with z up, ``mocap_framerate`` (SMPL-H) or ``mocap_frame_rate`` (SMPL-X),
``betas`` (16,) and ``gender`` (str, bytes, or a 1-element array). In both widths columns 0:3 are the
global orientation and 3:66 the 21 body joints, so the 22 body joints are ``poses[:, :66]``.

Resampling follows TEACH's ``scripts/process_amass.py``: ``new_T = int(30 / fps * T)`` indices from
``np.linspace(0, T - 1, new_T, dtype=int)``; no upsampling. The original crashes on sources below the
target rate (its index array is never defined); we keep such motions at their own rate, say so in
the log and mark them (``kept_source_rate``), and callers use ``AmassMotion.fps`` for frame indices.
"""

from __future__ import annotations

import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, Skipped

logger = logging.getLogger(__name__)

TARGET_FPS = 30.0
MIN_SECONDS = 0.5
NUM_BODY_JOINTS = 22
#: pose widths we understand -> model name (both start with global orient + 21 body joints)
POSE_WIDTHS = {156: "smplh", 165: "smplx"}
#: file names inside AMASS folders that hold a body shape, not a motion
NON_MOTION_FILES = frozenset({"neutral_stagei.npz", "shape.npz"})
#: AMASS files whose stored frame rate is wrong (TEACH process_amass.py): substring -> true rate
FPS_FIXES: tuple[tuple[str, float], ...] = (
    ("BMLhandball", 240.0),
    ("20160930_50032", 59.0),
    ("20161014_50033", 59.0),
)
GENDERS = frozenset({"male", "female", "neutral"})


@dataclass
class AmassMotion:
    """One AMASS motion after resampling.

    ``poses``: (T, 22, 3) float32 axis-angle (joint 0 = global orientation); ``trans``: (T, 3) float32.
    ``fps`` is the rate of the returned frames (30, or the source rate when that is below 30);
    ``source_fps`` the true capture rate (after the known fixes); ``declared_fps`` what the file says.
    """

    path: Path
    poses: np.ndarray
    trans: np.ndarray
    fps: float
    source_fps: float
    gender: str
    betas: np.ndarray
    declared_fps: float = 0.0
    model: str = "smplh"
    kept_source_rate: bool = False
    source_frames: int = 0
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def resample_indices(num_frames: int, source_fps: float, target_fps: float = TARGET_FPS) -> np.ndarray:
    """Frame indices TEACH keeps when going from ``source_fps`` to ``target_fps`` (never upsamples).

    ``np.linspace(0, T-1, int(target/source * T), dtype=int)``; identity when ``source_fps <= target``.
    """
    if source_fps <= target_fps:
        return np.arange(num_frames, dtype=np.int64)
    new_num = int(float(target_fps) / source_fps * num_frames)
    return np.linspace(0, num_frames - 1, num=new_num, dtype=int).astype(np.int64)


def fixed_fps(path: str | Path, declared_fps: float) -> float:
    """The true capture rate: ``declared_fps`` unless ``path`` is one of AMASS's known mislabelled files."""
    text = Path(path).as_posix()
    for needle, fps in FPS_FIXES:
        if needle in text:
            return fps
    return declared_fps


def decode_gender(value: object, path: str | Path = "") -> str:
    """Gender stored as str, bytes, a 0-d or a 1-element array (SSM_synced) -> e.g. ``'male'``."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise DataError(path, f"'gender' must hold one value, got shape {arr.shape}", reason="bad_motion")
    item = arr.reshape(-1)[0]
    if isinstance(item, (bytes, np.bytes_)):
        try:
            item = bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(path, f"'gender' is not UTF-8 text: {item!r}", reason="bad_motion") from exc
    text = str(item).strip().lower()
    if text not in GENDERS:
        raise DataError(
            path, f"unknown gender {text!r} (expected one of {sorted(GENDERS)})", reason="bad_motion"
        )
    return text


def _read(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:  # object arrays need pickle, which we refuse (arbitrary code execution)
        raise DataError(
            path,
            f"key {key!r} cannot be read without unpickling ({exc}); "
            "pass allow_pickle=True only for files you trust",
            reason="bad_motion",
        ) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(path, f"key {key!r} is corrupt: {exc}", reason="bad_motion") from exc


def load_amass_npz(
    path: str | Path,
    target_fps: float = TARGET_FPS,
    min_seconds: float = MIN_SECONDS,
    *,
    allow_pickle: bool = False,
) -> AmassMotion:
    """Read one AMASS motion, keep the 22 body joints and resample to ``target_fps`` (TEACH rules).

    Raises `Skipped` (a `DataError`) for non-motion files and motions shorter than ``min_seconds``
    after resampling, and `DataError` naming the file and problem for a missing file, an unreadable
    npz, missing keys, an unknown pose width, mismatched lengths, zero frames, or NaN/Inf values.
    """
    path = Path(path)
    if path.name in NON_MOTION_FILES:
        raise Skipped(path, f"{path.name} holds a body shape, not a motion", reason="not_motion")
    if not path.is_file():
        raise DataError(path, "AMASS file not found", reason="missing_amass")
    try:
        npz = np.load(path, allow_pickle=allow_pickle)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(path, f"cannot read npz: {exc}", reason="bad_motion") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(path, "not an npz archive (a single .npy array?)", reason="bad_motion")
    with npz:
        keys = set(npz.files)
        rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in keys), None)
        missing = [k for k in ("poses", "trans", "gender", "betas") if k not in keys]
        if rate_key is None:
            missing.append("mocap_framerate|mocap_frame_rate")
        if missing:
            raise DataError(path, f"missing key(s) {missing}; has {sorted(keys)}", reason="bad_motion")
        poses = _read(npz, "poses", path)
        trans = _read(npz, "trans", path)
        rate = _read(npz, rate_key, path)
        gender = decode_gender(_read(npz, "gender", path), path)
        betas = np.asarray(_read(npz, "betas", path), dtype=np.float32).reshape(-1)

    if poses.ndim != 2 or poses.shape[1] not in POSE_WIDTHS:
        raise DataError(
            path,
            f"unknown pose width: 'poses' has shape {poses.shape}, expected (T, 156) "
            "SMPL-H or (T, 165) SMPL-X",
            reason="bad_motion",
        )
    num_frames = int(poses.shape[0])
    if num_frames == 0:
        raise DataError(path, "zero-length motion ('poses' has 0 frames)", reason="bad_motion")
    if trans.shape != (num_frames, 3):
        raise DataError(
            path, f"'trans' has shape {trans.shape}, expected ({num_frames}, 3)", reason="bad_motion"
        )
    try:
        declared = float(np.asarray(rate).reshape(-1)[0])
    except (IndexError, TypeError, ValueError) as exc:
        raise DataError(path, f"{rate_key!r} is not a number: {rate!r}", reason="bad_motion") from exc
    if not math.isfinite(declared) or declared <= 0:
        raise DataError(
            path, f"{rate_key!r} must be a positive frame rate, got {declared}", reason="bad_motion"
        )
    body = np.asarray(poses[:, : NUM_BODY_JOINTS * 3], dtype=np.float32)
    trans = np.asarray(trans, dtype=np.float32)
    for name, arr in (("poses", body), ("trans", trans)):
        bad = ~np.isfinite(arr)
        if bad.any():
            frame = int(np.argwhere(bad)[0][0])
            raise DataError(
                path,
                f"NaN/Inf in {name!r} ({int(bad.sum())} values, first at frame {frame})",
                reason="bad_motion",
            )

    source_fps = fixed_fps(path, declared)
    kept = source_fps < target_fps
    if kept:
        logger.warning(
            "%s: source rate %.3g fps is below %.3g fps; kept at the source rate (no upsampling)",
            path,
            source_fps,
            target_fps,
        )
    idx = resample_indices(num_frames, source_fps, target_fps)
    fps = source_fps if kept else float(target_fps)
    if len(idx) == 0 or len(idx) < min_seconds * fps:
        raise Skipped(
            path, f"too short: {len(idx)} frames at {fps:g} fps < {min_seconds} s", reason="too_short_motion"
        )
    return AmassMotion(
        path=path,
        poses=np.ascontiguousarray(body[idx].reshape(len(idx), NUM_BODY_JOINTS, 3)),
        trans=np.ascontiguousarray(trans[idx]),
        fps=fps,
        source_fps=source_fps,
        gender=gender,
        betas=betas,
        declared_fps=declared,
        model=POSE_WIDTHS[poses.shape[1]],
        kept_source_rate=kept,
        source_frames=num_frames,
        frame_indices=idx,
    )
