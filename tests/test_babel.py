"""BABEL json reader: dense and extra files, null frame labels, hidden test labels, malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actiongpt.data.babel import amass_relpath, load_babel_split, split_path
from actiongpt.data.errors import DataError, ReadReport
from actiongpt.data.labels import canonical_label, is_excluded_action, is_excluded_pose, is_transition

FIXTURES = Path(__file__).parent / "fixtures" / "babel_small"


def test_dense_train_file():
    seqs = load_babel_split(FIXTURES / "train.json")
    assert [s.seq_id for s in seqs] == ["1001", "1002", "1003", "1004", "1005", "1006", "1007"]
    s = seqs[0]
    assert (s.babel_sid, s.dur, s.feat_p) == (1001, 10.0, "CMU/CMU/01/01_01_poses.npz")
    assert s.amass_relpath == "CMU/01/01_01_poses.npz"
    assert s.seq_ann is not None and s.seq_ann.labels[0].proc_label == "walk then sit"
    assert s.frame_ann is not None and len(s.frame_ann.labels) == 4
    first = s.frame_ann.labels[0]  # json order is kept (sorting is the extractor's job)
    assert (first.raw_label, first.proc_label, first.start_t, first.end_t) == ("T pose", "t pose", 7.0, 10.0)
    assert first.act_cat == ("t pose",) and first.seg_id == "1001-tpose"
    assert first.text("raw_label") == "T pose" and first.text("proc_label") == "t pose"
    assert seqs[3].frame_ann is None and seqs[3].frame_anns == (None,)  # frame_ann: null
    assert s.source.endswith("train.json")


def test_extra_file_plural_fields():
    seqs = load_babel_split(FIXTURES / "extra_train.json")
    s = seqs[0]
    assert len(s.seq_anns) == 2 and len(s.frame_anns) == 2
    assert s.seq_annotation(1).labels[0].proc_label == "walk, turn"
    assert s.frame_annotation(1).labels[1].raw_label == "turning"
    assert s.frame_annotation(2) is None
    assert s.amass_relpath == "BioMotionLab_NTroje/rub001/0001_treadmill_norm_poses.npz"
    assert seqs[1].frame_ann is None  # "frame_anns": null


def test_test_file_hidden_labels_null_and_nan():
    seqs = load_babel_split(FIXTURES / "test.json")  # contains the NaN literal, as pandas-written files do
    lab = seqs[0].seq_ann.labels[0]
    assert lab.hidden and lab.raw_label is None and lab.act_cat is None
    frame = seqs[1].frame_ann.labels
    assert all(lab.hidden for lab in frame) and frame[0].start_t == 0.0
    assert seqs[1].seq_ann.labels[0].proc_label is None  # NaN -> None, never the string "nan"


def test_label_field_is_checked():
    lab = load_babel_split(FIXTURES / "train.json")[0].frame_ann.labels[1]
    with pytest.raises(ValueError, match="label_field"):
        lab.text("label")


def test_syntax_error_names_file_line_and_column(tmp_path):
    bad = tmp_path / "train.json"
    bad.write_text('{\n  "1": {\n    "babel_sid": 1,,\n  }\n}\n')
    with pytest.raises(DataError) as exc:
        load_babel_split(bad)
    msg = str(exc.value)
    assert str(bad) in msg and "line 3 column 20" in msg and exc.value.reason == "malformed_json"


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "val.json"
    p.write_text(json.dumps(data))
    return p


def _records() -> dict:
    return json.loads((FIXTURES / "train.json").read_text())


@pytest.mark.parametrize(
    ("seq", "mutate", "field"),
    [
        ("1002", lambda r: r.pop("feat_p"), "'feat_p'"),
        ("1004", lambda r: r.pop("frame_ann"), "'frame_ann' (or 'frame_anns')"),
        ("1003", lambda r: r["frame_ann"]["labels"][3].pop("start_t"), "'frame_ann.labels[3].start_t'"),
        ("1001", lambda r: r["seq_ann"]["labels"][0].pop("proc_label"), "'seq_ann.labels[0].proc_label'"),
        ("1006", lambda r: r["frame_ann"].pop("labels"), "'frame_ann.labels'"),
    ],
)
def test_record_missing_field(tmp_path, seq, mutate, field):
    data = _records()
    mutate(data[seq])
    p = _write(tmp_path, data)
    with pytest.raises(DataError) as exc:  # no report = strict
        load_babel_split(p)
    msg = str(exc.value)
    assert str(p) in msg and f"record seq {seq}" in msg and f"missing field {field}" in msg
    strict = ReadReport(strict=True)
    with pytest.raises(DataError):
        load_babel_split(p, strict)
    lenient = ReadReport()
    seqs = load_babel_split(p, lenient)
    assert len(seqs) == 6 and seq not in {s.seq_id for s in seqs}
    assert lenient.skipped["malformed_record"] == 1 and "malformed_record" in lenient.problems
    assert f"seq {seq}" in lenient.examples["malformed_record"][0]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda r: r.update(dur="long"), "'dur' must be a finite number"),
        (lambda r: r["frame_ann"]["labels"][0].update(end_t=None), "end_t must be a finite number"),
        (lambda r: r.update(feat_p="nofolder.npz"), "'feat_p' must be a path"),
        (lambda r: r.update(babel_sid="x1"), "'babel_sid' must be an integer"),
        (lambda r: r["frame_ann"]["labels"][0].update(raw_label=7), "raw_label must be text or null"),
    ],
)
def test_record_bad_values(tmp_path, mutate, problem):
    data = _records()
    mutate(data["1001"])
    with pytest.raises(DataError, match="record seq 1001") as exc:
        load_babel_split(_write(tmp_path, data))
    assert problem in str(exc.value)


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="BABEL file not found"):
        load_babel_split(tmp_path / "missing.json", ReadReport())
    p = tmp_path / "list.json"
    p.write_text("[1, 2]")
    with pytest.raises(DataError, match="top level must be an object"):
        load_babel_split(p, ReadReport())  # even lenient: nothing in the file can be trusted


def test_paths():
    assert amass_relpath("CMU/CMU/86/86_08_poses.npz") == "CMU/86/86_08_poses.npz"
    with pytest.raises(ValueError):
        amass_relpath("x.npz")
    assert split_path("/d", "extra_val") == Path("/d/extra_val.json")
    with pytest.raises(ValueError, match="unknown BABEL split"):
        split_path("/d", "training")


def test_label_rules():
    assert is_transition(" Transition ") and not is_transition("stand transition")
    for pose in ["t-pose", "T pose", "tpose", "apose", "a pose", "tposes", "tposition", "apost"]:
        assert is_excluded_pose(pose), pose
    assert is_excluded_action("transition") and not is_excluded_pose("transition")
    assert not is_excluded_action("walk") and not is_excluded_action(None)
    assert canonical_label("  Walk   Forward ") == "walk forward"
