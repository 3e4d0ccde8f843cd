"""Damaged shards: ``shards verify`` checks manifest and folder both ways, training names a bad shard before
step 1 (exit 2), and a shard error during training ends every rank with one line naming shard and sample
(exit 2, no traceback, no checkpoint written)."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from launch.train import main as train_main
from shards.format import ShardError
from shards.manifest import Manifest
from shards.verify import check_shard_files
from tests.dist_helpers import launch as L
from tests.dist_helpers.shards_data import build, make_source, make_store, run_cli

TRAIN = ["-c", "configs/train/temos.yaml", "-c", "configs/train/tiny.yaml", "max_steps=30", "batch_size=4",
         "val_every=0", "progress=false", "tensorboard=false", "dist_timeout_s=60"]  # fmt: skip


@pytest.fixture(scope="module")
def seg_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    build(
        root / "seg", make_store(root / "emb"), {"train": make_source(48, pairs=False)}, target_shard_mb=0.05
    )
    return root / "seg"


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _nan_in_sample(shard: Path, nth: int) -> str:
    """A NaN in the motion of the shard's ``nth`` sample, file size kept (the cheap check passes)."""
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    out = io.BytesIO()
    key = ""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for m, data in members:
            if m.name.endswith(".motion.npy") and not key and nth == 0:
                arr = np.lib.format.read_array(io.BytesIO(data))
                arr[1, 3] = np.nan
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr)
                data, key = buf.getvalue(), m.name.split(".")[0]
            elif m.name.endswith(".motion.npy"):
                nth -= 1
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    assert len(out.getvalue()) == shard.stat().st_size
    shard.write_bytes(out.getvalue())
    return key


def test_verify_finds_a_removed_manifest_entry_and_its_tar(seg_shards: Path, tmp_path: Path, capsys) -> None:
    sh = _copy(seg_shards, tmp_path / "sh")
    data = json.loads((sh / "manifest.json").read_text())
    removed = data["splits"]["train"]["shards"].pop(2)
    (sh / "manifest.json").write_text(json.dumps(data))
    assert run_cli(["shards", "verify", str(sh), "--no-progress", "--no-checksum"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED") and f"{removed['name']}: in the folder but not in the manifest" in out
    with pytest.raises(ShardError, match=r"starts at sample 9, expected 6"):
        check_shard_files(Manifest.load(sh), ["train"])
    # an entry without its tar
    (sh / removed["name"]).unlink()
    (sh / data["splits"]["train"]["shards"][0]["name"]).unlink()
    assert run_cli(["shards", "verify", str(sh), "--no-progress", "--no-checksum"]) == 1
    assert f"shard {data['splits']['train']['shards'][0]['name']}: file missing" in capsys.readouterr().out


def test_training_names_a_truncated_shard_before_step_1(seg_shards: Path, tmp_path: Path, capsys) -> None:
    sh = _copy(seg_shards, tmp_path / "sh")
    bad = Manifest.load(sh).shards("train")[5].name
    (sh / bad).write_bytes((sh / bad).read_bytes()[:-1024])
    before = _snapshot(sh)
    assert train_main([*TRAIN, f"shards_dir={sh}", f"run_dir={tmp_path / 'run'}", "num_workers=0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"shard {bad}: " in err and "truncated" in err
    assert "actiongpt shards verify" in err
    assert _snapshot(sh) == before
    assert not (tmp_path / "run" / "checkpoints").exists() or not any(
        (tmp_path / "run" / "checkpoints").iterdir()
    )


def test_nan_sample_during_training_ends_every_rank_with_one_line_exit_2(
    seg_shards: Path, tmp_path: Path
) -> None:
    sh = _copy(seg_shards, tmp_path / "sh")
    bad = Manifest.load(sh).shards("train")[3].name
    key = _nan_in_sample(sh / bad, 1)
    check_shard_files(Manifest.load(sh), ["train"])  # same sizes: only reading the sample finds it
    before = _snapshot(sh)
    port = L.free_port()
    procs, logs = [], []
    for rank in range(2):  # srun-like plain processes: each rank's own exit status is seen, no launcher
        env = L.base_env()
        env.update(
            SLURM_PROCID=str(rank),
            SLURM_NTASKS="2",
            SLURM_STEP_NUM_TASKS="2",
            SLURM_LOCALID=str(rank),
            SLURM_NNODES="1",
            SLURM_JOB_ID="4243",
            SLURM_JOB_NODELIST="localhost",
            MASTER_PORT=str(port),
        )
        logs.append(tmp_path / f"rank{rank}.log")
        run = f"run_dir={tmp_path / 'run'}"
        cmd = [sys.executable, "-m", "launch.train", *TRAIN, f"shards_dir={sh}", run, "num_workers=1"]
        procs.append(L.start(cmd, env=env, log=logs[-1]))
    t0 = time.monotonic()
    try:
        codes = [p.wait(timeout=150) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                L.kill_all(p)
    texts = [lg.read_text() for lg in logs]
    assert codes == [2, 2], (codes, texts)
    line = f"shard {bad}, sample {key}"
    for text in texts:
        errors = [ln for ln in text.splitlines() if "error:" in ln]
        assert len(errors) == 1 and line in errors[0] and "NaN" in errors[0], text
        assert "Traceback" not in text, text
    assert time.monotonic() - t0 < 120
    assert _snapshot(sh) == before
