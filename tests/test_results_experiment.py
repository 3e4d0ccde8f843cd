"""``actiongpt results``: the run plan, the statistics and tables of the report, and the train -> eval ->
report stages end to end on toy shards (real training and evaluation processes, a few steps each)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from actiongpt.config import ConfigError
from cluster.export import read_export_meta
from launch.demo.context import DemoContext
from launch.results.config import ExperimentConfig, RunSpec, eval_dir, planned_runs, run_dir
from launch.results.paired import mean_std
from launch.results.report import cell, metrics_table

KEYS = (
    "APE_root",
    "APE_traj",
    "APE_mean_pose",
    "APE_mean_joints",
    "AVE_root",
    "AVE_traj",
    "AVE_mean_pose",
    "AVE_mean_joints",
)


def test_plan_has_every_run_once_seed_major_with_table1_k_shared_by_the_ablation() -> None:
    cfg = ExperimentConfig(
        backbones=["temos", "teach"], seeds=[1, 2], k=4, ablation_ks=[1, 4, 8], compact_aggregators=[]
    )
    names = [r.name for r in planned_runs(cfg)]
    assert names[:4] == [
        "temos-default-s1",
        "temos-actiongpt-k4-s1",
        "teach-default-s1",
        "teach-actiongpt-k4-s1",
    ]
    assert len(names) == len(set(names))
    # 2 seeds x (2 backbones x 2 methods) + 2 seeds x the ablation's k = 1 and 8 (k = 4 is Table 1's run)
    assert len(names) == 8 + 4
    assert "teach-actiongpt-k8-s2" in names and "temos-actiongpt-k1-s1" not in names


def test_compact_runs_default_to_the_token_text_backbones_and_come_last() -> None:
    cfg = ExperimentConfig(backbones=["motionclip", "teach"], seeds=[1, 2], ablation_backbone=None)
    assert cfg.compact_backbones == ["teach"]  # MotionCLIP's pooled text is averaged by every aggregator
    names = [r.name for r in planned_runs(cfg)]
    assert names[-4:] == [
        "teach-actiongpt-k4-sentence_mean-s1",
        "teach-actiongpt-k4-sentences-s1",
        "teach-actiongpt-k4-sentence_mean-s2",
        "teach-actiongpt-k4-sentences-s2",
    ]
    assert len(names) == 8 + 4 and RunSpec("teach", "actiongpt", 1, 4, "sentences").label == (
        "Action-GPT k=4 sentences"
    )
    assert len(planned_runs(ExperimentConfig(backbones=["motionclip"], ablation_backbone=None))) == 6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbones": ["gpt"]}, "backbones"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"ablation_ks": [1, 16]}, "store_k"),
        ({"backbones": ["temos"], "ablation_backbone": "teach"}, "ablation_backbone"),
        ({"steps": {"teach": 0, "temos": 1, "motionclip": 1}}, "steps.teach"),
        ({"splits": ["dev"]}, "splits"),
        ({"compact_aggregators": ["original"]}, "compact_aggregators"),
        ({"compact_aggregators": ["sentences", "sentences"]}, "compact_aggregators"),
        ({"compact_aggregators": ["mean_pool"]}, "compact_aggregators"),
        ({"compact_backbones": ["motionclip"]}, "compact_backbones"),
        (
            {"backbones": ["teach"], "compact_backbones": ["temos"], "ablation_backbone": None},
            "compact_backbones",
        ),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig(**kwargs)


def test_mean_and_sample_std_and_cells() -> None:
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and s == pytest.approx(1.0)  # sample std (n - 1)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert cell([0.1, 0.3]) == "0.200 ± 0.141"
    assert cell([0.25]) == "0.250"
    assert cell([]) == "n/a"


def _metrics(v: float) -> dict[str, float]:
    return {k: v for k in KEYS}


def test_table_bolds_the_lower_mean_per_model_and_dashes_rootless_columns() -> None:
    rows = [
        ("TEACH", "Default", [_metrics(0.5), _metrics(0.7)], False),
        ("TEACH", "Action-GPT", [_metrics(0.4), _metrics(0.4)], False),
        ("MotionCLIP", "Default", [_metrics(0.2)], True),
        ("MotionCLIP", "Action-GPT", [_metrics(0.3)], True),
    ]
    lines = metrics_table(rows, ("model", "method")).splitlines()
    assert lines[2].startswith("| TEACH | Default | 2 | 0.600 ± 0.141 |")
    assert "**0.400 ± 0.000**" in lines[3] and "**" not in lines[2]
    assert lines[4].split(" | ")[3:5] == ["–", "–"]  # no root motion: root and trajectory columns
    assert "**0.200**" in lines[4] and "**" not in lines[5]


@pytest.fixture(scope="module")
def toy_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.dist_helpers.eval_toy import build_eval_shards

    root = tmp_path_factory.mktemp("results-shards")
    shards = build_eval_shards(root / "toy", n_val=12, n_train=24, pairs=True)
    (root / "shards").mkdir()
    (root / "shards" / "pairs-minilm").symlink_to(shards)  # the folder name the stages look for
    return root / "shards"


def test_train_eval_report_end_to_end_and_a_rerun_skips_finished_runs(
    toy_shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from launch.results.evaluation import eval_all, eval_done
    from launch.results.report import write_report
    from launch.results.training import run_done, train_all

    cfg = ExperimentConfig(
        out=str(tmp_path / "out"),
        doc=str(tmp_path / "docs" / "results.md"),
        backbones=["teach"],
        seeds=[1, 2],
        k=2,
        ablation_ks=[1, 2],
        store_k=4,
        shards=str(toy_shards),
        steps={"teach": 3},
        ckpt_every=2,
        log_every=1,
        splits=["val"],
        eval_nproc=1,
        jobs=2,
        train_overrides=["batch_size=4"],
        compact_aggregators=["sentence_mean"],
        evaluator_steps=8,  # a few steps: the wiring, not the evaluator's quality, is tested here
    )
    ctx = DemoContext(cfg.demo_config())
    specs = planned_runs(cfg)
    assert [s.name for s in specs] == [
        "teach-default-s1",
        "teach-actiongpt-k2-s1",
        "teach-default-s2",
        "teach-actiongpt-k2-s2",
        "teach-actiongpt-k1-s1",
        "teach-actiongpt-k1-s2",
        "teach-actiongpt-k2-sentence_mean-s1",
        "teach-actiongpt-k2-sentence_mean-s2",
    ]
    # rank variables left in the environment by an earlier in-process run, pointing at a taken port: the
    # concurrent runs must not inherit them
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(busy.getsockname()[1]))
    with busy:
        train_all(cfg, ctx)
    assert all(run_done(cfg, ctx, s) for s in specs)
    # the two seeds start from different initialisations: different first losses
    first = {}
    for s in specs:
        rec = json.loads((run_dir(cfg, s) / "metrics.jsonl").read_text().splitlines()[0])
        first[s.name] = rec["loss"]
    assert first["teach-default-s1"] != first["teach-default-s2"]
    capsys.readouterr()
    train_all(cfg, ctx)  # everything done: nothing starts
    out = capsys.readouterr().out
    assert "8 of 8 runs done before; 0 to train" in out and "started" not in out
    # the compact run trained on one text token per action, and its export says so
    compact = RunSpec("teach", "actiongpt", 1, 2, "sentence_mean")
    assert (
        read_export_meta(run_dir(cfg, compact) / "model.safetensors")["meta"]["aggregator"] == "sentence_mean"
    )

    from launch.results.evaluation import evaluator_done, evaluator_run

    assert not evaluator_done(cfg, ctx)
    evaluator_run(cfg, ctx)  # one tiny evaluator for every run, its own retrieval quality printed
    assert evaluator_done(cfg, ctx)
    assert "| val | 24 |" in (Path(cfg.out) / "eval" / "evaluator" / "evaluator_quality.md").read_text()
    eval_all(cfg, ctx)
    assert eval_done(cfg, ctx)
    k1 = json.loads((eval_dir(cfg, RunSpec("teach", "actiongpt", 1, 1), "val") / "metrics.json").read_text())
    assert k1["meta"]["k"] == 1 and k1["num_sequences"] == 12
    c1 = json.loads((eval_dir(cfg, compact, "val") / "metrics.json").read_text())
    assert (c1["meta"]["k"], c1["meta"]["aggregator"]) == (2, "sentence_mean")

    path = write_report(cfg)
    text = path.read_text()
    assert text == Path(cfg.doc).read_text()
    assert "| TEACH | Default | 2 |" in text and "| TEACH | Action-GPT (k=2) | 2 |" in text
    assert "| TEACH | Action-GPT k = 1 | 2 |" in text  # Table 2 analogue
    assert " of 2 |" in text  # paired by seed
    assert "| TEACH | Action-GPT k=2 sentence_mean | 2 |" in text  # compact aggregators' table
    assert "- TEACH `sentence_mean`, val: − original aggregation" in text
    # the evaluator's metrics: every evaluation names its checkpoint; Table 1 rows with the reference first,
    # paired per-seed tests
    assert k1["meta"]["evaluator"]["checkpoint"].endswith("runs/evaluator/model.safetensors")
    assert "R_precision_top1" in k1["metrics"] and "foot_skating" in k1["metrics"]
    section = text.split("## Evaluator-based metrics", 1)[1]
    assert "not HumanML3D numbers" in section and "| TEACH | reference motions | – |" in section
    assert "| TEACH | Action-GPT (k=2) | 2 |" in section and "| TEACH | R@3 ↑ |" in section
    assert (Path(cfg.doc).parent / "results_training_curves.png").stat().st_size > 1000
    # the reported mean is the mean of the two seeds' metrics files
    vals = [
        json.loads((eval_dir(cfg, RunSpec("teach", "default", s), "val") / "metrics.json").read_text())[
            "metrics"
        ]["APE_root"]
        for s in (1, 2)
    ]
    assert f"{(vals[0] + vals[1]) / 2:.3f} ± " in text


def test_paired_verdict_is_a_two_sided_paired_t_test() -> None:
    from launch.results.paired import paired_verdict

    assert paired_verdict([-0.01]) == "one seed: no test"
    # mean -0.02, sd 0.01, n 3: t = -3.46, inside the 5 % critical value 4.303 for 2 degrees of freedom
    assert paired_verdict([-0.01, -0.02, -0.03]) == (
        "not significant at 5 % (paired t = -3.46, p = 0.07, n = 3; Action-GPT lower in 3 of 3 seeds)"
    )
    # mean -0.02, sd 0.001: t = -34.6
    assert paired_verdict([-0.019, -0.02, -0.021]).startswith("Action-GPT lower, p < 0.05 (paired t = -34.64")
    assert paired_verdict([0.01, 0.01]) == "higher in every seed"
