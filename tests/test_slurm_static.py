"""The slurm/ scripts without a cluster: syntax, their #SBATCH defaults, and the command each task runs
(a stand-in ``srun`` on PATH prints the rank variables and the command instead of launching it)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "train_teach.sh",
    "train_temos.sh",
    "train_motionclip.sh",
    "eval.sh",
    "describe.sh",
    "embed.sh",
    "build_shards.sh",
    "torchrun/train.sh",
]
TRAIN = {"train_teach.sh": "teach", "train_temos.sh": "temos", "train_motionclip.sh": "motionclip"}

# Runs the step's tasks in sequence with the variables srun would set, as a 2-node x 2-task step.
FAKE_SRUN = """#!/bin/bash
while [[ $# -gt 0 && $1 == -* ]]; do shift; done
for node in 0 1; do for local in 0 1; do
  SLURM_PROCID=$((node * 2 + local)) SLURM_LOCALID=$local SLURM_NODEID=$node SLURM_STEP_NUM_TASKS=4 \\
  SLURM_STEP_NUM_NODES=2 SLURM_STEP_TASKS_PER_NODE='2(x2)' "$@"
done; done
"""
SHOW = (
    "printenv RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT | tr '\\n' ' '; echo ARGS"
)


def _sbatch_options(script: str) -> dict[str, str]:
    opts = {}
    for line in (REPO / "slurm" / script).read_text().splitlines():
        m = re.match(r"#SBATCH --([\w-]+)(?:=(.*))?$", line)
        if m:
            opts[m.group(1)] = m.group(2) or ""
    return opts


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse_and_carry_the_job_defaults(script: str) -> None:
    path = REPO / "slurm" / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert path.stat().st_mode & stat.S_IXUSR
    text = path.read_text()
    opts = _sbatch_options(script)
    assert opts["requeue"] == "" and opts["open-mode"] == "append" and "job-name" in opts
    assert opts["output"].startswith("slurm/logs/%x-")  # one log per job id, appended across requeues
    assert re.search(rf"^#   .*sbatch .*slurm/{re.escape(script)}", text, re.M), "header shows invocations"
    if script in TRAIN or script == "torchrun/train.sh":
        assert re.fullmatch(r"USR1@\d+", opts["signal"]) and opts["gpus-per-node"] and opts["time"]
    if script in TRAIN or script in ("eval.sh", "embed.sh"):  # one task per GPU
        assert opts["ntasks-per-node"] == opts["gpus-per-node"]
    assert (REPO / "slurm" / "logs" / ".gitignore").is_file()


def _run(script: str, args: list[str], tmp_path: Path, **env: str) -> list[str]:
    """Run ``script`` as its batch step would, with the stand-in srun; the lines the tasks printed."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "srun").write_text(FAKE_SRUN)
    (bindir / "srun").chmod(0o755)
    (bindir / "python3").write_text(f'#!/bin/bash\n{SHOW} "$@"\n')
    (bindir / "python3").chmod(0o755)
    (bindir / "scontrol").write_text("#!/bin/sh\nexit 1\n")  # no cluster to ask
    (bindir / "scontrol").chmod(0o755)
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "MASTER_"))
    }
    base.update(
        PATH=f"{bindir}:{base['PATH']}",
        SLURM_JOB_ID="123457",
        SLURM_JOB_NAME="exp1",
        SLURM_SUBMIT_DIR=str(REPO),
        SLURM_CPUS_PER_TASK="3",
        **env,
    )
    base.pop("OMP_NUM_THREADS", None)
    res = subprocess.run(
        ["bash", str(REPO / "slurm" / script), *args],
        cwd=REPO,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if " ARGS " in line]


def test_train_script_maps_ranks_and_orders_configs_run_dir_and_overrides(tmp_path: Path) -> None:
    lines = _run("train_teach.sh", ["-c", "configs/train/tiny.yaml", "lr=1e-3", "--print-config"], tmp_path)
    assert len(lines) == 4
    port = 15000 + 123457 % 10000
    for rank, line in enumerate(lines):
        env, args = line.split(" ARGS ")
        # RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT (no node list: localhost)
        assert env.split() == [str(rank), "4", str(rank % 2), "2", "127.0.0.1", str(port)]
        assert args.split() == [
            "-m",
            "launch.train",
            "--print-config",
            "-c",
            f"{REPO}/configs/train/teach.yaml",
            "-c",
            "configs/train/tiny.yaml",
            "run_dir=runs/exp1",
            "lr=1e-3",
        ]


def test_knobs_replace_the_config_and_the_run_directory(tmp_path: Path) -> None:
    lines = _run(
        "train_temos.sh",
        ["run_dir=/elsewhere"],
        tmp_path,
        CONFIG="configs/train/temos.yaml configs/train/tiny.yaml",
        RUNS_ROOT="/scratch/r",
    )
    args = lines[0].split(" ARGS ")[1].split()
    assert args == [
        "-m",
        "launch.train",
        "-c",
        "configs/train/temos.yaml",  # $CONFIG entries as given: they exist in the working directory
        "-c",
        "configs/train/tiny.yaml",
        "run_dir=/scratch/r/exp1",
        "run_dir=/elsewhere",
    ]
    lines = _run("eval.sh", ["checkpoint=m.pt"], tmp_path, RUN_DIR="/out/e")
    assert lines[0].split(" ARGS ")[1].split() == [
        "-m",
        "launch.cli",
        "eval",
        "run",
        "-c",
        f"{REPO}/configs/eval/default.yaml",
        "out_dir=/out/e",
        "checkpoint=m.pt",
    ]


def test_missing_config_file_fails_before_any_task_starts(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SLURM_SUBMIT_DIR=str(REPO), SLURM_JOB_NAME="x", SLURM_JOB_ID="5", CONFIG="no/such.yaml")
    res = subprocess.run(
        ["bash", str(REPO / "slurm" / "train_teach.sh")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "config file" in res.stderr and "no/such.yaml" in res.stderr
