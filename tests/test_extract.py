"""Segment, sequence and TEACH pair extraction on the hand-written fixture.

Every expected value below was derived by hand from the rules in actiongpt/data/extract.py / TEACH's
``extract_frame_labels`` + ``separate_actions`` (frames = int(t * 30); motion length = dur * 30):

1001 (300 frames): walk (0,90), transition (75,120), sit down (105,210), t pose (210,300).
  t pose is removed before pairing (otherwise sit down -> t pose would touch at 210).
  Only triple: walk / transition / sit down; a1 ends (90) before a2 starts (105):
  a1 = [0..75] -> 76, transition = [76..104] -> 29, a2 = [105, 210) -> 105.
1002 (600): jump (0,60), run (30,120), stand (120,180), wave (245,300) [8.2 * 30 = 245.99999999999997].
  jump/run overlap without transition: over = 60 - 30 = 30, split = int(60 + 15) = 75 (the overlap
  midpoint would be 45): a1 = 76, a2 = 120 - 75 - 1 = 44.  (jump, run) is found from both sides and
  kept once. run/stand touch at 120: over = 0, split 120: 91 and 180 - 120 - 1 = 59.
1003 (1200): transition (0,30), bend (15,90), transition (75,105), kick (82,150), squat (150,157),
  dance (180,960), stretch (960,1020). Unique candidates in TEACH's order:
  0 (bend, kick): over = 90 - 82 = 8, split int(94): 94 - 15 + 1 = 80, 150 - 94 - 1 = 55.
  1 (bend, transition, kick): a1 and a2 overlap (90 >= 82) -> over = 82 - 90 = -8, split int(86):
    72 and 63, no transition frames (the two splits differ: sign convention of the original).
  2 (kick, squat): touching, split 150: 69 and 6 -> rejected (len(a2)+len(tr) = 6 < 15).
  3 (dance, stretch): 960 - 180 + 1 = 781 > 750 -> rejected.
  The transition at frame 0 gives no triple.
1006 (180): walk (0,60) and stroll (0,60) share a range, TEACH keys segments by range so the later
  label (stroll) wins; transition (45,75); sit (67,120). The transition's "before" list holds (0,60)
  twice -> the same triple twice -> kept once: a1 = [0..45] 46, tr = [46..66] 21, a2 = [67,120) 53.
1004, 1005, 1007: frame_ann null -> no pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actiongpt.data.babel import load_babel_split, parse_sequence
from actiongpt.data.errors import DataError, ReadReport
from actiongpt.data.extract import ExtractConfig, Pair, records_of
from tests.babel_extract import extract_pairs, extract_segments, extract_sequences

FIXTURES = Path(__file__).parent / "fixtures" / "babel_small"

# key, start, len_0, len_transition, len_1, label_0, label_1, explicit transition
EXPECTED_PAIRS = [
    ("1001-pair-0", 0, 76, 29, 105, "walk", "sit down", True),
    ("1002-pair-0", 0, 76, 0, 44, "jump", "run", False),
    ("1002-pair-1", 30, 91, 0, 59, "run", "stand", False),
    ("1003-pair-0", 15, 80, 0, 55, "bend", "kick", False),
    ("1003-pair-1", 15, 72, 0, 63, "bend", "kick", True),
    ("1006-pair-0", 0, 46, 21, 53, "stroll", "sit", True),
]


@pytest.fixture(scope="module")
def train():
    return load_babel_split(FIXTURES / "train.json")


def _tuple(p: Pair):
    return (
        p.key,
        p.start,
        p.length_0,
        p.length_transition,
        p.length_1,
        p.label_0,
        p.label_1,
        p.explicit_transition,
    )


def test_pairs_hand_written(train):
    report = ReadReport()
    pairs = extract_pairs(train, report=report)
    assert [_tuple(p) for p in pairs] == EXPECTED_PAIRS
    assert report.loaded == 6
    assert report.skipped["duration"] == 2  # 1003-pair-2 (too short), 1003-pair-3 (too long)
    assert report.skipped["no_frame_labels"] == 3  # 1004, 1005, 1007
    assert "1003 pair 2: 69 + 0 + 6 frames" in " ".join(report.examples["duration"])
    assert not report.problems


def test_pair_ranges_and_sources(train):
    p = {q.key: q for q in extract_pairs(train)}
    a = p["1001-pair-0"]
    assert (a.range_0, a.range_transition, a.range_1, a.end) == ((0, 76), (76, 105), (105, 210), 210)
    assert a.source_ranges == ((0, 90), (75, 120), (105, 210))
    assert a.seg_ids == ("1001-walk", "1001-tr", "1001-sit")
    b = p["1002-pair-0"]
    assert b.range_transition == (76, 76) and b.end == 120 and b.seg_ids == ("1002-jump", "1002-run")
    assert p["1006-pair-0"].seg_ids == ("1006-stroll", "1006-tr", "1006-sit")


def test_pairs_with_raw_labels(train):
    pairs = extract_pairs(train, ExtractConfig(label_field="raw_label"))
    assert [(p.label_0, p.label_1) for p in pairs][:3] == [
        ("Walking", "sits down"),
        ("jumps", "runs"),
        ("runs", "stands still"),
    ]


def test_overlap_split_is_not_the_midpoint(train):
    p = next(q for q in extract_pairs(train) if q.key == "1002-pair-0")
    overlap_midpoint = (30 + 60) // 2
    assert p.start + p.length_0 - 1 == 75 != overlap_midpoint  # last frame of action 1


def _seq(labels, dur=10.0, seq_id="9"):
    return parse_sequence(
        seq_id,
        {
            "babel_sid": int(seq_id),
            "dur": dur,
            "feat_p": "X/X/a.npz",
            "url": "",
            "seq_ann": {"labels": [{"raw_label": "x", "proc_label": "x", "seg_id": "s"}]},
            "frame_ann": {
                "labels": [
                    {"raw_label": lab, "proc_label": lab, "seg_id": f"{seq_id}-{i}", "start_t": s, "end_t": e}
                    for i, (lab, s, e) in enumerate(labels)
                ]
            },
        },
        "inline.json",
    )


def test_chained_transitions_quirk():
    # walk (0,60), transition (45,75), transition (70,100), sit (90,150).
    # TEACH does not filter a transition's own neighbours: walk / tr / tr -> "walk" then "transition"
    # ([0..45] 46, [46..69] 24, [70,100) 30) and tr / tr / sit ([45..70] 26, [71..89] 19, [90,150) 60).
    seq = _seq([("walk", 0, 2), ("transition", 1.5, 2.5), ("transition", 70 / 30, 100 / 30), ("sit", 3, 5)])
    original = extract_pairs([seq])
    assert [_tuple(p) for p in original] == [
        ("9-pair-0", 0, 46, 24, 30, "walk", "transition", True),
        ("9-pair-1", 45, 26, 19, 60, "transition", "sit", True),
    ]
    report = ReadReport()
    assert extract_pairs([seq], ExtractConfig(keep_transition_actions=False), report=report) == []
    assert report.skipped["no_pairs"] == 1


def test_segments(train):
    report = ReadReport()
    segs = extract_segments(train, report=report)
    got = [(s.key, s.start, s.end, s.label) for s in segs]
    assert got == [
        ("1001-1001-walk", 0, 90, "walk"),
        ("1001-1001-sit", 105, 210, "sit down"),
        ("1002-1002-jump", 0, 60, "jump"),
        ("1002-1002-run", 30, 120, "run"),
        ("1002-1002-stand", 120, 180, "stand"),
        ("1002-1002-wave", 245, 300, "wave"),  # int(8.2 * 30) = 245: truncation, as TEACH
        ("1003-1003-bend", 15, 90, "bend"),
        ("1003-1003-kick", 82, 150, "kick"),
        ("1003-1003-stretch", 960, 1020, "stretch"),
        ("1006-1006-walk", 0, 60, "walk"),
        ("1006-1006-stroll", 0, 60, "stroll"),
        ("1006-1006-sit", 67, 120, "sit"),
    ]
    assert report.loaded == 12
    # 1001: transition + t pose; 1003: two transitions; 1006: one transition
    assert report.skipped["excluded_action"] == 5
    assert report.skipped["duration"] == 2  # squat (7 frames), dance (780)
    assert report.skipped["no_frame_labels"] == 3
    assert all(s.kind == "frame" for s in segs)


def test_sequences(train):
    report = ReadReport()
    seqs = extract_sequences(train, report=report)
    assert [(s.key, s.start, s.end, s.label, s.kind) for s in seqs] == [
        ("1004-1004-seq", 0, 150, "walk in a circle", "seq")
    ]
    assert report.skipped["has_frame_labels"] == 4
    assert report.skipped["duration"] == 1  # 1005: 900 frames > 750
    assert report.skipped["excluded_action"] == 1  # 1007: t-pose
    raw = extract_sequences(train, ExtractConfig(label_field="raw_label"))
    assert raw[0].label == "Walking in a circle"


def test_seg_plus_seq(train):
    both = [
        r.key
        for s in train
        for r in records_of(s, "seg+seq", int(s.dur * 30), 30.0, ExtractConfig(), ReadReport())
    ]
    assert len(both) == 13 and "1004-1004-seq" in both
    assert len(set(both)) == len(both)


def test_keys_are_stable_and_unique(train):
    a = [p.key for p in extract_pairs(train)] + [s.key for s in extract_segments(train)]
    b = [p.key for p in extract_pairs(train)] + [s.key for s in extract_segments(train)]
    assert a == b and len(set(a)) == len(a)


def test_end_clipped_to_motion(train):
    seq = next(s for s in train if s.seq_id == "1002")
    segs = extract_segments([seq], lengths={"1002": 290})  # wave ends at 10.0 s = 300 > 290, within 1 s
    assert (segs[-1].start, segs[-1].end) == (245, 290)


def test_segment_outside_motion(train):
    seq = next(s for s in train if s.seq_id == "1003")  # labels up to 34 s
    with pytest.raises(DataError) as exc:
        extract_pairs([seq], lengths={"1003": 300})  # a 10 s motion
    msg = str(exc.value)
    assert "train.json" in msg and "seq 1003" in msg and "outside the motion" in msg and "1003-dance" in msg
    report = ReadReport()
    assert extract_segments([seq], lengths={"1003": 300}, report=report) == []
    assert report.skipped["segment_outside_motion"] == 1
    bad = _seq([("walk", 3.0, 2.0)])
    with pytest.raises(DataError, match=r"invalid times 3\.0\.\.2\.0"):
        extract_segments([bad])


def test_extra_file_annotators():
    seqs = load_babel_split(FIXTURES / "extra_train.json")
    first = extract_pairs(seqs)
    assert [_tuple(p) for p in first] == [("2001-pair-0", 0, 136, 0, 104, "walk", "turn around", False)]
    second = extract_pairs(seqs, ExtractConfig(annotator=1))
    # walk (0,150) and turn (150,240) touch: split 150 -> 151 and 240 - 150 - 1 = 89
    assert [_tuple(p) for p in second] == [("2001-a1-pair-0", 0, 151, 0, 89, "walk", "turn", False)]
    assert [s.key for s in extract_sequences(seqs)] == ["2002-2002-seq-x"]


def test_hidden_test_labels_give_nothing():
    seqs = load_babel_split(FIXTURES / "test.json")
    for fn in (extract_pairs, extract_segments, extract_sequences):
        report = ReadReport()
        assert fn(seqs, report=report) == []
        assert report.skipped["hidden_label"] == 1


def test_duration_bounds_follow_the_motion_rate():
    cfg = ExtractConfig()
    assert cfg.accept(15, 30.0) and not cfg.accept(14, 30.0)
    assert cfg.accept(750, 30.0) and not cfg.accept(751, 30.0)
    assert cfg.accept(12, 24.0) and not cfg.accept(11, 24.0)  # 12 frames at 24 fps = 0.5 s


def test_config_validation():
    with pytest.raises(ValueError, match="label_field"):
        ExtractConfig(label_field="text")
    with pytest.raises(ValueError, match="min_frames"):
        ExtractConfig(min_frames=0)


def test_duplicate_identical_labels_do_not_duplicate_pairs(tmp_path):
    # the same overlap annotated twice -> one pair, as TEACH (range-keyed segments, unique candidates)
    data = json.loads((FIXTURES / "train.json").read_text())
    labels = data["1002"]["frame_ann"]["labels"]
    labels.append(dict(labels[1], seg_id="1002-run-again"))
    p = tmp_path / "train.json"
    p.write_text(json.dumps({"1002": data["1002"]}))
    pairs = extract_pairs(load_babel_split(p))
    assert [_tuple(q) for q in pairs] == [t for t in EXPECTED_PAIRS if t[0].startswith("1002")]
    assert pairs[0].seg_ids == ("1002-jump", "1002-run-again")
