"""``actiongpt demo``: stage orchestration (order, skip-when-done, redo, --list, --until), the description
coverage check, and (slow) the whole demo end to end on a small dataset with a few training steps."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from launch.cli import main
from launch.commands import demo
from launch.demo.context import DemoConfig, DemoContext, Stage
from launch.demo.losses import loss_summary

REPO = Path(__file__).resolve().parents[1]
STAGE_ORDER = ["data", "stats", "describe", "embed", "shards", "train", "evaluator", "eval", "report"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)  # configs/ paths are relative to the repository, as for every command


def _data_args(root: Path, train: int, val: int, test: int, zeroshot: int) -> list[str]:
    return [
        f"data.out={root / 'data'}",
        f"data.sequences.train={train}",
        f"data.sequences.val={val}",
        f"data.sequences.test={test}",
        f"data.sequences.zeroshot={zeroshot}",
    ]


def _labels(data: Path) -> list[str]:
    from actiongpt.text.labels import collect_labels

    return collect_labels(sorted((data / "babel").glob("*.json")))


def _raw_cache(tmp: Path, labels: list[str], k: int, name: str = "cache") -> Path:
    """A real description cache made by the describe stage's raw-label backend (no model)."""
    label_file = tmp / f"{name}_labels.txt"
    label_file.write_text("\n".join(labels) + "\n")
    cache = tmp / f"{name}.jsonl"
    rc = main(
        [
            "describe",
            "run",
            "backend=raw",
            f"k={k}",
            f"labels=[{label_file}]",
            f"out_dir={tmp / (name + '_run')}",
            f"cache={cache}",
            "--no-progress",
        ]
    )
    assert rc == 0
    return cache


# --- orchestration ----------------------------------------------------------------------------------------


def test_list_names_every_stage_in_order(capsys) -> None:
    assert main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    names = re.findall(r"^\d+\. (\w+):", out, flags=re.M)
    assert names == STAGE_ORDER
    assert [s.name for s in demo.STAGES] == STAGE_ORDER


def test_run_stages_order_skip_redo_and_timings(tmp_path, capsys) -> None:
    calls: list[str] = []
    done: set[str] = set()

    def stage(name: str) -> Stage:
        def run(ctx: DemoContext) -> None:
            calls.append(name)
            done.add(name)

        return Stage(
            name, f"the {name} stage", run, lambda ctx: name in done, lambda ctx: print(f"shown {name}")
        )

    stages = [stage("a"), stage("b"), stage("c")]
    ctx = DemoContext(DemoConfig(out=str(tmp_path / "run")))
    ctx.out.mkdir()
    done.add("b")  # finished by an earlier invocation
    timings = demo.run_stages(ctx, stages)
    assert calls == ["a", "c"]  # in order, b skipped
    assert [t["status"] for t in timings] == ["ran", "skipped", "ran"]
    out = capsys.readouterr().out
    assert "[2/3] b: done before, skipped" in out and "shown b" in out
    assert json.loads((ctx.out / "timings.json").read_text())[0]["stage"] == "a"

    calls.clear()
    demo.run_stages(ctx, stages)
    assert calls == []  # everything done: a second run does nothing

    ctx.redo = {"b"}
    demo.run_stages(ctx, stages)
    assert calls == ["b"]


def test_a_failing_stage_stops_the_run_and_is_timed(tmp_path) -> None:
    calls: list[str] = []

    def boom(ctx: DemoContext) -> None:
        raise RuntimeError("stage broke")

    stages = [
        Stage("a", "", lambda ctx: calls.append("a"), lambda ctx: False),
        Stage("b", "", boom, lambda ctx: False),
        Stage("c", "", lambda ctx: calls.append("c"), lambda ctx: False),
    ]
    ctx = DemoContext(DemoConfig(out=str(tmp_path)))
    with pytest.raises(RuntimeError, match="stage broke"):
        demo.run_stages(ctx, stages)
    assert calls == ["a"]
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert [(t["stage"], t["status"]) for t in timings] == [("a", "ran"), ("b", "failed")]


def test_until_and_bad_arguments(capsys) -> None:
    assert [s.name for s in demo.select_stages("describe")] == STAGE_ORDER[:3]
    assert main(["demo", "--until", "nope"]) == 2
    assert "unknown stage" in capsys.readouterr().err
    assert main(["demo", "--redo", "nope"]) == 2
    assert "unknown stage" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--backbones", "teach,gpt4"])
    assert main(["demo", "backbones=[temos]", "train.steps.temos=0"]) == 2
    assert "train.steps.temos" in capsys.readouterr().err


def test_loss_summary_says_whether_the_loss_fell(tmp_path) -> None:
    def write(losses: list[float]) -> None:
        recs = [{"kind": "train", "step": i + 1, "loss": v} for i, v in enumerate(losses)]
        recs.insert(3, {"kind": "event", "step": 3, "event": "checkpoint"})
        (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + '\n{"kind": "tr')

    write([2.0 - 0.01 * i for i in range(100)])
    s = loss_summary(tmp_path)
    assert s["fell"] and s["steps"] == 100 and s["window"] == 10
    assert s["first"] == pytest.approx(2.0 - 0.01 * 4.5) and s["last"] == pytest.approx(2.0 - 0.01 * 94.5)
    write([1.0 + 0.01 * i for i in range(40)])
    s = loss_summary(tmp_path)
    assert not s["fell"] and "did not fall" in s["text"]


# --- the describe stage on a real (small) dataset -----------------------------------------------------------


def test_missing_descriptions_are_named_then_the_stages_skip_when_done(tmp_path, capsys) -> None:
    data_args = _data_args(tmp_path, 4, 2, 2, 2)
    out = tmp_path / "run"
    base = ["demo", "--out", str(out), "--until", "describe", *data_args]

    # data + stats only, to learn the labels of the generated dataset
    assert main(["demo", "--out", str(out), "--until", "stats", *data_args]) == 0
    labels = _labels(tmp_path / "data")
    assert len(labels) > 4
    missing = [labels[1], labels[-1]]
    partial = _raw_cache(tmp_path, [lab for lab in labels if lab not in missing], k=2, name="partial")
    capsys.readouterr()

    assert main([*base, f"descriptions=[{partial}]", "k=2"]) == 2
    err = capsys.readouterr().err
    assert f"2 of {len(labels)} labels have no description" in err
    for lab in missing:
        assert repr(lab) in err
    assert "actiongpt describe run -c configs/describe/local_smollm2.yaml k=2" in err
    assert "never calls an LLM" in err
    assert not (out / "descriptions_check.json").exists()

    # fewer than k descriptions is also named
    assert main([*base, f"descriptions=[{partial}]", "k=3"]) == 2
    assert "labels have fewer than 3" in capsys.readouterr().err

    complete = _raw_cache(tmp_path, labels, k=2, name="complete")
    capsys.readouterr()
    assert main([*base, f"descriptions=[{complete}]", "k=2"]) == 0
    out1 = capsys.readouterr().out
    assert "[3/3] describe: finished" in out1
    assert f"every one of the {len(labels)} labels" in out1
    check = json.loads((out / "descriptions_check.json").read_text())
    assert check["labels_total"] == len(labels) and check["models"] == ["raw-label"]

    t0 = time.perf_counter()
    assert main([*base, f"descriptions=[{complete}]", "k=2"]) == 0
    out2 = capsys.readouterr().out
    for i, name in enumerate(["data", "stats", "describe"], 1):
        assert f"[{i}/3] {name}: done before, skipped" in out2
    assert time.perf_counter() - t0 < 10

    # a changed cache redoes the check (and only the stages downstream of it)
    with complete.open("a") as f:
        f.write(partial.read_text().splitlines()[0] + "\n")
    assert main([*base, f"descriptions=[{complete}]", "k=2"]) == 0
    out3 = capsys.readouterr().out
    assert "[2/3] stats: done before, skipped" in out3 and "[3/3] describe: finished" in out3


# --- the whole demo (slow) ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_end_to_end_small(tmp_path, capsys) -> None:
    """Every stage for real (synth data, MiniLM, shards, 2-rank torchrun training and evaluation) on a small
    dataset with a few steps; results.md holds Table 1 for val and zeroshot; a rerun skips everything."""
    data_args = _data_args(tmp_path, 30, 8, 2, 10)
    out = tmp_path / "run"
    assert main(["demo", "--out", str(out), "--until", "stats", *data_args]) == 0
    cache = _raw_cache(tmp_path, _labels(tmp_path / "data"), k=2)
    args = [
        "demo",
        "--out",
        str(out),
        *data_args,
        f"descriptions=[{cache}]",
        "k=2",
        "train.steps.teach=12",
        "train.ckpt_every=6",
        "train.evaluator_steps=6",
        "eval.renders=1",
    ]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    results = (out / "results.md").read_text()
    assert results.rstrip() in printed  # the report is printed too
    for title in ("val split", "zero-shot split"):
        section = results.split(title, 1)[1].split("## ", 1)[0]
        assert "| model | method | APE root | APE global traj | APE mean local | APE mean global" in section
        assert re.search(r"^\| TEACH \| Default \| \**\d", section, flags=re.M)
        assert re.search(r"^\| TEACH \| Action-GPT \| \**\d", section, flags=re.M)
    for split in ("val", "zeroshot"):
        for method in ("default", "actiongpt"):
            d = out / "eval" / f"teach-{split}-{method}"
            metrics = json.loads((d / "metrics.json").read_text())
            assert metrics["world_size"] == 2 and metrics["meta"]["split"] == split
            assert len(list((d / "renders").glob("*.gif"))) == 1
    assert ".gif`" in results
    assert "## Evaluator-based metrics" in results and "| TEACH | reference motions |" in results
    for method in ("default", "actiongpt"):
        s = loss_summary(out / "runs" / f"teach-{method}")
        assert s["steps"] == 12
    timings = json.loads((out / "timings.json").read_text())
    assert [t["stage"] for t in timings] == STAGE_ORDER

    assert main(args) == 0
    timings = json.loads((out / "timings.json").read_text())
    assert all(t["status"] == "skipped" for t in timings)
    assert sum(t["seconds"] for t in timings) < 10
