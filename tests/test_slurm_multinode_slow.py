"""The heavier multi-host variants (``-m slow``; not in the default run, which has the main path):
2 hosts x 2 ranks, DeepSpeed ZeRO-2 across hosts, the time-limit signal, a node losing only its link, and
submitit with two nodes. Same cluster and conventions as tests/test_slurm_multinode.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.dist_helpers import launch as L
from tests.dist_helpers import slurm as S
from tests.test_slurm_multinode import TRAIN_ARGS, assert_same_run, rank_lines, survivors_exit_time, train

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

FOUR_ON_ONE = [
    "--nodes=1",
    "--ntasks-per-node=4",
    "--overcommit",
    "--gpus-per-node=0",
    "--cpus-per-task=1",
    "--time=10",
]  # fmt: skip  (4 ranks on a 2-CPU host)
TWO_BY_TWO = ["--nodes=2", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1", "--time=10"]


TRAIN_OVERRIDES = TRAIN_ARGS[2:]  # without "-c configs/train/tiny.yaml"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm-multinode-slow")


def _pair(work: Path, shards, tag: str, a: list[str], b: list[str], extra: tuple[str, ...] = ()):
    """Two uninterrupted runs with layouts ``a`` and ``b`` at the same global batch; both run dirs."""
    jobs = [train(work, shards, S.unique_name(f"{tag}-{i}"), opts, extra) for i, opts in enumerate((a, b))]
    for jid, _, log in jobs:
        S.wait_completed(jid, 420, log)
    return jobs


def test_two_hosts_by_two_ranks_is_bit_identical_to_four_ranks_on_one_host(
    multinode_cluster, work: Path, embedded_shards
) -> None:
    jid, run22, log22 = train(work, embedded_shards, S.unique_name("mn-2x2"), TWO_BY_TWO)
    # 4 ranks on one host: torchrun here (a 2-CPU Slurm node takes at most 2 tasks of one CPU).
    run4 = work / S.unique_name("mn-4x1")
    args = [
        "-c",
        "configs/train/teach.yaml",
        *TRAIN_ARGS,
        f"shards_dir={embedded_shards['pairs']}",
        f"run_dir={run4}",
    ]
    L.run(L.torchrun_cmd(4, args, module="launch.train"), timeout=600)
    S.wait_completed(jid, 420, log22)
    lines = rank_lines(log22.read_text())
    assert sorted(lines) == [0, 1, 2, 3]
    assert {r: ln.split(" on ")[1].split()[0] for r, ln in lines.items()} == {
        0: "n1",
        1: "n1",
        2: "n2",
        3: "n2",
    }
    assert all(r["world_size"] == 4 for r in L.train_records(run22).values())
    assert_same_run(run22, run4)


def test_deepspeed_zero2_across_hosts_is_bit_identical_to_one_host(
    multinode_cluster, work: Path, embedded_shards
) -> None:
    ds = ("-c", "configs/train/deepspeed.yaml")
    (_, run2, log2), (_, run1, _) = _pair(work, embedded_shards, "mn-ds", S.TWO_NODES, S.TWO_TASKS, ds)
    assert "engine deepspeed" in log2.read_text().lower() or (run2 / "checkpoints").is_dir()
    assert_same_run(run2, run1)


def test_time_limit_signal_saves_requeues_and_resumes(multinode_cluster, work: Path, embedded_shards) -> None:
    """``--time=1 --signal=USR1@58``: Slurm signals when 58 s are left (it checks about every 30 s)."""
    extra = ("max_steps=240",)
    name = S.unique_name("mn-timelimit")
    opts = ["--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1", "--time=1",
            "--signal=USR1@58"]  # fmt: skip
    jid, run, log = train(work, embedded_shards, name, opts, extra)
    ref_jid, ref_run, ref_log = train(
        work, embedded_shards, S.unique_name("mn-timelimit-ref"), S.TWO_NODES, extra
    )

    def requeued() -> bool:
        j = S.job(jid)
        return j.get("JobState") == "PENDING" and int(j.get("Restarts", "0")) >= 1

    S.wait_for(requeued, 240, "the time-limit signal and requeue", lambda: S.describe(jid, log))
    # The second run gets room to finish (the first one used the whole signal path).
    S._run(["scontrol", "update", f"JobId={jid}", "TimeLimit=10"], check=True)
    S.release_when_requeued(jid, restarts=1, timeout=60, log=log)
    S.wait_completed(jid, 420, log)
    S.wait_completed(ref_jid, 420, ref_log)
    preempted = L.events(run, "preempted")
    assert preempted and preempted[0]["signal"] == "SIGUSR1" and preempted[0]["step"] < 240
    assert L.events(run, "resume")[0]["step"] == preempted[0]["step"]
    assert_same_run(run, ref_run)


def test_link_down_of_a_node_requeues_and_resumes(multinode_cluster, work: Path, embedded_shards) -> None:
    from cluster.checkpoint import scan

    cl = multinode_cluster
    extra = ("max_steps=120",)
    # The reference first: a job running beside the failed one would lose n2's link too.
    ref_jid, ref_run, ref_log = train(work, embedded_shards, S.unique_name("mn-link-ref"), S.TWO_NODES, extra)
    S.wait_completed(ref_jid, 420, ref_log)
    name = S.unique_name("mn-linkdown")
    jid, run, log = train(work, embedded_shards, name, S.TWO_NODES, extra)
    try:
        S.wait_for(lambda: L.last_step(run) >= 14, 240, "step 14", lambda: S.describe(jid, log))
        t0 = time.monotonic()
        cl.run("link-down", "2")  # n2 keeps running but hears nothing: no connection is closed
        exited = survivors_exit_time(cl, 1, t0, 90)
        exited_n2 = survivors_exit_time(cl, 2, t0, 90)
        assert max(exited, exited_n2) < 60, (exited, exited_n2)
        complete = [c.step for c in scan(run / "checkpoints")[0]]
        S.wait_for(
            lambda: int(S.job(jid).get("Restarts", "0")) >= 1,
            150,
            "the requeue",
            lambda: S.describe(jid, log),
        )
    finally:
        cl.run("link-up", "2")
    S.wait_for(lambda: S.node_states().get("n2") == "idle", 90, "n2 back", lambda: str(S.node_states()))
    # No manual release: the returning node first kills what is left there of the job's previous run (same
    # job id); Slurm's own hold (cred_expire + 1 s, then the backfill pass) lets that happen first.
    S.wait_completed(jid, 420, log)
    assert L.events(run, "resume")[0]["step"] == complete[-1]
    assert_same_run(run, ref_run)
    print(f"link down of n2: ranks on n1 exited after {exited:.1f}s, on n2 after {exited_n2:.1f}s")


def test_submitit_two_nodes_survives_preemption_and_returns_the_run_dir(
    multinode_cluster, work: Path, embedded_shards, monkeypatch
) -> None:
    from launch.submit import ExecutorOptions, submit_train

    if (why := S.submitit_ready()) is not None:
        pytest.fail(why)
    env = S.job_env()
    for k in list(os.environ):
        if k not in env:
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    name = S.unique_name("mn-submitit")
    opts = ExecutorOptions(
        cluster="slurm",
        nodes=2,
        tasks_per_node=1,
        cpus_per_task=1,
        timeout_min=10,
        partition=multinode_cluster_partition(),
        folder_root=str(work / "submitit"),
        name=name,
    )
    overrides = [
        *TRAIN_OVERRIDES,
        f"shards_dir={embedded_shards['pairs']}",
        f"run_dir={work / name}",
    ]
    configs = [str(L.REPO / "configs/train/teach.yaml"), str(L.REPO / "configs/train/tiny.yaml")]
    handle = submit_train(configs, overrides, opts)
    run = Path(handle.run_dir)
    S.wait_for(lambda: L.last_step(run) >= 8, 240, "step 8", lambda: S.describe(handle.job_id, handle.log))
    handle.job._interrupt()  # submitit's own preemption: SIGTERM + USR2 to every task
    S.release_when_requeued(handle.job_id, restarts=1, timeout=120, log=handle.log.with_suffix(".err"))
    results = handle.results()
    assert len(results) == 2 and all(r.status == "finished" and r.step == 60 for r in results)
    main = results[0]
    assert main.export is not None and main.export.parent == run == Path(handle.run_dir)
    assert main.resumed_from == L.events(run, "preempted")[0]["step"]
    log = handle.log.read_text() + handle.log.with_suffix(".err").read_text()
    assert f"on n1 ({multinode_cluster.address(1)}) via submitit" in log  # task 0's log
    assert S.job(handle.job_id)["NodeList"] == "n[1-2]"
    assert str(run) in handle.describe()


def multinode_cluster_partition() -> str:
    info, why = S.probe()
    assert info is not None, why
    return info.partition
