"""One resolution of a training config on every entry path, and the one error-to-exit mapping.

The paths: ``actiongpt train``, ``python -m launch.train`` (what torchrun, srun and the sbatch scripts
start), ``actiongpt submit train`` (the client and the submitit task), and the demo and results runners
(which save the config and start ``python -m launch.train -c`` on it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from actiongpt import config as cfglib
from actiongpt.models.registry import BACKBONES
from cluster.train_config import load_train_config

REPO = Path(__file__).resolve().parents[1]
PRESET_LR = {
    "paper": {"temos": 7e-5, "teach": 7e-5, "motionclip": 1e-4},
    "tiny": dict.fromkeys(BACKBONES, 1e-3),
}


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # configs/ paths are relative to the repository, as for every command


def _plain(cfg: object) -> dict:
    """The config as --print-config shows it (YAML: tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(cfglib.to_dict(cfg), sort_keys=False))


def _printed(main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main([*argv, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("preset", ["paper", "tiny"])
@pytest.mark.parametrize("model", ["temos", "teach", "motionclip"])
def test_same_arguments_resolve_the_same_on_every_path(
    model: str, preset: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from launch import cli
    from launch import train as module_train
    from launch.demo import model_stages
    from launch.demo.context import DemoConfig, DemoContext
    from launch.results import training as results_training
    from launch.results.config import ExperimentConfig, planned_runs
    from launch.submit import TrainJob

    # lr left unset: the preset's own rate on every path (the submit path once took the backbone's instead)
    files = [f"configs/train/{model}.yaml"]
    overrides = [f"preset={preset}", "lr=null", f"run_dir={tmp_path / 'run'}"]
    want = _plain(load_train_config(files, overrides))
    assert want["lr"] == PRESET_LR[preset][model] and want["preset"] == preset
    args = [x for f in files for x in ("-c", f)] + overrides

    assert _printed(cli.main, ["train", *args], capsys) == want
    assert _printed(module_train.main, args, capsys) == want
    assert _plain(TrainJob.config(files, overrides)) == want  # the submitit task
    debug = TrainJob.config(files, overrides, kind="debug")  # in-process executor: only requeue differs
    assert {**_plain(debug), "requeue": want["requeue"]} == want and debug.requeue is False

    # the runners compose files + overrides, save the resolved config and start launch.train on it
    demo = cfglib.from_dict(
        DemoConfig,
        {
            "out": str(tmp_path / "demo"),
            "backbones": [model],
            "train": {"overrides": [f"preset={preset}", "lr=null"]},
        },
    )
    ctx = DemoContext(demo)
    exp = ExperimentConfig(
        out=str(tmp_path / "results"), backbones=[model], seeds=[1], ablation_backbone=None,
        compact_aggregators=[], train_overrides=[f"preset={preset}", "lr=null"],
    )  # fmt: skip
    spec = planned_runs(exp)[0]
    runners = [
        (
            model_stages.train_args(ctx, model, "actiongpt"),
            model_stages.train_config(ctx, model, "actiongpt"),
        ),
        (results_training.train_args(exp, ctx, spec), results_training.train_config(exp, ctx, spec)),
    ]
    for i, ((r_files, r_overrides), cfg) in enumerate(runners):
        given = _printed(cli.main, ["train", *[x for f in r_files for x in ("-c", f)], *r_overrides], capsys)
        assert _plain(cfg) == given and given["lr"] == PRESET_LR[preset][model]
        saved = cfglib.save(cfg, tmp_path / f"runner{i}.yaml")
        assert _printed(module_train.main, ["-c", str(saved)], capsys) == given


def test_the_sbatch_scripts_train_through_launch_train() -> None:
    """The scripts resolve nothing themselves: they start ``python -m launch.train`` (tested above)."""
    for script in ("slurm/lib/common.sh", "slurm/torchrun/train.sh"):
        text = (REPO / script).read_text()
        assert "-m launch.train" in text and "TrainConfig" not in text, script


def test_unknown_model_is_exit_2_on_every_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from launch import cli
    from launch import train as module_train

    for main, argv in (
        (cli.main, ["train", "model=gpt9", "--print-config"]),
        (cli.main, ["train", "model=gpt9"]),
        (module_train.main, ["model=gpt9", "--print-config"]),
        (cli.main, ["submit", "train", "model=gpt9", "--cluster", "debug", f"--folder={tmp_path}"]),
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"unknown model 'gpt9'; choose from {list(BACKBONES)}" in err, err
        assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # the client refused before submitting anything


def test_bad_input_is_one_line_and_debug_adds_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from launch import train as module_train

    plain = subprocess.run(
        [sys.executable, "-m", "launch.train", "model=gpt9", "--print-config"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert plain.returncode == 2 and plain.stderr.strip().splitlines() == [
        f"actiongpt train: error: unknown model 'gpt9'; choose from {list(BACKBONES)}"
    ]
    capsys.readouterr()
    assert module_train.main(["model=gpt9", "--print-config", "--debug"]) == 2  # global flag, anywhere
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConfigError" in err
    assert err.rstrip().endswith(f"choose from {list(BACKBONES)}")


def _parser_raising(exc: BaseException) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actiongpt")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def fail(args: argparse.Namespace) -> int:
        raise exc

    sub.add_parser("boom").set_defaults(func=fail)
    return parser


def test_project_errors_map_to_exit_2_and_bugs_keep_their_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from actiongpt.data.errors import DataError
    from launch.cli import run
    from launch.errors import UserError
    from shards.format import ShardError

    for exc in (ShardError("shard-000003.tar: truncated"), DataError("x.json", "bad"), UserError("no")):
        capsys.readouterr()
        assert run(_parser_raising(exc), ["boom"]) == 2
        assert capsys.readouterr().err == f"actiongpt boom: error: {exc}\n"
    with pytest.raises(ZeroDivisionError):  # a bug is not bad input: it propagates (exit 1, traceback)
        run(_parser_raising(ZeroDivisionError("bug")), ["boom"])
