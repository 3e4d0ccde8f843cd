"""Rank variables from torchrun / srun / submitit, Slurm node-list parsing, master port derivation."""

from __future__ import annotations

import pytest

from cluster.dist_env import DistEnvError, detect, parse_nodelist, port_from_job_id


@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("node[01-03,07],gpu5", ["node01", "node02", "node03", "node07", "gpu5"]),
        ("gpu5", ["gpu5"]),
        ("a1,b2", ["a1", "b2"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("n[008-010]", ["n008", "n009", "n010"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("node[1-2]-ib,login", ["node1-ib", "node2-ib", "login"]),
        ("x[3]", ["x3"]),
    ],
)
def test_parse_nodelist(nodelist: str, hosts: list[str]) -> None:
    assert parse_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["", "node[01-03", "node01-03]", "n[3-1]", "n[a-b]", "n[1,,2]"])
def test_parse_nodelist_rejects_malformed(bad: str) -> None:
    with pytest.raises(DistEnvError):
        parse_nodelist(bad)


def test_torchrun_variables() -> None:
    env = {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "h1",
        "MASTER_PORT": "29500",
    }
    d = detect(env)
    assert (d.rank, d.world_size, d.local_rank, d.local_world_size) == (3, 4, 1, 2)
    assert (d.master_addr, d.master_port, d.source) == ("h1", 29500, "torchrun")


def test_torchrun_variables_without_master_are_an_error() -> None:
    with pytest.raises(DistEnvError, match="MASTER_ADDR"):
        detect({"RANK": "0", "WORLD_SIZE": "2"})


def test_rank_outside_world_is_an_error() -> None:
    with pytest.raises(DistEnvError, match="rank 5"):
        detect({"RANK": "5", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})


def test_srun_variables_give_master_from_nodelist_and_port_from_job_id(monkeypatch) -> None:
    monkeypatch.setattr("cluster.dist_env.shutil.which", lambda name: None)  # use the pure-python parser
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_STEP_NUM_TASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "123456",
        "SLURM_JOB_NODELIST": "node[07-08]",
    }
    d = detect(env)
    assert (d.rank, d.world_size, d.local_rank, d.local_world_size) == (5, 8, 1, 4)
    assert d.master_addr == "node07"
    assert d.master_port == port_from_job_id("123456") == 15000 + 3456
    assert d.source == "slurm" and d.job_id == "123456"


def test_sbatch_batch_step_without_srun_is_one_process() -> None:
    # In the batch script itself SLURM_NTASKS may be 2 but only one task runs: never wait for a second.
    d = detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "n1"})
    assert d.world_size == 1 and d.source == "single"


def test_submitit_local_executor() -> None:
    env = {
        "SUBMITIT_EXECUTOR": "local",
        "SUBMITIT_LOCAL_GLOBALID": "1",
        "SUBMITIT_LOCAL_NTASKS": "2",
        "SUBMITIT_LOCAL_LOCALID": "1",
        "SUBMITIT_LOCAL_JOB_ID": "99",
    }
    d = detect(env)
    assert (d.rank, d.world_size, d.source) == (1, 2, "submitit")
    assert d.master_addr == "127.0.0.1" and 20000 <= d.master_port <= 60000
    assert detect(env).master_port == d.master_port  # every task derives the same port


def test_submitit_on_slurm_uses_slurm_variables(monkeypatch) -> None:
    monkeypatch.setattr("cluster.dist_env.shutil.which", lambda name: None)
    env = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "2",
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NODELIST": "c[1-2]",
    }
    d = detect(env)
    assert (d.world_size, d.master_addr, d.source) == (2, "c1", "submitit")


def test_single_process_default() -> None:
    d = detect({})
    assert (d.rank, d.world_size, d.source) == (0, 1, "single") and d.master_port > 0


def test_launcher_is_named_apart_from_the_variables_read() -> None:
    """slurm/lib/common.sh exports RANK/WORLD_SIZE to srun tasks: the layout comes from them, the launcher
    is still srun (the rank log line says so); torchrun and submitit are recognised under srun too."""
    from cluster.dist_env import local_address

    srun = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "7",
            "SLURM_JOB_NODELIST": "n[1-2]", "RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "n1",
            "MASTER_PORT": "15007"}  # fmt: skip
    d = detect(srun)
    assert (d.source, d.launcher, d.rank, d.master_addr) == ("torchrun", "srun", 1, "n1")
    assert detect({**srun, "TORCHELASTIC_RUN_ID": "7"}).launcher == "torchrun"
    assert detect({**srun, "SUBMITIT_EXECUTOR": "slurm"}).launcher == "submitit"
    assert detect({"RANK": "0", "WORLD_SIZE": "1"}).launcher == "env"
    assert detect({}).launcher == "single"
    assert local_address("127.0.0.1", 1) == "127.0.0.1"
