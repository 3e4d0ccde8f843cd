"""Writers for the real formats: AMASS ``*_poses.npz`` and BABEL ``{split}.json``.

``np.savez`` stamps every archive member with the current time, so two runs never give identical
bytes; `write_npz` writes the same ``.npy`` members through `zipfile` with a fixed timestamp, so a
dataset generated twice from one seed is byte-identical (and ``np.load`` reads it like any npz).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from actiongpt.io_utils import atomic_write_bytes, atomic_write_text

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
NUM_SMPLH_POSE = 156  # 52 joints x 3: global orient, 21 body joints, 2 x 15 hand joints


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray], compress: bool = True) -> Path:
    """Deterministic ``.npz`` (members in the given order, fixed timestamps)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=FIXED_ZIP_TIME)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return atomic_write_bytes(path, out.getvalue())


def amass_arrays(
    body_axis_angle: np.ndarray, trans: np.ndarray, fps: float, gender: Any, betas: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The AMASS SMPL-H member set: ``poses`` (T, 156) with zero hands, ``trans``, ``mocap_framerate``,
    ``betas`` (16,) and ``gender``. Poses and translation are stored as float32 (AMASS uses float64;
    readers cast to float32 anyway, and it halves the size of the embedded dataset)."""
    body = np.asarray(body_axis_angle, dtype=np.float32).reshape(len(body_axis_angle), -1)
    if body.shape[1] != 66:
        raise ValueError(f"expected 22 body joints x 3 = 66 pose values per frame, got {body.shape[1]}")
    poses = np.zeros((body.shape[0], NUM_SMPLH_POSE), dtype=np.float32)
    poses[:, :66] = body
    return {
        "trans": np.asarray(trans, dtype=np.float32),
        "gender": gender,
        "mocap_framerate": np.array(float(fps)),
        "betas": np.zeros(16) if betas is None else np.asarray(betas, dtype=np.float64),
        "poses": poses,
    }


def new_uuid(rng: np.random.Generator) -> str:
    """A random (version 4) UUID drawn from ``rng``, as BABEL's ids look, but reproducible."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=None, separators=(", ", ": ")) + "\n")
