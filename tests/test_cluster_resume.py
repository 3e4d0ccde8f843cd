"""Exact resume with real gloo process groups (torchrun, 2 ranks on CPU).

Reference: an uninterrupted run. Interrupted: the same command, a real SIGUSR1 sent to every worker in the
middle of an epoch; the ranks agree on a step, save together and exit 0; the same command is run again.
The loss of every step and the final parameters must be bit-identical to the reference. Also: kill -9
during a checkpoint write resumes from the previous complete checkpoint, still bit-identically.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from cluster.checkpoint import scan
from tests.dist_helpers import launch as L

pytestmark = pytest.mark.dist

STEPS_PER_EPOCH = 8  # 64 samples / (2 ranks x batch 4)
TOTAL = 16  # 2 epochs


def _args(run_dir: Path, *extra: str) -> list[str]:
    return ["--run-dir", str(run_dir), "--dump-end", *extra]


def _assert_same_run(ref: Path, other: Path) -> None:
    ref_losses, got = L.losses(ref), L.losses(other)
    assert sorted(ref_losses) == list(range(1, TOTAL + 1))
    assert sorted(got) == sorted(ref_losses), "steps missing or extra after resume"
    diffs = {s: (ref_losses[s], got[s]) for s in ref_losses if ref_losses[s] != got[s]}
    assert not diffs, f"losses differ (step: ref, resumed): {diffs}"
    a = torch.load(ref / "state-end.pt", weights_only=True)
    b = torch.load(other / "state-end.pt", weights_only=True)
    assert a["step"] == b["step"] == TOTAL
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), f"parameter {name} differs"
    for pname, st in a.get("optim_state", {}).items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optim_state"][pname][k])), (pname, k)


def fake_scontrol(tmp: Path) -> tuple[dict[str, str], Path]:
    """An environment that looks like a Slurm job, with an ``scontrol`` that records its arguments."""
    bindir, record = tmp / "bin", tmp / "scontrol.calls"
    bindir.mkdir()
    script = bindir / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    script.chmod(0o755)
    env = L.base_env()
    env.update(SLURM_JOB_ID="777", PATH=f"{bindir}:{env['PATH']}")
    return env, record


def _preempt_and_resume(tmp: Path, ref: Path, engine_args: list[str]) -> None:
    cut = tmp / "cut"
    cmd = L.torchrun_cmd(2, _args(cut, "--step-delay", "0.3", *engine_args))
    env, calls = fake_scontrol(tmp)
    proc = L.start(cmd, env=env, log=tmp / "cut-1.log")
    try:
        L.wait_for(lambda: L.last_step(cut) >= 3, 180, proc, "step 3")
        L.signal_workers(proc, signal.SIGUSR1, expect=2)
        assert proc.wait(timeout=120) == 0, (tmp / "cut-1.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            L.kill_all(proc)
    first = L.result(cut)
    assert first["status"] == "preempted"
    k = first["step"]
    assert 3 <= k < TOTAL and k % STEPS_PER_EPOCH != 0, f"preempted at step {k}: not mid-epoch"
    assert [c.step for c in scan(cut / "checkpoints")[0]] == [k]
    # rank 0 (only) checks that the job was not cancelled, then requeues it
    assert calls.read_text().splitlines() == ["show job -o 777", "requeue 777"], "rank 0 (only) requeues"
    L.run(cmd)  # the same command again (as the requeued job would)
    second = L.result(cut)
    assert second["status"] == "finished" and second["resumed_from"] == k
    _assert_same_run(ref, cut)


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory) -> Path:
    ref = tmp_path_factory.mktemp("ddp") / "ref"
    L.run(L.torchrun_cmd(2, _args(ref)))
    assert L.result(ref)["status"] == "finished"
    return ref


def test_ddp_preempted_run_resumes_bit_identically(tmp_path: Path, ddp_reference: Path) -> None:
    _preempt_and_resume(tmp_path, ddp_reference, [])


def test_ddp_kill9_during_checkpoint_write_resumes_from_previous(tmp_path: Path, ddp_reference: Path) -> None:
    run = tmp_path / "run"
    proc = L.start(
        L.torchrun_cmd(2, _args(run, "--stall-ckpt-step", "8", "ckpt_every=4")), log=tmp_path / "a.log"
    )
    try:
        L.wait_for(lambda: (run / "STALLED").exists(), 180, proc, "the stalled save of step 8")
        complete, incomplete = scan(run / "checkpoints")
        assert [c.step for c in complete] == [4]
        assert [p.name for p in incomplete] == ["step-00000008"]
        assert any((run / "checkpoints" / "step-00000008").iterdir()), "the save had written data"
    finally:
        L.kill_all(proc)
    L.run(L.torchrun_cmd(2, _args(run, "ckpt_every=4")))
    res = L.result(run)
    assert res["status"] == "finished" and res["resumed_from"] == 4
    resume = L.events(run, "resume")
    assert len(resume) == 1 and resume[0]["path"].endswith("step-00000004")
    _assert_same_run(ddp_reference, run)
    # keep_last=3 (default): steps 8, 12, 16 remain, all complete
    assert [c.step for c in scan(run / "checkpoints")[0]] == [8, 12, 16]


DS2 = ["engine=deepspeed", "zero_stage=2"]


def test_deepspeed_zero2_preempted_run_resumes_bit_identically(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    L.run(L.torchrun_cmd(2, _args(ref, *DS2)))
    assert L.result(ref)["status"] == "finished"
    _preempt_and_resume(tmp_path, ref, DS2)
    # DeepSpeed's native layout inside our step directory: optimizer state sharded per rank
    last = scan(tmp_path / "cut" / "checkpoints")[0][-1].path / "ds"
    assert sorted(p.name for p in last.iterdir()) == [
        "mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 1, 3])
def test_deepspeed_other_zero_stages_resume_bit_identically(tmp_path: Path, stage: int) -> None:
    args = ["engine=deepspeed", f"zero_stage={stage}"]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    L.run(L.torchrun_cmd(2, _args(ref, *args)))
    L.run(L.torchrun_cmd(2, _args(cut, *args, "run_steps=6")))
    assert L.result(cut)["status"] == "stopped"
    L.run(L.torchrun_cmd(2, _args(cut, *args, "run_steps=6")))  # 6 -> 12 (stopped)
    L.run(L.torchrun_cmd(2, _args(cut, *args, "run_steps=6")))  # 12 -> 16 (finished)
    res = L.result(cut)
    assert res["status"] == "finished" and res["resumed_from"] == 12
    _assert_same_run(ref, cut)
