"""``python -m launch.train`` / ``actiongpt train``: configs, user errors, a one-process run, export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from actiongpt import config as cfglib
from cluster.checkpoint import latest
from cluster.export import EXPORT_FORMAT, load_export, model_state_from_checkpoint, read_export_meta
from cluster.metrics_log import read_metrics
from cluster.train_config import TrainConfig
from cluster.trainer import train
from tests.dist_helpers import launch as L
from tests.dist_helpers.toy import ToyLoader, ToyModel


def _launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.train", *args], cwd=L.REPO, env=L.base_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize("model", ["temos", "teach", "motionclip"])
def test_shipped_configs_resolve(model: str) -> None:
    res = _launch("-c", f"configs/train/{model}.yaml", "-c", "configs/train/tiny.yaml", "--print-config")
    assert res.returncode == 0, res.stderr
    assert f"model: {model}" in res.stdout and "preset: tiny" in res.stdout
    ds = cfglib.load(
        TrainConfig, [L.REPO / f"configs/train/{model}.yaml", L.REPO / "configs/train/deepspeed.yaml"]
    )
    assert (ds.engine, ds.zero_stage) == ("deepspeed", 2)
    paper = cfglib.load(TrainConfig, [L.REPO / f"configs/train/{model}.yaml"]).resolved()
    assert paper.lr == (1e-4 if model == "motionclip" else 7e-5)


def test_user_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    bad = _launch("-c", "configs/train/teach.yaml", "bogus_key=1")
    assert bad.returncode == 2 and "bogus_key" in bad.stderr and "Traceback" not in bad.stderr
    missing = _launch("-c", "configs/train/teach.yaml", f"shards_dir={tmp_path / 'none'}")
    assert missing.returncode == 2 and "manifest.json not found" in missing.stderr
    nothing = _launch(
        "-c", "configs/train/teach.yaml", f"run_dir={tmp_path}", "--export", str(tmp_path / "m.safetensors")
    )
    assert nothing.returncode == 2 and "no complete checkpoint" in nothing.stderr


def test_one_process_run_in_process_then_export_from_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = TrainConfig(
        run_dir=str(run), model="toy", lr=0.01, batch_size=4, epochs=2, ckpt_every=5, log_every=4,
        val_every=4, progress=False, dist_timeout_s=30,
    )  # fmt: skip

    def loaders(env):
        return ToyLoader(32, 4, env.rank, env.world_size), ToyLoader(8, 4, env.rank, env.world_size, seed=5)

    result = train(cfg, ToyModel, loaders)
    assert result.status == "finished" and result.step == 16 and result.epoch == 1
    assert result.export == run / "model.safetensors"
    assert (run / "config.yaml").is_file() and any((run / "tb").iterdir())
    recs = read_metrics(run / "metrics.jsonl")
    assert sorted(recs) == list(range(1, 17))
    for key in ("loss", "recons", "kl", "lr", "grad_norm", "samples_per_s", "samples_per_s_per_device",
                "data_wait_s", "data_wait_pct", "step_time_s", "peak_mem_mb"):  # fmt: skip
        assert recs[16][key] is not None, key
    assert sorted(read_metrics(run / "metrics.jsonl", "val")) == [4, 8, 12, 16]

    out = tmp_path / "exported.safetensors"
    res = _launch(f"run_dir={run}", "model=toy", "lr=0.01", "batch_size=4", "epochs=1", "--export", str(out))
    assert res.returncode == 0, res.stderr
    state, meta = load_export(out)
    assert meta["step"] == 16 and meta["engine"] == "ddp" and meta["model"] == "toy"
    ref = model_state_from_checkpoint(latest(run / "checkpoints"))
    assert state.keys() == ref.keys() and all(torch.equal(state[k], ref[k]) for k in ref)
    assert read_export_meta(out)["format"] == EXPORT_FORMAT
    model = ToyModel()
    model.load_state_dict(state)
