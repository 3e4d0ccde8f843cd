"""Helpers for the tests that submit real jobs to a running Slurm cluster (tests/test_slurm_*.py).

Polls ``scontrol`` instead of ``sbatch --wait`` (which polls only every ~10 s), releases requeued jobs
after 1.5 s (Slurm otherwise holds them ~120 s; see release_when_requeued for why not at once) and uses a
new output folder per test (job ids restart when a cluster restarts with a clean state).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("sinfo", "sbatch", "srun", "scontrol", "scancel")
USABLE_NODE_STATES = ("idle", "mixed", "allocated", "completing")
TERMINAL = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
)
# sbatch options for the test cluster (2 CPUs, no GPUs): they override the scripts' GPU defaults.
TWO_TASKS = ["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1", "--time=10"]
ONE_TASK = ["--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1", "--time=10"]


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    partition: str
    cpus: int
    nodes: list[str]


def _run(cmd: Sequence[str], timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, check=check, env=job_env()
    )


def probe() -> tuple[ClusterInfo | None, str]:
    """The cluster to test on, or (None, why not)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return None, f"Slurm client tools not on PATH: {', '.join(missing)}"
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        return None, f"SLURM_CONF={conf} does not exist"
    if not conf and not any(Path(d, "slurm.conf").is_file() for d in ("/etc/slurm", "/etc/slurm-llnl")):
        return None, "no slurm.conf (set SLURM_CONF)"
    try:
        res = _run(["sinfo", "-h", "-o", "%P|%a|%T|%c|%N"], timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"sinfo did not answer: {exc}"
    if res.returncode != 0:
        return None, f"sinfo failed ({res.returncode}): {res.stderr.strip()[:200]} (is SLURM_CONF set?)"
    rows = [line.split("|") for line in res.stdout.split() if line.count("|") == 4]
    if not rows:
        return None, "sinfo lists no partition"
    usable = [r for r in rows if r[1] == "up" and r[2].rstrip("*~#") in USABLE_NODE_STATES]
    if not usable:
        states = ", ".join(f"{r[0]}: {r[1]}/{r[2]}" for r in rows)
        return None, f"no partition is up with a usable node (idle/mixed/allocated), sinfo says {states}"
    default = [r for r in usable if r[0].endswith("*")] or usable
    part, _, _, cpus, nodes = default[0]
    if int(cpus.rstrip("+")) < 2:
        return None, f"partition {part} has nodes with {cpus} CPU(s); the tests need 2"
    hosts = _run(["scontrol", "show", "hostnames", nodes]).stdout.split()
    return ClusterInfo(part.rstrip("*"), int(cpus.rstrip("+")), hosts), ""


def submitit_ready() -> str | None:
    """Why submitit cannot track jobs here, or None. Without accounting it needs the sacct stand-in."""
    if shutil.which("sacct") is None:
        return "sacct is not on PATH (put scripts/slurm/shims first on PATH)"
    res = _run(["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", "1"])
    if res.returncode != 0 or not res.stdout.startswith("JobID|State"):
        return f"sacct does not answer submitit's query ({res.returncode}: {res.stderr.strip()[:200]})"
    return None


def job_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for sbatch and the jobs: this one minus any enclosing job's variables, CPU-only."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "SLURM_JOB",
                "SLURM_STEP",
                "SLURM_PROCID",
                "SLURM_ARRAY",
                "SLURM_NTASKS",
                "SLURM_LOCALID",
                "SLURM_NODEID",
                "SUBMITIT_",
                "TORCHELASTIC_",
            )
        )
    }
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        DS_ACCELERATOR="cpu",
        PYTHONPATH=str(REPO),
    )
    env.update(extra or {})
    return env


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def sbatch(
    script: str, args: Sequence[str] = (), options: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> str:
    """Submit ``script`` (relative to the repository, from its root); the job id."""
    res = subprocess.run(
        ["sbatch", "--parsable", *options, str(REPO / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=job_env(env),
    )
    if res.returncode != 0:
        raise AssertionError(f"sbatch {script} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout.strip().split(";")[0]


def jobs(job_id: str) -> list[dict[str, str]]:
    """``scontrol show job -o`` as one dict per job (an array job gives one per task)."""
    res = _run(["scontrol", "show", "job", "-o", job_id])
    out = []
    for line in res.stdout.splitlines():
        kv = {}
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k] = v
        if kv:
            out.append(kv)
    return out


def job(job_id: str) -> dict[str, str]:
    found = jobs(job_id)
    if not found:
        raise AssertionError(f"scontrol knows no job {job_id}")
    return found[0]


def wait_for(
    pred: Callable[[], bool], timeout: float, what: str, on_timeout: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")


def wait_terminal(job_id: str, timeout: float, log: Path | None = None) -> list[dict[str, str]]:
    """Wait until the job (every task of an array) has ended; its final records."""

    def done() -> bool:
        found = jobs(job_id)
        return bool(found) and all(j.get("JobState") in TERMINAL for j in found)

    wait_for(done, timeout, f"job {job_id} to end", lambda: describe(job_id, log))
    return jobs(job_id)


def wait_completed(job_id: str, timeout: float, log: Path | None = None) -> list[dict[str, str]]:
    """Wait for the job to end and assert it (every array task) COMPLETED with exit code 0."""
    final = wait_terminal(job_id, timeout, log)
    bad = [j for j in final if j.get("JobState") != "COMPLETED" or j.get("ExitCode") != "0:0"]
    if bad:
        raise AssertionError(
            f"job {job_id} did not complete: "
            f"{[(j.get('JobId'), j.get('JobState'), j.get('ExitCode')) for j in bad]}\n"
            f"{describe(job_id, log)}"
        )
    return final


def release_when_requeued(job_id: str, restarts: int, timeout: float, log: Path | None = None) -> None:
    """Wait for the requeued job (PENDING with ``restarts`` restarts), then let it start 1.5 s later: Slurm
    otherwise holds a requeued job for its credential lifetime (120 s by default)."""

    def requeued() -> bool:
        j = job(job_id)
        return j.get("JobState") == "PENDING" and int(j.get("Restarts", "0")) >= restarts

    wait_for(requeued, timeout, f"job {job_id} to be requeued", lambda: describe(job_id, log))
    # The requeue revoked the first run's credential at a time (whole seconds, slurmctld's clock) no later
    # than the moment we saw PENDING. slurmd refuses a launch whose new credential is from that same second
    # (ctime <= revoked: "Job credential revoked"; the job ends FAILED, exit 1, without running again).
    # Slurm's own hold (the credential lifetime) exists to avoid that; releasing more than a second after
    # PENDING was seen does too. StartTime=now+N would not: a job that becomes eligible later waits for the
    # next periodic scheduler pass (up to a minute).
    time.sleep(1.5)
    _run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)


def signal_job(job_id: str, sig: str) -> None:
    """``scancel --signal`` (to every task of the job's steps, as Slurm's --signal does before the limit)."""
    _run(["scancel", f"--signal={sig}", job_id], check=True)


def describe(job_id: str, log: Path | None = None, lines: int = 60) -> str:
    info = "\n".join(
        " ".join(f"{k}={j.get(k)}" for k in ("JobId", "JobState", "Reason", "ExitCode", "Restarts"))
        for j in jobs(job_id)
    )
    text = f"scontrol: {info or '(unknown job)'}"
    if log is not None and log.is_file():
        text += f"\n--- {log} (tail) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return text


# ------------------------------------------------------------------------------ multi-node (namespaces)

CLUSTER_SCRIPT = REPO / "scripts/slurm/multinode_cluster.sh"
# sbatch options: one task per node on two nodes (override the scripts' GPU defaults).
TWO_NODES = ["--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1", "--time=10"]


@dataclasses.dataclass(frozen=True)
class NetnsCluster:
    """A cluster started by scripts/slurm/multinode_cluster.sh: its state folder and layout."""

    root: Path
    nodes: int
    net: str
    name: str

    @property
    def host_address(self) -> str:
        """The bridge's address in the root namespace: what the nodes reach this machine at."""
        return f"{self.net}.1"

    def address(self, node: int) -> str:
        return f"{self.net}.{node + 1}"

    def namespace(self, node: int) -> str:
        return f"{self.name}-n{node}"

    def run(self, *args: str, timeout: float = 60) -> str:
        """Run the cluster script (e.g. ``power-cut 2``); its output."""
        res = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**job_env(), "SLURM_ROOT": str(self.root)},
        )
        if res.returncode != 0:
            raise AssertionError(f"{CLUSTER_SCRIPT.name} {' '.join(args)} failed: {res.stdout}{res.stderr}")
        return res.stdout

    def pids(self, node: int, pattern: str) -> list[int]:
        """PIDs of the Python processes in the node's namespace whose command line contains ``pattern``
        (not srun or the task's shell, whose command lines name the program too)."""
        res = subprocess.run(["ip", "netns", "pids", self.namespace(node)], capture_output=True, text=True)
        out = []
        for pid in res.stdout.split():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if pattern in cmd and comm.startswith("python"):
                out.append(int(pid))
        return out


def netns_cluster() -> tuple[NetnsCluster | None, str]:
    """The namespace cluster behind SLURM_CONF (its state is next to the config), or (None, why not)."""
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        return None, "SLURM_CONF is not set"
    state = Path(conf).resolve().parents[1] / "run" / "cluster.env"
    if not state.is_file():
        return None, f"{conf} is not a cluster started by scripts/slurm/multinode_cluster.sh (no {state})"
    kv = dict(line.split("=", 1) for line in state.read_text().split() if "=" in line)
    return NetnsCluster(state.parents[1], int(kv["NODES"]), kv["NET"], kv["NAME"]), ""


def server_host() -> str:
    """Where a test's local server must listen for jobs to reach it: the bridge of a namespace cluster
    (its nodes cannot reach this machine's loopback), else loopback."""
    found, _ = netns_cluster()
    return found.host_address if found is not None else "127.0.0.1"


def node_states() -> dict[str, str]:
    res = _run(["sinfo", "-h", "-N", "-o", "%N %T"])
    return dict(line.split() for line in res.stdout.splitlines() if len(line.split()) == 2)
