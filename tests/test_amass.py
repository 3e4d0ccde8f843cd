"""AMASS npz reader: layouts, TEACH's 30 fps resampling, frame-rate fixes and bad files."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from actiongpt.data.amass import decode_gender, load_amass_npz, resample_indices
from actiongpt.data.errors import DataError, Skipped
from tests.fixtures.amass_npz import write_amass_npz


def test_120_to_30_fps_exact_indices(tmp_path):
    # new_T = int(30/120 * 80) = 20 and linspace(0, 79, 20) = k * 79/19, truncated by hand:
    # 0, 4.16, 8.32, 12.47, 16.63, 20.79, 24.95, 29.11, 33.26, 37.42, 41.58, 45.74, 49.89, 54.05,
    # 58.21, 62.37, 66.53, 70.68, 74.84, 79  (a plain stride of 4 would give 28 at k = 7, not 29)
    expected = [0, 4, 8, 12, 16, 20, 24, 29, 33, 37, 41, 45, 49, 54, 58, 62, 66, 70, 74, 79]
    m = load_amass_npz(write_amass_npz(tmp_path / "CMU" / "01" / "01_01_poses.npz", 80, 120.0))
    assert m.fps == 30.0 and m.source_fps == 120.0 and m.declared_fps == 120.0
    assert m.poses.shape == (20, 22, 3) and m.poses.dtype == np.float32
    assert m.trans.shape == (20, 3) and m.trans.dtype == np.float32
    assert m.poses[:, 0, 0].astype(int).tolist() == expected  # poses encode the source frame index
    assert m.trans[:, 0].astype(int).tolist() == expected
    assert m.frame_indices.tolist() == expected
    assert not m.kept_source_rate and m.model == "smplh" and m.source_frames == 80


def test_small_resample_by_hand():
    # int(0.25 * 12) = 3 frames: linspace(0, 11, 3) = 0, 5.5, 11 -> 0, 5, 11
    assert resample_indices(12, 120.0).tolist() == [0, 5, 11]
    assert resample_indices(7, 30.0).tolist() == list(range(7))  # same rate: identity


def test_59_fps_sequences_are_fixed(tmp_path):
    # declared 60 but really 59: int(30/59 * 200) = int(101.69) = 101 (at 60 it would be 100)
    p = write_amass_npz(tmp_path / "BMLmovi" / "Subject_1" / "20160930_50032_poses.npz", 200, 60.0)
    m = load_amass_npz(p)
    assert (m.source_fps, m.declared_fps, m.num_frames) == (59.0, 60.0, 101)
    other = load_amass_npz(write_amass_npz(tmp_path / "BMLmovi" / "Subject_2" / "x_poses.npz", 200, 60.0))
    assert other.num_frames == 100
    m2 = load_amass_npz(write_amass_npz(tmp_path / "a" / "20161014_50033_poses.npz", 200, 60.0))
    assert m2.source_fps == 59.0


def test_bmlhandball_is_240_fps(tmp_path):
    p = write_amass_npz(tmp_path / "BMLhandball" / "S01" / "trial_poses.npz", 480, 120.0)
    m = load_amass_npz(p)
    assert (m.source_fps, m.num_frames) == (240.0, 60)  # int(30/240 * 480) = 60, not 120


def test_24_fps_is_left_alone_and_said(tmp_path, caplog):
    p = write_amass_npz(tmp_path / "d" / "slow_poses.npz", 48, 24.0)
    with caplog.at_level(logging.WARNING, logger="actiongpt.data.amass"):
        m = load_amass_npz(p)
    assert m.kept_source_rate and m.fps == 24.0 and m.source_fps == 24.0
    assert m.poses[:, 0, 0].astype(int).tolist() == list(range(48))
    assert "below 30 fps" in caplog.text and "slow_poses.npz" in caplog.text


def test_too_short_after_resampling(tmp_path):
    # 58 frames at 120 fps -> int(14.5) = 14 frames < 15 (0.5 s): skipped, not an error
    with pytest.raises(Skipped) as exc:
        load_amass_npz(write_amass_npz(tmp_path / "s" / "short_poses.npz", 58, 120.0))
    assert exc.value.reason == "too_short_motion" and "short_poses.npz" in str(exc.value)
    assert load_amass_npz(write_amass_npz(tmp_path / "s" / "ok_poses.npz", 60, 120.0)).num_frames == 15


@pytest.mark.parametrize("name", ["neutral_stagei.npz", "shape.npz"])
def test_non_motion_files_skipped(tmp_path, name):
    path = tmp_path / "CMU" / "01" / name
    path.parent.mkdir(parents=True)
    np.savez(path, betas=np.zeros(16), v_template=np.zeros((10, 3)))
    with pytest.raises(Skipped) as exc:
        load_amass_npz(path)
    assert exc.value.reason == "not_motion" and name in str(exc.value) and "not a motion" in str(exc.value)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("female", "female"),
        (b"male", "male"),
        (np.array(["female"]), "female"),  # 1-element array
        (np.array([b"male"]), "male"),  # SSM_synced style
        (np.array("neutral"), "neutral"),
        ("Male ", "male"),
    ],
)
def test_gender_decoding_variants(tmp_path, stored, expected):
    m = load_amass_npz(write_amass_npz(tmp_path / "g" / "g_poses.npz", 60, 120.0, gender=stored))
    assert m.gender == expected


def test_bad_gender():
    with pytest.raises(DataError, match="unknown gender 'robot'"):
        decode_gender("robot", "f.npz")
    with pytest.raises(DataError, match="one value"):
        decode_gender(np.array(["male", "female"]), "f.npz")


def test_smplx_width_takes_the_22_body_joints(tmp_path):
    poses = np.full((90, 165), 9.0)
    poses[:, :66] = 0.25
    p = write_amass_npz(tmp_path / "smplx" / "m_stageii.npz", 90, 30.0, width=165, poses=poses)
    m = load_amass_npz(p)
    assert m.model == "smplx" and m.poses.shape == (90, 22, 3)
    assert np.all(m.poses == 0.25)


def test_betas_and_smplh_hands_dropped(tmp_path):
    m = load_amass_npz(write_amass_npz(tmp_path / "h" / "h_poses.npz", 60, 60.0))
    assert m.betas.shape == (16,) and m.betas.dtype == np.float32
    assert m.poses.min() >= 0  # the -1 hand values never appear


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 72}, "unknown pose width"),
        ({"drop": ("trans",)}, "missing key(s) ['trans']"),
        ({"drop": ("mocap_framerate",)}, "mocap_framerate|mocap_frame_rate"),
        ({"trans": np.zeros((10, 3))}, "'trans' has shape (10, 3), expected (60, 3)"),
    ],
)
def test_bad_layouts(tmp_path, kwargs, message):
    p = write_amass_npz(tmp_path / "bad" / "b_poses.npz", 60, 120.0, **kwargs)
    with pytest.raises(DataError) as exc:
        load_amass_npz(p)
    assert message in str(exc.value) and "b_poses.npz" in str(exc.value)


def test_zero_length_motion(tmp_path):
    p = write_amass_npz(tmp_path / "z" / "empty_poses.npz", 0, 120.0)
    with pytest.raises(DataError, match="zero-length motion") as exc:
        load_amass_npz(p)
    assert not isinstance(exc.value, Skipped) and "empty_poses.npz" in str(exc.value)


@pytest.mark.parametrize(("key", "value"), [("poses", np.nan), ("trans", np.inf)])
def test_nan_inf(tmp_path, key, value):
    poses = np.zeros((60, 156))
    trans = np.zeros((60, 3))
    (poses if key == "poses" else trans)[37, 2] = value
    p = write_amass_npz(tmp_path / "n" / "nan_poses.npz", 60, 120.0, poses=poses, trans=trans)
    with pytest.raises(DataError) as exc:
        load_amass_npz(p)
    msg = str(exc.value)
    assert "nan_poses.npz" in msg and f"NaN/Inf in '{key}'" in msg and "frame 37" in msg


def test_nan_in_hands_is_ignored(tmp_path):
    poses = np.zeros((60, 156))
    poses[:, 100] = np.nan  # right hand: not read
    assert load_amass_npz(write_amass_npz(tmp_path / "h" / "h_poses.npz", 60, 120.0, poses=poses))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="AMASS file not found") as exc:
        load_amass_npz(tmp_path / "nope_poses.npz")
    assert exc.value.reason == "missing_amass"
    junk = tmp_path / "junk_poses.npz"
    junk.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match=r"junk_poses\.npz"):
        load_amass_npz(junk)


def test_pickled_arrays_refused(tmp_path):
    p = write_amass_npz(tmp_path / "o" / "obj_poses.npz", 60, 120.0, gender=np.array("male", dtype=object))
    with pytest.raises(DataError, match="unpickling"):
        load_amass_npz(p)
    assert load_amass_npz(p, allow_pickle=True).gender == "male"
