"""Post-processing, the quality measure, label collection and the raw-label baseline."""

from __future__ import annotations

import json

import pytest

from actiongpt.text.cache import load_descriptions
from actiongpt.text.labels import collect_labels
from actiongpt.text.quality import degenerate_reason, describe_text, postprocess, quality_report
from tests.describe_cli import cli

GOOD = (
    "The person bends both knees and lowers the hips. The arms swing forward while the torso leans "
    "over the feet."
)
STORY = (
    "A 28-year-old man named Alex walks through the park in his blue jacket, smiling at the people "
    "he passes on the street."
)


def test_postprocess_strips_newlines_like_the_original() -> None:
    raw = "\n\nThe person lifts the arm.\nThe hand waves.  \n"
    assert postprocess(raw) == "The person lifts the arm. The hand waves."
    assert postprocess(raw, "remove") == "The person lifts the arm.The hand waves."


def test_degenerate_answers_are_detected() -> None:
    assert degenerate_reason("") == "empty"
    assert degenerate_reason("   ") == "empty"
    assert degenerate_reason("Walk.").startswith("too short")
    assert degenerate_reason("the arm goes up " * 12).startswith("repetition loop")
    assert degenerate_reason(GOOD) is None


def test_quality_measure_separates_body_movement_from_stories() -> None:
    good = describe_text(GOOD)
    assert {"knees", "hips", "arms", "torso", "feet"} <= set(good["body_parts"])
    assert good["movement"] and not (good["names"] or good["clothing"] or good["places"])
    story = describe_text(STORY)
    assert story["names"] and story["clothing"] and story["places"] and not story["body_parts"]
    assert not describe_text("Jumping jacks: the person jumps and spreads the legs.")["names"]
    rep = quality_report([GOOD, GOOD, STORY, ""])
    assert rep.descriptions == 4
    assert rep.share_body_parts == 0.5 and rep.share_off_topic == 0.25 and rep.share_degenerate == 0.25
    assert rep.score == pytest.approx(0.0)
    assert quality_report([GOOD]).score > quality_report([STORY]).score


def _babel(path, labels_by_seq):
    data = {}
    for n, (seq_labels, frame_labels) in enumerate(labels_by_seq):
        data[str(n)] = {
            "babel_sid": n,
            "dur": 3.0,
            "url": "",
            "feat_p": f"CMU/CMU/01/01_{n:02d}_poses.npz",
            "seq_ann": {
                "babel_lid": "a",
                "anntr_id": "x",
                "labels": [
                    {"raw_label": lab.upper(), "proc_label": lab, "seg_id": f"s{n}{j}", "act_cat": ["walk"]}
                    for j, lab in enumerate(seq_labels)
                ],
            },
            "frame_ann": None
            if frame_labels is None
            else {
                "babel_lid": "b",
                "anntr_id": "y",
                "labels": [
                    {
                        "raw_label": lab,
                        "proc_label": lab,
                        "seg_id": f"f{n}{j}",
                        "act_cat": None,
                        "start_t": 0.0,
                        "end_t": 1.0,
                    }
                    for j, lab in enumerate(frame_labels)
                ],
            },
        }
    path.write_text(json.dumps(data))
    return path


def test_collect_labels_from_babel_and_text_files(tmp_path) -> None:
    train = _babel(tmp_path / "train.json", [(["walk"], ["walk", "turn left"]), (["jump"], None)])
    val = _babel(tmp_path / "val.json", [(["sit down"], ["transition", "sit down"])])
    extra = tmp_path / "zeroshot.txt"
    extra.write_text("act like a dog\n\n  walk  \n")
    labels = collect_labels([train, val, extra])
    assert labels == sorted({"walk", "turn left", "jump", "sit down", "transition", "act like a dog"})
    assert "WALK" in collect_labels([train], "raw_label")
    with pytest.raises(FileNotFoundError):
        collect_labels([tmp_path / "missing.json"])


def test_raw_label_baseline_and_quality_command(tmp_path, capsys) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("walk forward\njump\n")
    rc = cli(
        [
            "describe",
            "run",
            "backend=raw",
            f"labels=[{labels}]",
            f"out_dir={tmp_path / 'raw'}",
            "k=2",
            "--no-progress",
        ]
    )
    assert rc == 0
    d = load_descriptions(tmp_path / "raw" / "parts", k=2)
    assert d == {"jump": ["jump", "jump"], "walk forward": ["walk forward", "walk forward"]}
    capsys.readouterr()
    assert (
        cli(
            [
                "describe",
                "quality",
                str(tmp_path / "raw"),
                "--by",
                "model",
                "--json",
                str(tmp_path / "q.json"),
            ]
        )
        == 0
    )
    assert "raw-label" in capsys.readouterr().out
    q = json.loads((tmp_path / "q.json").read_text())
    assert q["raw-label"]["descriptions"] == 4 and q["raw-label"]["share_degenerate"] == 1.0


def test_user_errors_exit_2_with_a_clear_message(tmp_path, capsys) -> None:
    base = ["describe", "run", "backend=raw", f"out_dir={tmp_path}", "--no-progress"]
    assert cli([*base[:3], f"labels=[{tmp_path / 'nope.txt'}]", *base[3:]]) == 2
    assert "nope.txt does not exist" in capsys.readouterr().err
    labels = tmp_path / "l.txt"
    labels.write_text("walk\n")
    assert cli([*base[:3], f"labels=[{labels}]", f"read_caches=[{tmp_path / 'x.jsonl'}]", *base[3:]]) == 2
    assert "read_caches" in capsys.readouterr().err
    assert cli([*base[:3], f"labels=[{labels}]", "prompt.template=nope", *base[3:]]) == 2
    assert "unknown template" in capsys.readouterr().err
    assert cli([*base[:3], f"labels=[{labels}]", "sampling.temperature=5", *base[3:]]) == 2
    assert "temperature" in capsys.readouterr().err


def test_shipped_embedded_descriptions_match_their_provenance() -> None:
    import hashlib
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "actiongpt" / "assets" / "descriptions"
    cache = folder / "embedded_smollm2.jsonl"
    prov = json.loads((folder / "provenance.json").read_text())
    assert hashlib.sha256(cache.read_bytes()).hexdigest() == prov["sha256"]
    d8 = load_descriptions(cache, k=8)
    assert len(d8) == prov["labels"] and sum(map(len, d8.values())) == prov["descriptions"]
    d4 = load_descriptions(cache, k=4)
    assert all(d4[label] == texts[:4] for label, texts in d8.items())  # the k ablation takes the first k
    assert prov["coverage_of_embedded_dataset"]["missing_or_incomplete"] == []
    assert prov["template"]["name"] == "body_parts_fewshot" and prov["k"] == 8
