"""The text-motion evaluator stage of ``actiongpt demo`` and ``actiongpt results``: train a tiny
``model=evaluator`` on the run's shards with the distributed trainer (torchrun), then print its own retrieval
quality on the reference motions of each split (``actiongpt eval evaluator``). The eval stage then scores
every generated motion with it (R-precision, FID, diversity, MM-Dist, physics) beside APE/AVE.

It trains on the single-action shards when the run has them (TEMOS, MotionCLIP), else on the TEACH pairs (each
action an item). Trained on the embedded dataset: its numbers compare methods here, not HumanML3D numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from actiongpt import config as cfglib
from launch.demo.losses import loss_summary
from launch.demo.runner import raise_missing, run_subprocess, torchrun_prefix
from launch.demo.stamps import files_sha256, stamp_matches, write_stamp

NAME = "evaluator"
QUALITY_DIR = ("eval", "evaluator")  # under the run folder: evaluator_quality.md/.json


def shards_for(shards_dir: Any, layouts: list[str]) -> Path:
    """The shard folder the evaluator trains on: ``shards_dir(layout)`` of seg if built, else pairs."""
    return Path(shards_dir("seg" if "seg" in layouts else "pairs"))


def model_file(out: Path) -> Path:
    return Path(out) / "runs" / NAME / "model.safetensors"


def quality_dir(out: Path) -> Path:
    return Path(out).joinpath(*QUALITY_DIR)


def train_config(out: Path, shards: Path, steps: int, extra: list[str] | None = None) -> Any:
    from cluster.train_config import TrainConfig

    overrides = [
        f"run_dir={model_file(out).parent}",
        f"shards_dir={shards}",
        f"max_steps={steps}",
        "batch_size=16",  # in-batch negatives: more than the tiny overlay's 8
        f"ckpt_every={max(1, steps // 2)}",
        f"log_every={max(1, steps // 10)}",
        "val_every=0",
        "progress=false",
        *(extra or []),
    ]
    return cfglib.load(TrainConfig, ["configs/train/evaluator.yaml", "configs/train/tiny.yaml"], overrides)


def inputs(out: Path, shards: Path, steps: int, nproc: int, splits: list[str]) -> dict[str, Any]:
    return {
        "config": cfglib.to_dict(train_config(out, shards, steps)),
        "manifest": files_sha256([shards / "manifest.json"]),
        "nproc": nproc,
        "splits": list(splits),
    }


def done(out: Path, shards: Path, steps: int, nproc: int, splits: list[str]) -> bool:
    ok = model_file(out).is_file() and (quality_dir(out) / "evaluator_quality.md").is_file()
    return ok and stamp_matches(out, NAME, inputs(out, shards, steps, nproc, splits))


def run(
    out: Path, shards: Path, steps: int, nproc: int, splits: list[str], configs_dir: Path, rerun: str
) -> None:
    """Train (from scratch: a few hundred steps) and measure the evaluator; stamp the inputs."""
    import shutil

    stamp = inputs(out, shards, steps, nproc, splits)
    shutil.rmtree(model_file(out).parent, ignore_errors=True)
    cfg = train_config(out, shards, steps)
    path = cfglib.save(cfg, Path(configs_dir) / f"train-{NAME}.yaml")
    print(f"  {NAME}: text-motion evaluator (tiny), {steps} steps on {nproc} ranks, {shards.name} shards")
    run_subprocess(
        [*torchrun_prefix(nproc), "-m", "launch.train", "-c", str(path)], "training the evaluator", rerun
    )
    if not model_file(out).is_file():
        raise_missing(model_file(out), "training the evaluator")
    print(f"  {NAME}: {loss_summary(model_file(out).parent)['text']}")
    cmd = [
        sys.executable, "-m", "launch.cli", "eval", "evaluator", f"evaluator={model_file(out)}",
        f"shards_dir={shards}", "--splits", ",".join(splits), "--out", str(quality_dir(out)),
    ]  # fmt: skip
    run_subprocess(cmd, "measuring the evaluator", rerun)
    write_stamp(out, NAME, stamp)


def show(out: Path) -> None:
    path = quality_dir(out) / "evaluator_quality.md"
    if path.is_file():
        print(path.read_text().rstrip())
        print("  (trained on the embedded dataset: compares methods here; not HumanML3D numbers)")
