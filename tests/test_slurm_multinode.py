"""slurm/ on a real multi-host Slurm cluster (scripts/slurm/multinode_cluster.sh: every node a network
namespace with its own address, host name and slurmd): training with one rank per host bit-identical to
the same ranks on one host, preemption across hosts, a node's power cut, evaluation on two hosts, and the
description array spread over both hosts.

Skipped with the reason when no such cluster is running (a failure under CI=true; .ci/run starts one).
Each test uses a fresh folder and job name: job ids restart whenever the cluster restarts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from tests.dist_helpers import launch as L
from tests.dist_helpers import slurm as S

pytestmark = pytest.mark.slurm

# Tiny TEACH on the embedded pair shards: 60 steps (~10 s of training here), a checkpoint every 6 steps.
TRAIN_ARGS = [
    "-c",
    "configs/train/tiny.yaml",
    "max_steps=60",
    "batch_size=4",
    "ckpt_every=6",
    "val_every=0",
    "log_every=6",
    "progress=false",
    "tensorboard=false",
    "dist_timeout_s=120",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm-multinode")


def train(work: Path, shards: dict[str, Path], name: str, opts: list[str], extra: tuple[str, ...] = ()):
    """Submit slurm/train_teach.sh; (job id, run directory, log)."""
    jid = S.sbatch(
        "slurm/train_teach.sh",
        [*TRAIN_ARGS, f"shards_dir={shards['pairs']}", *extra],
        [f"--job-name={name}", f"--output={work}/%x.out", *opts],
        env={"RUNS_ROOT": str(work)},
    )
    return jid, work / name, work / f"{name}.out"


def export_of(run: Path) -> Path:
    """The run's exported model: ``model.safetensors`` (read without pickle) or the older ``model.pt``."""
    found = [p for p in (run / "model.safetensors", run / "model.pt") if p.is_file()]
    assert found, f"no export in {run}"
    return found[0]


def model(run: Path) -> dict[str, torch.Tensor]:
    path = export_of(run)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def assert_same_run(run: Path, ref: Path) -> None:
    """Bit-identical: the loss of every step and every final parameter."""
    got_l, ref_l = L.losses(run), L.losses(ref)
    assert sorted(got_l) == sorted(ref_l) and got_l == ref_l
    a, b = model(run), model(ref)
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


@pytest.fixture(scope="module")
def one_node_run(multinode_cluster, work: Path, embedded_shards) -> Path:
    """2 ranks on one host: the reference for everything on two hosts."""
    jid, run, log = train(work, embedded_shards, S.unique_name("mn-1x2"), S.TWO_TASKS)
    S.wait_completed(jid, 300, log)
    return run


@pytest.fixture(scope="module")
def two_node_run(multinode_cluster, work: Path, embedded_shards) -> tuple[str, Path, Path]:
    """1 rank on each of two hosts, uninterrupted."""
    jid, run, log = train(work, embedded_shards, S.unique_name("mn-2x1"), S.TWO_NODES)
    S.wait_completed(jid, 300, log)
    return jid, run, log


def rank_lines(text: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"rank (\d+)/\d+ \(local \d+\) on .*", text)}


def test_one_rank_per_host_is_bit_identical_to_two_ranks_on_one_host(
    multinode_cluster, two_node_run, one_node_run
) -> None:
    jid, run, log = two_node_run
    text = log.read_text()
    assert "nodes 2 [n[1-2]] tasks 2" in text and f"master n1:{15000 + int(jid) % 10000}" in text
    # One rank per host, each naming its host, its own address and the launcher that started it.
    lines = rank_lines(text)
    assert sorted(lines) == [0, 1], text[-3000:]
    for rank, node in ((0, 1), (1, 2)):
        assert f"on n{node} ({multinode_cluster.address(node)}) via srun" in lines[rank], lines[rank]
    assert all(r["world_size"] == 2 for r in L.train_records(run).values())
    assert_same_run(run, one_node_run)


def test_preemption_across_hosts_saves_requeues_and_resumes_bit_identically(
    multinode_cluster, two_node_run, work: Path, embedded_shards
) -> None:
    name = S.unique_name("mn-preempt")
    jid, run, log = train(work, embedded_shards, name, S.TWO_NODES)
    S.wait_for(lambda: L.last_step(run) >= 8, 180, "training to reach step 8", lambda: S.describe(jid, log))
    S.signal_job(jid, "USR1")  # reaches the task on each host, as Slurm's --signal=USR1@N would
    S.release_when_requeued(jid, restarts=1, timeout=120, log=log)
    S.wait_completed(jid, 300, log)
    preempted, resumed = L.events(run, "preempted"), L.events(run, "resume")
    assert len(preempted) == 1 and preempted[0]["signal"] == "SIGUSR1" and preempted[0]["step"] < 60
    assert len(resumed) == 1 and resumed[0]["step"] == preempted[0]["step"] and resumed[0]["mode"] == "exact"
    text = log.read_text()
    assert f"job {jid} ({name}) restart 1 nodes 2" in text
    assert_same_run(run, two_node_run[1])


def survivors_exit_time(cluster: S.NetnsCluster, node: int, since: float, timeout: float) -> float:
    """Seconds from ``since`` until no training process is left on ``node``."""
    S.wait_for(lambda: not cluster.pids(node, "launch.train"), timeout, f"the ranks on n{node} to exit")
    return time.monotonic() - since


def test_power_cut_of_a_node_requeues_and_resumes_from_the_newest_complete_checkpoint(
    multinode_cluster, two_node_run, work: Path, embedded_shards
) -> None:
    from cluster.checkpoint import scan

    cl = multinode_cluster
    name = S.unique_name("mn-powercut")
    jid, run, log = train(work, embedded_shards, name, S.TWO_NODES)
    try:
        S.wait_for(lambda: L.last_step(run) >= 14, 180, "step 14", lambda: S.describe(jid, log))
        assert cl.pids(1, "launch.train") and cl.pids(2, "launch.train")
        t0 = time.monotonic()
        cl.run("power-cut", "2")  # every process of n2 at once: slurmd, slurmstepd, rank 1
        exited = survivors_exit_time(cl, 1, t0, 60)
        # Rank 0 on n1 noticed its lost peer long before the process-group timeout (120 s).
        assert exited < 30, f"survivor took {exited:.1f}s"
        complete_before = [c.step for c in scan(run / "checkpoints")[0]]
        assert complete_before and complete_before[-1] >= 12
        # Slurm declares n2 down (SlurmdTimeout) and requeues the job; it waits for two nodes.
        S.wait_for(
            lambda: int(S.job(jid).get("Restarts", "0")) >= 1,
            150,
            "the requeue",
            lambda: S.describe(jid, log),
        )
    finally:
        cl.run("power-on", "2")
    S.wait_for(lambda: S.node_states().get("n2") == "idle", 60, "n2 back", lambda: str(S.node_states()))
    # No manual release: the returning node first kills what is left there of the job's previous run (same
    # job id); Slurm's own hold (cred_expire + 1 s, then the backfill pass) lets that happen first.
    S.wait_completed(jid, 300, log)

    resumed = L.events(run, "resume")
    assert len(resumed) == 1 and resumed[0]["step"] == complete_before[-1], (resumed, complete_before)
    err = log.read_text()
    assert (
        f"aborting: lost a peer, rank 1 (n2 {cl.address(2)})" in err
        or "lost a peer: no heartbeat from rank 1" in err
    )
    # Nothing lost: the resumed run ends exactly where the uninterrupted one does.
    assert_same_run(run, two_node_run[1])
    print(f"power cut of n2: survivor on n1 exited after {exited:.1f}s")


def test_eval_on_two_hosts_gives_the_one_host_metrics(
    multinode_cluster, two_node_run, work: Path, embedded_shards
) -> None:
    _, run, _ = two_node_run
    args = [f"checkpoint={export_of(run)}", f"shards_dir={embedded_shards['pairs']}", "split=val",
            "renders=0", "slerp_window=null", "progress=false", "dist_timeout_s=120"]  # fmt: skip
    out = {}
    for nodes, opts in ((2, S.TWO_NODES), (1, S.ONE_TASK)):
        name = S.unique_name(f"mn-eval{nodes}")
        jid = S.sbatch("slurm/eval.sh", args, [f"--job-name={name}", f"--output={work}/%x.out", *opts],
                       env={"RUNS_ROOT": str(work)})  # fmt: skip
        S.wait_completed(jid, 300, work / f"{name}.out")
        assert f"nodes {nodes} " in (work / f"{name}.out").read_text()
        out[nodes] = json.loads((work / name / "metrics.json").read_text())
    two, one = out[2], out[1]
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["num_sequences"] == one["num_sequences"] > 0 and two["metrics"].keys() == one["metrics"].keys()
    for k, v in one["metrics"].items():  # float64 summation order is the only difference allowed
        assert two["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_describe_array_across_hosts_merges_to_the_single_process_cache(
    multinode_cluster, work: Path
) -> None:
    from actiongpt.text.cache import load_descriptions
    from tests.mock_openai_server import MockOpenAIServer

    labels = ["dance", "spin around", "salute", "jog", "hop on one foot", "climb", "punch", "crawl"]
    (work / "labels.txt").write_text("\n".join(labels) + "\n")
    name = S.unique_name("mn-describe")
    # The nodes reach this machine only through the cluster's bridge, not its loopback.
    with MockOpenAIServer(latency=0.01, host=multinode_cluster.host_address) as srv:
        assert srv.base_url.startswith(f"http://{multinode_cluster.host_address}:")
        args = [f"labels=[{work / 'labels.txt'}]", "k=2", f"openai.base_url={srv.base_url}",
                "openai.model=mock-model", "run.concurrency=2"]  # fmt: skip
        # Two CPUs per task = a whole node each: the two parts run on different hosts.
        opts = [f"--job-name={name}", "--array=0-1", f"--output={work}/%x-%a.out", "--cpus-per-task=2",
                "--time=10"]  # fmt: skip
        jid = S.sbatch("slurm/describe.sh", args, opts, env={"RUNS_ROOT": str(work), "OPENAI_API_KEY": ""})
        S.wait_for(lambda: all(j.get("BatchHost", "(null)") != "(null)" for j in S.jobs(jid)) and
                   len(S.jobs(jid)) == 2, 120, "both parts to start")  # fmt: skip
        hosts = {j["BatchHost"] for j in S.jobs(jid)}
        S.wait_completed(jid, 240, work / f"{name}-0.out")
        first = (work / f"{name}-0.out").read_text()
        merge_id = first.split(f"submitted {name}-merge as job ")[1].split()[0]
        S.wait_completed(merge_id, 120, work / f"{name}-merge-{merge_id}.out")
        # The same descriptions from one process on this machine.
        single = work / f"{name}-single"
        res = subprocess.run(
            [sys.executable, "-m", "launch.cli", "describe", "run", "--no-progress", "-c",
             str(L.REPO / "configs/describe/openai.yaml"), *args, f"out_dir={single}"],
            cwd=L.REPO, env=S.job_env({"OPENAI_API_KEY": ""}), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
    assert hosts == {"n1", "n2"}, hosts
    merged = load_descriptions([work / name / "descriptions.jsonl"])
    assert sorted(merged) == sorted(labels)
    assert merged == load_descriptions([single])


def test_start_is_idempotent_and_stop_leaves_nothing(multinode_cluster) -> None:
    """A second, independent cluster (other names, subnet and port) beside the one under test."""
    root = Path(tempfile.mkdtemp(prefix="agmt-", dir="/tmp"))  # munged (user munge) must reach it
    env = {**S.job_env(), "SLURM_ROOT": str(root), "NODES": "2", "NET": "10.78.0", "NAME": "agmt",
           "CTLD_PORT": "6837"}  # fmt: skip
    script = ["bash", str(S.CLUSTER_SCRIPT)]

    def run(cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*script, cmd], env=env, capture_output=True, text=True, timeout=120)

    def pid_files() -> dict[str, int]:
        files = [*root.glob("run/*.pid"), root / "munge/munged.pid"]
        return {f.name: int(f.read_text().strip()) for f in files if f.is_file()}

    def processes_using(path: Path) -> list[str]:
        """Every process on the machine whose command line names ``path`` (nothing may be left)."""
        out = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and str(path) in (proc / "cmdline").read_bytes().decode(
                    errors="replace"
                ):
                    out.append(proc.name)
            except OSError:
                continue
        return out

    started = run("start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pids = pid_files()
        assert set(pids) == {"munged.pid", "slurmctld.pid", "slurmd-n1.pid", "slurmd-n2.pid"}
        again = run("start")
        assert again.returncode == 0 and "already running" in again.stdout and pid_files() == pids
        conf_env = {**env, "SLURM_CONF": str(root / "conf/slurm.conf")}
        hosts = subprocess.run(["srun", "-N2", "-n2", "hostname"], env=conf_env, capture_output=True,
                               text=True, timeout=60)  # fmt: skip
        assert sorted(hosts.stdout.split()) == ["n1", "n2"], hosts.stderr
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert all(not Path(f"/proc/{p}").exists() for p in pids.values())
    assert processes_using(root) == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "agmt-" not in netns and "agmt-" not in links
    assert run("stop").returncode == 0  # stopping again is harmless
    # The cluster under test was not touched.
    assert S.node_states().keys() >= {"n1", "n2"}
    shutil.rmtree(root, ignore_errors=True)


def test_a_run_moved_from_two_hosts_to_one_trains_the_same_global_batches(
    multinode_cluster, work: Path, embedded_shards
) -> None:
    """Elastic resume across hosts: preempted on 2 hosts x 1 rank, resumed as 1 rank on one host (gradient
    accumulation 2 keeps the global batch of 8): every step trains on the same samples as the uninterrupted
    2-host run (batch digests), and the losses agree to float tolerance (lr 1e-5: Adam turns summation-order
    rounding into parameter updates, so a larger rate only loosens the loss comparison)."""
    steps = ["max_steps=24", "lr=1e-5", "global_batch_size=8"]
    ref_jid, ref, ref_log = train(
        work, embedded_shards, S.unique_name("mn-elastic-ref"), S.TWO_NODES, (*steps,)
    )
    S.wait_completed(ref_jid, 300, ref_log)

    name = S.unique_name("mn-elastic")
    jid, run, log = train(work, embedded_shards, name, S.TWO_NODES, (*steps, "requeue=false"))
    S.wait_for(lambda: L.last_step(run) >= 6, 180, "training to reach step 6", lambda: S.describe(jid, log))
    S.signal_job(jid, "USR1")  # saves on both hosts; no requeue: the run comes back on one host below
    S.wait_completed(jid, 180, log)
    stopped = L.events(run, "preempted")
    assert len(stopped) == 1 and stopped[0]["step"] < 24, log.read_text()[-3000:]

    jid1, _, log1 = train(work, embedded_shards, name, S.ONE_TASK, (*steps,))
    S.wait_completed(jid1, 300, log1)
    resumed = L.events(run, "resume")
    assert len(resumed) == 1 and resumed[0]["step"] == stopped[0]["step"] and resumed[0]["world_size"] == 1
    got, want = L.train_records(run), L.train_records(ref)
    assert sorted(got) == sorted(want) == list(range(1, 25))
    assert {s: r["world_size"] for s, r in got.items() if s > stopped[0]["step"]} == dict.fromkeys(
        range(stopped[0]["step"] + 1, 25), 1
    )
    assert [got[s]["batch_digest"] for s in got] == [want[s]["batch_digest"] for s in got]
    assert all(got[s]["global_batch"] == 8 for s in got)
    for s in got:
        assert abs(got[s]["loss"] - want[s]["loss"]) <= 1e-5 * abs(want[s]["loss"]), (s, got[s], want[s])
