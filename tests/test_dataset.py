"""MotionDataset: BABEL fixture joined with AMASS npz files written here in the real layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import actiongpt.data.dataset as dataset_mod
from actiongpt.data.dataset import BabelDataConfig, MotionDataset
from actiongpt.data.errors import DataError
from actiongpt.data.extract import ExtractConfig
from tests.fixtures.amass_npz import write_amass_npz
from tests.test_extract import EXPECTED_PAIRS, _tuple

FIXTURES = Path(__file__).parent / "fixtures" / "babel_small"


def _make(
    tmp_path: Path,
    split: str = "train",
    fps: float = 120.0,
    skip: tuple[str, ...] = (),
    overrides: dict | None = None,
) -> tuple[Path, Path]:
    """BABEL dir with the fixture split and an AMASS dir with one npz per sequence (dur * fps frames)."""
    babel, amass = tmp_path / "babel", tmp_path / "amass"
    babel.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / f"{split}.json", babel / f"{split}.json")
    overrides = overrides or {}
    for seq_id, ann in json.loads((FIXTURES / f"{split}.json").read_text()).items():
        if seq_id in skip:
            continue
        rel = "/".join(ann["feat_p"].split("/")[1:])
        kwargs = overrides.get(seq_id, {})
        n = kwargs.pop("num_frames", round(ann["dur"] * kwargs.get("fps", fps)))
        kwargs.setdefault("fps", fps)
        write_amass_npz(amass / rel, n, **kwargs)
    return babel, amass


def test_pairs_joined_with_motions(tmp_path):
    babel, amass = _make(tmp_path)
    ds = MotionDataset(babel, amass, "train", "pairs", progress=False)
    assert [_tuple(r) for r in ds.records] == EXPECTED_PAIRS  # same as annotation-only extraction
    assert len(ds) == 6 and ds.report.loaded == 6
    assert ds.report.skipped["duration"] == 2 and ds.report.skipped["no_frame_labels"] == 3
    assert not ds.report.problems


def test_pair_sample_slices(tmp_path):
    babel, amass = _make(tmp_path)
    ds = MotionDataset(babel, amass, "train", "pairs", progress=False)
    s = ds[0]
    assert s.key == "1001-pair-0" and s.is_pair and s.fps == 30.0 and s.split == "train"
    assert s.poses.shape == (210, 22, 3) and s.trans.shape == (210, 3) and s.poses.dtype == np.float32
    # 1200 source frames at 120 fps -> 300; kept frame k is floor(k * 1199 / 299) (poses encode it):
    # k = 76: 91124 / 299 = 304.8 -> 304; k = 209: 250591 / 299 = 838.1 -> 838
    assert s.poses[0, 0, 0] == 0 and s.poses[76, 5, 2] == 304 and s.poses[209, 21, 1] == 838
    assert s.trans[209, 0] == 838
    lens = {k: len(s.part(k)[0]) for k in ("0", "transition", "1", "1_with_transition")}
    assert lens == {"0": 76, "transition": 29, "1": 105, "1_with_transition": 134}
    assert s.part("1")[0][0, 0, 0] == s.poses[105, 0, 0]
    assert s.source.endswith("CMU/01/01_01_poses.npz") and s.gender == "male" and s.betas.shape == (16,)


def test_seg_and_seq_modes(tmp_path):
    babel, amass = _make(tmp_path, skip=("1005",))  # seg mode never needs 1005's motion
    seg = MotionDataset(babel, amass, "train", "seg", progress=False)
    assert len(seg) == 12 and not seg.report.problems
    sample = seg[seg.keys().index("1002-1002-wave")]
    assert sample.poses.shape == (55, 22, 3) and not sample.is_pair
    with pytest.raises(TypeError):
        sample.part("0")
    write_amass_npz(amass / "CMU/05/05_01_poses.npz", 3600, 120.0)
    seq = MotionDataset(babel, amass, "train", "seq", label_field="raw_label", progress=False)
    got = [(r.key, r.length, r.label) for r in seq.records]
    assert got == [("1004-1004-seq", 150, "Walking in a circle")]
    assert seq.report.skipped["duration"] == 1 and seq.report.skipped["excluded_action"] == 1


def test_missing_amass_file(tmp_path):
    babel, amass = _make(tmp_path, skip=("1004",))
    ds = MotionDataset(babel, amass, "train", "seq", progress=False)
    assert len(ds) == 0 and ds.report.skipped["missing_amass"] == 1 and "missing_amass" in ds.report.problems
    example = ds.report.examples["missing_amass"][0]
    assert "Female1Walking_c3d/B1_-_stand_to_walk_poses.npz" in example and "seq 1004" in example
    with pytest.raises(DataError, match="AMASS file not found") as exc:
        MotionDataset(babel, amass, "train", "seq", strict=True, progress=False)
    assert "seq 1004" in str(exc.value) and "train.json" in str(exc.value)


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"poses": np.full((2400, 156), np.nan)}, "NaN/Inf in 'poses'"),
        ({"num_frames": 0}, "zero-length motion"),
        ({"width": 99}, "unknown pose width"),
    ],
)
def test_bad_motion(tmp_path, override, problem):
    babel, amass = _make(tmp_path, overrides={"1002": override})
    ds = MotionDataset(babel, amass, "train", "pairs", progress=False)
    assert [r.key for r in ds.records] == ["1001-pair-0", "1003-pair-0", "1003-pair-1", "1006-pair-0"]
    assert ds.report.skipped["bad_motion"] == 1
    msg = ds.report.examples["bad_motion"][0]
    assert "CMU/02/02_01_poses.npz" in msg and "seq 1002" in msg and problem in msg
    with pytest.raises(DataError, match=problem):
        MotionDataset(babel, amass, "train", "pairs", strict=True, progress=False)


def test_segment_times_outside_motion(tmp_path):
    babel, amass = _make(tmp_path, overrides={"1003": {"num_frames": 1200}})  # 10 s, labels to 34 s
    ds = MotionDataset(babel, amass, "train", "pairs", progress=False)
    keys = ds.keys()
    assert not any(k.startswith("1003") for k in keys) and len(keys) == 4
    assert ds.report.skipped["segment_outside_motion"] == 1
    with pytest.raises(DataError) as exc:
        MotionDataset(babel, amass, "train", "pairs", strict=True, progress=False)
    assert "seq 1003" in str(exc.value) and "outside the motion" in str(exc.value)


def test_malformed_record(tmp_path):
    babel, amass = _make(tmp_path)
    data = json.loads((babel / "train.json").read_text())
    del data["1002"]["frame_ann"]["labels"][0]["end_t"]
    (babel / "train.json").write_text(json.dumps(data))
    ds = MotionDataset(babel, amass, "train", "pairs", progress=False)
    assert len(ds) == 4 and ds.report.skipped["malformed_record"] == 1
    with pytest.raises(DataError, match=r"record seq 1002: missing field 'frame_ann.labels\[0\].end_t'"):
        MotionDataset(babel, amass, "train", "pairs", strict=True, progress=False)


def test_malformed_json(tmp_path):
    babel, amass = _make(tmp_path)
    (babel / "train.json").write_text('{"1001": {"babel_sid": 1001 "dur": 3}}')
    with pytest.raises(DataError, match="line 1 column 29"):
        MotionDataset(babel, amass, "train", "pairs", progress=False)


def test_short_and_slow_motions(tmp_path):
    babel, amass = _make(tmp_path, overrides={"1004": {"num_frames": 50}})  # 0.42 s at 120 fps
    ds = MotionDataset(babel, amass, "train", "seq", strict=True, progress=False)  # a rule, not an error
    assert len(ds) == 0 and ds.report.skipped["too_short_motion"] == 1 and not ds.report.problems
    write_amass_npz(amass / "ACCAD/Female1Walking_c3d/B1_-_stand_to_walk_poses.npz", 120, 24.0)
    ds = MotionDataset(babel, amass, "train", "seq", strict=True, progress=False)
    (rec,) = ds.records
    assert (rec.length, rec.fps) == (120, 24.0) and ds[0].fps == 24.0
    assert ds.report.notes["kept_source_rate"] == 1


def test_smplx_files_and_extra_split(tmp_path):
    babel, amass = _make(tmp_path, split="extra_train", fps=30.0, overrides={"2001": {"width": 165}})
    ds = MotionDataset(
        babel, amass, "extra_train", "pairs", progress=False, extract=ExtractConfig(annotator=1)
    )
    assert ds.keys() == ["2001-a1-pair-0"] and ds[0].poses.shape == (240, 22, 3)


def test_feat_p_fallback_to_full_path(tmp_path):
    babel, amass = _make(tmp_path, skip=("1004",))
    write_amass_npz(amass / "ACCAD/ACCAD/Female1Walking_c3d/B1_-_stand_to_walk_poses.npz", 600, 120.0)
    ds = MotionDataset(babel, amass, "train", "seq", progress=False)
    assert ds.keys() == ["1004-1004-seq"]


def test_each_file_read_once_with_cache(tmp_path, monkeypatch):
    babel, amass = _make(tmp_path)
    calls: list[str] = []
    real = dataset_mod.load_amass_npz

    def counting(path, *a, **k):
        calls.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(dataset_mod, "load_amass_npz", counting)
    ds = MotionDataset(babel, amass, "train", "seg", progress=False)
    samples = list(ds)
    assert len(calls) == 4 and len(samples) == 12  # 1001, 1002, 1003, 1006: index + iteration
    calls.clear()
    uncached = MotionDataset(babel, amass, "train", "seg", cache_size=0, progress=False)
    assert [s.poses.shape for s in uncached] == [s.poses.shape for s in samples]
    assert len(calls) == 4 + 12


def test_from_config_and_summary(tmp_path):
    babel, amass = _make(tmp_path)
    cfg = BabelDataConfig(babel_dir=str(babel), amass_dir=str(amass), split="train", mode="pairs")
    ds = MotionDataset.from_config(cfg, progress=False)
    assert len(ds) == 6
    summary = ds.report.summary()
    assert "loaded: 6" in summary and "skipped duration: 2" in summary
    assert ds.report.to_dict()["skipped"]["no_frame_labels"] == 3
    with pytest.raises(ValueError, match="unknown mode"):
        MotionDataset(babel, amass, "train", "pair", progress=False)
