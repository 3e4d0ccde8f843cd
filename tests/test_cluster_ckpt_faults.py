"""Damaged checkpoints and resumes into another experiment.

- The marker records every file's size and sha256; resume skips a damaged newest checkpoint (bytes
  overwritten, file truncated) with a warning naming it and continues bit-identically from the one before;
  rotation never lets a damaged checkpoint take a good one's place; when none is usable, exit 2.
- A run directory resumed with another experiment identity (text_source=label on an Action-GPT run, another
  preset) exits 2 naming each differing key with both values, and touches nothing: not config.yaml, not the
  checkpoints, not an incomplete step directory.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from actiongpt.config import ConfigError
from cluster.checkpoint import MARKER, CheckpointManager, read_marker, scan, step_dir
from cluster.checkpoint_digest import damage, share
from cluster.export import model_state_from_checkpoint
from cluster.run_identity import check_same_experiment, differences
from cluster.train_config import TrainConfig
from cluster.trainer import train
from tests.dist_helpers import launch as L
from tests.dist_helpers.toy import ToyLoader, ToyModel


def _save(mgr: CheckpointManager, step: int, size: int = 64) -> Path:
    def write(p: Path) -> None:
        (p / "data.bin").write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        (p / "sub").mkdir()
        (p / "sub" / "more.bin").write_bytes(b"y" * 10)

    return mgr.save(step, write, {"engine": "ddp", "world_size": 1}).path


def _overwrite(path: Path, at: int = 3) -> None:
    """Flip bytes in place (same size: only the digest can tell)."""
    with open(path, "r+b") as f:
        f.seek(at)
        old = f.read(4)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in old))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (to assert nothing was touched)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------------------------- units
def test_marker_records_size_and_digest_of_every_file(tmp_path: Path) -> None:
    path = _save(CheckpointManager(tmp_path, keep_last=3, rank=0), 4, size=300)
    meta = read_marker(path)
    assert sorted(meta["files"]) == ["data.bin", "sub/more.bin"]
    assert meta["files"]["data.bin"]["bytes"] == 300 and len(meta["files"]["data.bin"]["sha256"]) == 64
    assert meta["bytes"] == 310 and meta["digest_seconds"] >= 0
    info = scan(tmp_path)[0][0]
    assert damage(info.path, info.meta) is None
    _overwrite(path / "data.bin")
    assert "data.bin does not match its recorded sha256" in damage(info.path, info.meta)
    _truncate(path / "sub" / "more.bin")
    assert damage(info.path, info.meta) == "sub/more.bin has 5 bytes, the marker recorded 10"
    (path / "sub" / "more.bin").unlink()
    assert damage(info.path, info.meta) == "sub/more.bin is missing"


def test_hashing_is_shared_by_size_over_the_ranks() -> None:
    sizes = {"__0_0.distcp": 90, "__1_0.distcp": 90, ".metadata": 5, "extra": 1}
    parts = [share(sizes, 2, r) for r in range(2)]
    assert parts == [["__0_0.distcp", ".metadata"], ["__1_0.distcp", "extra"]]
    assert share(sizes, 1, 0) == ["__0_0.distcp", "__1_0.distcp", ".metadata", "extra"]


def test_fallback_past_damaged_and_rotation_keeps_the_good_one(tmp_path: Path, caplog) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=1, rank=0)
    _save(mgr, 4)
    keep_both = CheckpointManager(tmp_path, keep_last=2, rank=0)
    eight = _save(keep_both, 8)
    _overwrite(eight / "data.bin")
    # a new process (keep_last=1) resumes: step 8 is damaged, step 4 is the newest usable
    resumed = CheckpointManager(tmp_path, keep_last=1, rank=0)
    with caplog.at_level(logging.WARNING):
        info = resumed.newest_usable(lambda i: None)
    assert info is not None and info.step == 4
    assert f"checkpoint {eight} is damaged" in caplog.text and "sha256" in caplog.text
    # the next save (step 5) rotates out step 4 but keeps itself, not the damaged step 8 in its place
    _save(resumed, 5)
    assert [c.step for c in scan(tmp_path)[0]] == [5, 8]
    assert damage(scan(tmp_path)[0][0].path, scan(tmp_path)[0][0].meta) is None
    # saving step 8 again replaces the damaged directory; rotation is back to keep-last
    _save(resumed, 8)
    assert [c.step for c in scan(tmp_path)[0]] == [8]


def test_no_usable_checkpoint_is_a_config_error_naming_each(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=3, rank=0)
    a, b = _save(mgr, 4), _save(mgr, 8)
    _truncate(a / "data.bin")
    _overwrite(b / "sub" / "more.bin")
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError) as err:
        CheckpointManager(tmp_path, keep_last=3, rank=0).newest_usable(lambda i: None)
    msg = str(err.value)
    assert "no usable checkpoint" in msg and "step-00000008: sub/more.bin" in msg
    assert "step-00000004: data.bin has 32 bytes" in msg
    assert _snapshot(tmp_path) == before


def test_identity_differences_name_each_key_with_both_values() -> None:
    recorded = {
        "model": "teach",
        "text_source": "descriptions",
        "model_overrides": {"latent_dim": 256, "ff": 1},
    }
    current = {"model": "teach", "text_source": "label", "model_overrides": {"latent_dim": 32, "ff": 1}}
    assert differences(recorded, current) == [
        ("model_overrides.latent_dim", 256, 32),
        ("text_source", "descriptions", "label"),
    ]
    # keys a checkpoint did not record (older markers) are not compared
    assert differences({"model": "teach"}, {"model": "teach", "embedder": "clip"}) == []
    with pytest.raises(ConfigError, match=r"text_source: checkpoint 'descriptions', this run 'label'"):
        check_same_experiment("runs/x/checkpoints/step-00000004", recorded, current)


# ------------------------------------------------------------------------- the trainer (one process)
def _toy_cfg(run: Path, **kw) -> TrainConfig:
    base = dict(
        run_dir=str(run), model="toy", lr=0.01, batch_size=4, epochs=2, ckpt_every=4, keep_last=3,
        log_every=8, progress=False, tensorboard=False, export_on_finish=False, dist_timeout_s=30,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _loaders(env):
    return ToyLoader(32, 4, env.rank, env.world_size), None


def _final_state(run: Path) -> dict[str, torch.Tensor]:
    return model_state_from_checkpoint(scan(run / "checkpoints")[0][-1])


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The final model of an uninterrupted 16-step toy run."""
    ref = tmp_path_factory.mktemp("toy") / "ref"
    assert train(_toy_cfg(ref), ToyModel, _loaders).step == 16
    return _final_state(ref)


@pytest.mark.parametrize("harm", ["overwrite", "truncate"])
def test_damaged_newest_checkpoint_resumes_from_the_previous_bit_identically(
    tmp_path: Path, harm: str, caplog, toy_reference: dict[str, torch.Tensor]
) -> None:
    run = tmp_path / "run"
    assert train(_toy_cfg(run, run_steps=8), ToyModel, _loaders).status == "stopped"
    newest = step_dir(run / "checkpoints", 8)
    biggest = max((p for p in newest.iterdir() if p.name != MARKER), key=lambda p: p.stat().st_size)
    (_overwrite if harm == "overwrite" else _truncate)(biggest)
    with caplog.at_level(logging.WARNING):
        result = train(_toy_cfg(run), ToyModel, _loaders)
    assert f"checkpoint {newest} is damaged" in caplog.text and biggest.name in caplog.text
    assert result.status == "finished" and result.resumed_from == 4
    a, b = toy_reference, _final_state(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_only_damaged_checkpoints_stop_the_run_touching_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_toy_cfg(run, run_steps=4), ToyModel, _loaders)
    only = step_dir(run / "checkpoints", 4)
    _truncate(max(only.iterdir(), key=lambda p: p.stat().st_size))
    half = step_dir(run / "checkpoints", 6)  # a save that never finished: kept until a resume is decided
    half.mkdir()
    (half / "part").write_bytes(b"partial")
    before = _snapshot(run)
    with pytest.raises(
        ConfigError, match=r"no usable checkpoint.*step-00000004: .* bytes, the marker recorded"
    ):
        train(_toy_cfg(run, lr=0.02), ToyModel, _loaders)
    assert _snapshot(run) == before


@pytest.mark.dist
def test_two_ranks_with_no_usable_checkpoint_each_exit_2_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_toy_cfg(run, run_steps=4), ToyModel, _loaders)
    only = step_dir(run / "checkpoints", 4)
    _overwrite(max(only.iterdir(), key=lambda p: p.stat().st_size))
    port = L.free_port()
    procs = []
    for rank in range(2):
        env = L.base_env()
        env.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))  # fmt: skip
        cmd = [sys.executable, "-m", L.TOY, "--run-dir", str(run), "--num-samples", "32", "ckpt_every=4",
               "dist_timeout_s=60"]  # fmt: skip
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen(cmd, cwd=L.REPO, env=env, stdout=pipe, stderr=pipe, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    for rank, (p, (_, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 2, (rank, err[-2000:])
        assert "Traceback" not in err, err[-2000:]
        lines = [ln for ln in err.splitlines() if ln.startswith(f"[rank {rank}] error:")]
        assert len(lines) == 1 and "no usable checkpoint" in lines[0] and "step-00000004" in lines[0], err


# ------------------------------------------------------------- another experiment in the same run directory
@pytest.fixture(scope="module")
def seg_shards(tmp_path_factory) -> Path:
    from tests.dist_helpers import shards_data as S

    root = tmp_path_factory.mktemp("shards")
    store = S.make_store(root / "emb")
    S.build(root / "seg", store, {"train": S.make_source(16, "train", pairs=False)})
    return root / "seg"


def _launch(*args: str) -> subprocess.CompletedProcess:
    env = {**L.base_env(), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "launch.train", *args], cwd=L.REPO, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@pytest.mark.dist
def test_resume_as_another_experiment_exits_2_touching_nothing(
    seg_shards: Path, tmp_path: Path, capsys
) -> None:
    from launch.train import main as train_main

    run = tmp_path / "agpt"
    configs = L.REPO / "configs" / "train"
    common = ["-c", str(configs / "temos.yaml"), "-c", str(configs / "tiny.yaml"), f"shards_dir={seg_shards}",
              f"run_dir={run}", "batch_size=4", "val_every=0", "tensorboard=false", "progress=false",
              "export_on_finish=false"]  # fmt: skip
    assert train_main([*common, "run_steps=2"]) == 0  # an Action-GPT run, stopped at step 2
    (step_dir(run / "checkpoints", 3)).mkdir()  # an unfinished save: must survive a refused resume
    before = _snapshot(run)
    config_text = (run / "config.yaml").read_text()

    label = _launch(*common, "text_source=label")  # the command line, in its own process
    assert label.returncode == 2, label.stderr[-3000:]
    assert "Traceback" not in label.stderr
    assert "step-00000002 belongs to another experiment" in label.stderr
    assert "text_source: checkpoint 'descriptions', this run 'label'" in label.stderr

    capsys.readouterr()
    assert train_main([*common, "preset=paper"]) == 2
    err = capsys.readouterr().err
    assert "preset: checkpoint 'tiny', this run 'paper'" in err
    assert "model_overrides.latent_dim: checkpoint 32, this run 256" in err

    assert _snapshot(run) == before and (run / "config.yaml").read_text() == config_text
    assert (step_dir(run / "checkpoints", 3)).is_dir()
