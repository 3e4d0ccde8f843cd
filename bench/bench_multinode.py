"""Multi-host Slurm timings on the namespace cluster of scripts/slurm/multinode_cluster.sh (tiny TEACH).

- ``requeue``: ``scancel --signal=USR1`` on a 2-host training job -> both ranks save -> rank 0 requeues ->
  Slurm starts the job again by itself (no manual release: the cluster's cred_expire=10 and bf_interval=5
  decide) -> the requeued job's first training step. Reported: seconds to the save, to the requeue, to
  RUNNING again and to the first step.
- ``node``: every process of host n2 killed at once (power cut) -> the rank on n1 has exited -> Slurm
  declared n2 down and requeued the job -> (n2 switched back on at once) -> RUNNING again -> first step.
- ``peer``: torchrun, 2 ranks of the test suite's toy trainer on this host, one killed with SIGKILL while the
  other sleeps between steps (no collective to fail): seconds until the survivor has exited, the launcher's
  SIGTERM having been recognised as a teardown, not a preemption (``--repeats`` times; no cluster needed).
- ``step``: median step time of 2 hosts x 1 rank vs 1 host x 2 ranks at the same global batch, the two
  layouts alternated ``--repeats`` times (the ratio per pair, then the median): the cost of crossing hosts.
  All hosts share this machine's cores, so it measures the software path (veth + bridge), not a network.

Needs root and a running cluster (SLURM_CONF pointing at it):

    SLURM_ROOT=/tmp/agpt-mn bash scripts/slurm/multinode_cluster.sh start
    export SLURM_CONF=/tmp/agpt-mn/conf/slurm.conf PATH=$PWD/scripts/slurm/shims:$PATH
    python bench/bench_multinode.py

Data: ``--shards DIR`` (TEACH pair shards), else the test suite's embedded shards (built once, cached in
.pytest_cache). Job submission and polling reuse tests/dist_helpers/slurm.py. Writes
bench/results/multinode.json and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dist_helpers import slurm as S  # noqa: E402

TRAIN = ["-c", "configs/train/tiny.yaml", "batch_size=4", "val_every=0", "log_every=10", "progress=false",
         "tensorboard=false", "dist_timeout_s=120"]  # fmt: skip


def records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written
    return out


def steps(run: Path) -> list[dict]:
    return [r for r in records(run) if r.get("kind") == "train" and "step_time_s" in r]


def last_step(run: Path) -> int:
    return max((r["step"] for r in steps(run)), default=0)


def submit(work: Path, shards: Path, name: str, opts: list[str], extra: list[str]) -> tuple[str, Path]:
    opts = [f"--job-name={name}", f"--output={work}/%x.out", *opts]
    jid = S.sbatch(
        "slurm/train_teach.sh", [*TRAIN, f"shards_dir={shards}", *extra], opts, {"RUNS_ROOT": str(work)}
    )
    return jid, work / name


def cancel(jid: str) -> None:
    """End the job for good: a plain scancel sends SIGTERM, which the trainer takes for a preemption (it
    saves and requeues); without requeueing allowed it is cancelled."""
    S._run(["scontrol", "update", f"JobId={jid}", "Requeue=0"])
    S._run(["scancel", jid])


def state(jid: str) -> tuple[str, int]:
    j = S.job(jid)
    return j.get("JobState", "?"), int(j.get("Restarts", "0"))


def wait(pred, timeout: float, what: str, poll: float = 0.1) -> float:
    """Wall-clock time (time.time) when ``pred`` first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.time()
        time.sleep(poll)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def first_step_after(run: Path, step: int, since: float = 0.0) -> float | None:
    """When step ``step`` + 1 was logged at or after ``since`` (a resumed run logs it a second time)."""
    for r in steps(run):
        if r["step"] == step + 1 and r["time"] >= since:
            return r["time"]
    return None


def bench_requeue(work: Path, shards: Path) -> dict:
    jid, run = submit(
        work, shards, S.unique_name("bench-requeue"), S.TWO_NODES, ["max_steps=400", "ckpt_every=1000"]
    )
    wait(lambda: last_step(run) >= 8, 300, "step 8")
    t0 = time.time()
    S.signal_job(jid, "USR1")
    t_req = wait(lambda: state(jid) == ("PENDING", 1), 120, "the requeue")
    t_run = wait(lambda: state(jid) == ("RUNNING", 1), 300, "the requeued job to start")
    preempted = lambda: [r for r in records(run) if r.get("event") == "preempted"]  # noqa: E731
    wait(lambda: bool(preempted()) and first_step_after(run, preempted()[0]["step"]) is not None, 300, "step")
    saved = preempted()[0]
    t_step = first_step_after(run, saved["step"])
    assert t_step is not None
    cancel(jid)
    return {
        "signal_to_saved_s": round(saved["time"] - t0, 2),
        "signal_to_requeued_s": round(t_req - t0, 2),
        "signal_to_running_s": round(t_run - t0, 2),
        "signal_to_first_step_s": round(t_step - t0, 2),
    }


def bench_node(work: Path, shards: Path, cluster: S.NetnsCluster) -> dict:
    jid, run = submit(
        work, shards, S.unique_name("bench-node"), S.TWO_NODES, ["max_steps=400", "ckpt_every=6"]
    )
    wait(lambda: last_step(run) >= 8, 300, "step 8")
    t0 = time.time()
    try:
        cluster.run("power-cut", "2")
        t_exit = wait(lambda: not cluster.pids(1, "launch.train"), 120, "the ranks on n1 to exit")
        t_req = wait(lambda: state(jid)[1] >= 1, 180, "the requeue", poll=0.3)
    finally:
        cluster.run("power-on", "2")
    t_run = wait(lambda: state(jid) == ("RUNNING", 1), 300, "the requeued job to start", poll=0.3)
    resumed = lambda: [r for r in records(run) if r.get("event") == "resume"]  # noqa: E731
    wait(
        lambda: bool(resumed()) and first_step_after(run, resumed()[0]["step"], t_run) is not None,
        300,
        "first step",
    )
    t_step = first_step_after(run, resumed()[0]["step"], t_run)
    assert t_step is not None
    cancel(jid)
    return {
        "death_to_survivors_exited_s": round(t_exit - t0, 2),
        "death_to_requeued_s": round(t_req - t0, 2),
        "death_to_running_s": round(t_run - t0, 2),
        "death_to_first_step_s": round(t_step - t0, 2),
    }


def bench_peer(repeats: int) -> dict:
    import psutil

    from tests.dist_helpers import launch as L

    took = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            cmd = L.torchrun_cmd(
                2, ["--run-dir", str(run), "--step-delay", "30", "max_steps=400", "dist_timeout_s=300"]
            )
            proc = L.start(cmd, log=Path(tmp) / "log")
            try:
                wait(lambda: L.last_step(run) >= 1 and len(L.workers(proc)) >= 2, 180, "step 1")  # noqa: B023
                ranks = {int(w.environ()["RANK"]): w for w in L.workers(proc)}
                t0 = time.monotonic()
                ranks[1].kill()
                _, alive = psutil.wait_procs([ranks[0]], timeout=60)
                if alive:
                    raise SystemExit("the survivor did not exit within 60 s")
                took.append(time.monotonic() - t0)
                proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    L.kill_all(proc)
    return {
        "peer_death_to_last_exit_s": [round(t, 2) for t in took],
        "median_s": round(statistics.median(took), 2),
    }


def bench_step(work: Path, shards: Path, repeats: int, n_steps: int) -> dict:
    layouts = {"2 hosts x 1 rank": S.TWO_NODES, "1 host x 2 ranks": S.TWO_TASKS}
    times: dict[str, list[float]] = {k: [] for k in layouts}
    for _ in range(repeats):
        for label, opts in layouts.items():
            jid, run = submit(
                work, shards, S.unique_name("bench-step"), opts, [f"max_steps={n_steps}", "ckpt_every=100000"]
            )
            S.wait_completed(jid, 600)
            st = [r["step_time_s"] for r in steps(run) if r["step"] > 5]  # after warm-up
            times[label].append(statistics.median(st))
    ratios = [a / b for a, b in zip(times["2 hosts x 1 rank"], times["1 host x 2 ranks"], strict=True)]
    return {
        "median_step_s": {k: round(statistics.median(v), 4) for k, v in times.items()},
        "per_repeat_step_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "ratio_two_hosts_to_one": round(statistics.median(ratios), 3),
        "per_repeat_ratio": [round(r, 3) for r in ratios],
        "global_batch": 8,
        "steps": n_steps,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--shards", type=Path, default=None, help="TEACH pair shards (default: the tests' embedded)"
    )
    p.add_argument(
        "--parts", default="requeue,node,step,peer", help="comma-separated: requeue,node,step,peer"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/multinode.json")
    args = p.parse_args()
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    info, why = S.probe()
    cluster, why2 = S.netns_cluster()
    if (info is None or cluster is None) and set(parts) - {"peer"}:
        print(f"bench_multinode: needs the namespace cluster: {why or why2}", file=sys.stderr)
        return 2
    shards = args.shards
    if shards is None and set(parts) - {"peer"}:
        from tests.dist_helpers import embedded_shards

        shards = embedded_shards.build(ROOT / ".pytest_cache/d/embedded-shards")["pairs"]
    work = Path(tempfile.mkdtemp(prefix="bench-multinode-"))
    out: dict = {
        "nodes": cluster.nodes if cluster else None,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    if "requeue" in parts:
        out["requeue"] = bench_requeue(work, shards)
    if "node" in parts:
        assert cluster is not None
        out["node_failure"] = bench_node(work, shards, cluster)
    if "step" in parts:
        out["step_time"] = bench_step(work, shards, args.repeats, args.steps)
    if "peer" in parts:
        out["peer_death"] = bench_peer(args.repeats)
    out["load_after"] = os.getloadavg()
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    summary = []
    if "requeue" in out:
        summary.append(f"requeue: signal -> first step {out['requeue']['signal_to_first_step_s']}s")
    if "node_failure" in out:
        n = out["node_failure"]
        summary.append(f"node death -> survivors exited {n['death_to_survivors_exited_s']}s, "
                       f"-> running again {n['death_to_running_s']}s")  # fmt: skip
    if "step_time" in out:
        summary.append(f"step time 2 hosts / 1 host = {out['step_time']['ratio_two_hosts_to_one']}")
    if "peer_death" in out:
        summary.append(f"torchrun peer death -> survivor exited {out['peer_death']['median_s']}s")
    print("; ".join(summary) + f" (written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
