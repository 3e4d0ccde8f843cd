"""Bad inputs outside the shards: a malformed description-cache line (exit 2 with file and line, a torn last
line tolerated), a BABEL ``feat_p`` leaving the AMASS folder (refused unless opted in), and the
``data stats`` counter of BABEL sequences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actiongpt.data.dataset import BabelDataConfig, MotionDataset
from actiongpt.data.errors import DataError
from actiongpt.data.stats import dataset_stats
from launch.cli import main
from launch.commands.data import labelled_clips
from tests.test_dataset import _make

DESCRIPTIONS = Path(__file__).resolve().parents[1] / "actiongpt/assets/descriptions/embedded_smollm2.jsonl"


def _cache(path: Path, n: int = 6) -> Path:
    lines = DESCRIPTIONS.read_text().splitlines(keepends=True)[:n]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    return path


def test_malformed_cache_line_in_the_middle_exits_2_naming_file_and_line(tmp_path: Path, capsys) -> None:
    good = _cache(tmp_path / "good.jsonl")
    bad = _cache(tmp_path / "bad.jsonl")
    lines = bad.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:40] + "\n"  # a complete line holding half a record: not a kill mid-write
    bad.write_text("".join(lines))
    before = bad.read_bytes()
    merge = ["describe", "merge", "--inputs", str(good), str(bad), "--out", str(tmp_path / "merged.jsonl")]
    for argv in (["describe", "quality", str(bad)], merge):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{bad}: line 3 is not valid JSON" in err and "Traceback" not in err
        assert err.count("\n") == 1
    assert bad.read_bytes() == before and not (tmp_path / "merged.jsonl").exists()

    # a writer reopening its own part file with such a line appends nothing and cuts nothing
    labels = tmp_path / "labels.txt"
    labels.write_text("walk\n")
    part = tmp_path / "run" / "parts" / "part-00000-of-00001.jsonl"
    part.parent.mkdir(parents=True)
    part.write_bytes(before + b'{"key": "torn-from-a-kill", "lab')
    torn = part.read_bytes()
    argv = ["describe", "run", "backend=raw", f"labels=[{labels}]", f"out_dir={tmp_path / 'run'}", "k=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{part}: line 3 is not valid JSON" in err and "Traceback" not in err
    assert part.read_bytes() == torn


def test_torn_last_line_stays_tolerated(tmp_path: Path, capsys) -> None:
    cache = _cache(tmp_path / "c.jsonl")
    with open(cache, "ab") as fh:
        fh.write(b'{"key": "torn", "label": "wa')
    before = cache.read_bytes()
    assert main(["describe", "quality", str(cache)]) == 0
    assert cache.read_bytes() == before


def _outside_feat_p(tmp_path: Path) -> tuple[Path, Path, Path]:
    babel, amass = _make(tmp_path)
    split = babel / "train.json"
    data = json.loads(split.read_text())
    seq_id = next(iter(data))
    rel = "/".join(data[seq_id]["feat_p"].split("/")[1:])
    outside = tmp_path / "elsewhere" / "x.npz"
    outside.parent.mkdir()
    (amass / rel).rename(outside)  # the same motion, now outside the AMASS folder
    data[seq_id]["feat_p"] = "CMU/../../elsewhere/x.npz"
    split.write_text(json.dumps(data))
    return babel, amass, outside


def test_feat_p_outside_the_amass_folder_is_refused_unless_opted_in(tmp_path: Path) -> None:
    babel, amass, outside = _outside_feat_p(tmp_path)
    (tmp_path / "ref").mkdir()
    ref = MotionDataset(*_make(tmp_path / "ref"), "train", "pairs", progress=False)
    with pytest.raises(DataError, match=r"feat_p 'CMU/\.\./\.\./elsewhere/x\.npz' points outside") as info:
        MotionDataset(babel, amass, "train", "pairs", strict=True, progress=False)
    assert str(babel / "train.json") in str(info.value) and "allow_outside_amass" in str(info.value)
    lenient = MotionDataset(babel, amass, "train", "pairs", progress=False)
    assert lenient.report.skipped["outside_amass"] == 1 and "outside_amass" in lenient.report.problems
    assert len(lenient) < len(ref)
    cfg = BabelDataConfig(babel_dir=str(babel), amass_dir=str(amass), split="train", mode="pairs",
                          allow_outside_amass=True)  # fmt: skip
    trusted = MotionDataset.from_config(cfg, progress=False)
    assert len(trusted) == len(ref) and not trusted.report.problems
    label = json.loads((babel / "train.json").read_text())["1001"]["frame_ann"]["labels"][0]["proc_label"]
    with pytest.raises(DataError, match="points outside"):  # data render reads through the same check
        labelled_clips(babel, amass, [label])
    # an absolute feat_p as well
    data = json.loads((babel / "train.json").read_text())
    data[next(iter(data))]["feat_p"] = str(outside)
    (babel / "train.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="points outside"):
        MotionDataset(babel, amass, "train", "pairs", strict=True, progress=False)
    assert outside.is_file()


def test_data_stats_counts_loaded_babel_sequences(tmp_path: Path) -> None:
    babel, amass = _make(tmp_path)
    stats = dataset_stats(babel, amass, ["train"])
    entry = stats["splits"]["train"]
    assert entry["sequences"] > 0 and entry["babel_report"]["loaded"] == entry["sequences"]
