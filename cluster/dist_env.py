"""Where this process sits in the job: rank variables from torchrun, srun or submitit.

The only place in the project (besides the launchers) that reads environment variables: the standard rank
variables are how every launcher talks to its processes. Precedence:

1. torchrun (and anything else that sets ``RANK``/``WORLD_SIZE``, e.g. submitit's
   ``TorchDistributedEnvironment().export()``);
2. submitit's local executor (``SUBMITIT_EXECUTOR=local``, ``SUBMITIT_LOCAL_*``);
3. srun (``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``; master = first host of the node list,
   port derived from the job id, the same in every task without any communication);
4. a single process.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping

# The port range submitit's TorchDistributedEnvironment draws from; using the same rule keeps a job that
# mixes our set-up with submitit's helper on one port.
_SUBMITIT_PORT_RANGE = (20000, 60000)


class DistEnvError(RuntimeError):
    """The rank variables are missing or inconsistent; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Rank layout of the job and the rendezvous address."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    source: str  # which variables gave the layout: "torchrun" (RANK/...) | "submitit" | "slurm" | "single"
    job_id: str | None = None
    # Who started this process: "srun" | "torchrun" | "submitit" | "env" (RANK/... set by someone else) |
    # "single". Differs from ``source`` when e.g. srun tasks get RANK/WORLD_SIZE from slurm/lib/common.sh.
    launcher: str = "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def as_env(self) -> dict[str, str]:
        """The variables ``init_process_group("env://")`` and ``deepspeed.init_distributed`` read
        (``RANK_ENV_VARS``)."""
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_world_size),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }


# What ``export`` writes: a process launched from one that has them would join the wrong world.
RANK_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# --------------------------------------------------------------------------------------------- node lists


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets: ``a[1,2],b`` -> [``a[1,2]``, ``b``]."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise DistEnvError(f"node list {text!r}: unbalanced ']'")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise DistEnvError(f"node list {text!r}: unbalanced '['")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _expand_range_list(spec: str, whole: str) -> list[str]:
    """``01-03,07`` -> [``01``, ``02``, ``03``, ``07``] keeping the zero padding of the start."""
    out: list[str] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise DistEnvError(f"node list {whole!r}: empty range in [{spec}]")
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise DistEnvError(f"node list {whole!r}: bad range {item!r}")
        lo_s, hi_s = m.group(1), m.group(2)
        if hi_s is None:
            out.append(lo_s)
            continue
        lo, hi = int(lo_s), int(hi_s)
        if hi < lo:
            raise DistEnvError(f"node list {whole!r}: range {item!r} runs backwards")
        width = len(lo_s)
        out.extend(str(v).zfill(width) for v in range(lo, hi + 1))
    return out


def parse_nodelist(nodelist: str) -> list[str]:
    """Expand a Slurm host list (``node[01-03,07],gpu5``) into host names, in order.

    Handles several bracket groups in one name (``r[1-2]n[1-2]`` -> r1n1, r1n2, r2n1, r2n2), suffixes after a
    bracket and zero padding, like ``scontrol show hostnames``.
    """
    if not nodelist or not nodelist.strip():
        raise DistEnvError("empty Slurm node list")
    hosts: list[str] = []
    for part in _split_top_level(nodelist.strip()):
        names = [""]
        for literal, bracket in re.findall(r"([^\[\]]*)(?:\[([^\]]*)\])?", part):
            if not literal and not bracket:
                continue
            names = [n + literal for n in names]
            if bracket:
                names = [n + v for n in names for v in _expand_range_list(bracket, nodelist)]
        hosts.extend(names)
    return hosts


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: from ``scontrol show hostnames`` if present, else our parser."""
    scontrol = shutil.which("scontrol")
    if scontrol:
        try:
            res = subprocess.run(
                [scontrol, "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30
            )
            lines = res.stdout.split()
            if res.returncode == 0 and lines:
                return lines[0]
        except (OSError, subprocess.SubprocessError):
            pass  # fall back to the parser below, which handles every form Slurm prints
    return parse_nodelist(nodelist)[0]


def port_from_job_id(job_id: str) -> int:
    """A rendezvous port every task of a job derives alone (Lightning's rule: 15000 + last 4 digits)."""
    digits = re.sub(r"\D", "", job_id)
    if not digits:
        raise DistEnvError(f"Slurm job id {job_id!r} has no digits to derive MASTER_PORT from")
    return 15000 + int(digits[-4:])


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (single-process runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ detection


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name)
    if raw is None:
        raise DistEnvError(f"environment variable {name} is not set")
    try:
        return int(raw)
    except ValueError as exc:
        raise DistEnvError(f"environment variable {name}={raw!r} is not an integer") from exc


def _check(rank: int, world: int, local_rank: int, local_world: int, source: str) -> None:
    if world < 1:
        raise DistEnvError(f"{source}: world size {world} < 1")
    if not 0 <= rank < world:
        raise DistEnvError(f"{source}: rank {rank} outside [0, {world})")
    if not 0 <= local_rank < max(local_world, 1):
        raise DistEnvError(f"{source}: local rank {local_rank} outside [0, {local_world})")


def _from_torchrun(env: Mapping[str, str]) -> DistEnv:
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    local_rank = int(env.get("LOCAL_RANK", "0"))
    local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    if world > 1 and ("MASTER_ADDR" not in env or "MASTER_PORT" not in env):
        raise DistEnvError("RANK/WORLD_SIZE are set but MASTER_ADDR or MASTER_PORT is not")
    _check(rank, world, local_rank, local_world, "torchrun")
    addr = env.get("MASTER_ADDR", "127.0.0.1")
    port = int(env["MASTER_PORT"]) if "MASTER_PORT" in env else free_port()
    job = env.get("SLURM_JOB_ID") or env.get("TORCHELASTIC_RUN_ID")
    return DistEnv(rank, world, local_rank, local_world, addr, port, "torchrun", job)


def _from_submitit_local(env: Mapping[str, str]) -> DistEnv:
    rank = _int(env, "SUBMITIT_LOCAL_GLOBALID")
    world = _int(env, "SUBMITIT_LOCAL_NTASKS")
    local_rank = int(env.get("SUBMITIT_LOCAL_LOCALID", str(rank)))
    job = env.get("SUBMITIT_LOCAL_JOB_ID", "0")
    _check(rank, world, local_rank, world, "submitit")
    port = (
        int(env["MASTER_PORT"]) if "MASTER_PORT" in env else random.Random(job).randint(*_SUBMITIT_PORT_RANGE)
    )
    return DistEnv(rank, world, local_rank, world, env.get("MASTER_ADDR", "127.0.0.1"), port, "submitit", job)


def _from_slurm(env: Mapping[str, str]) -> DistEnv:
    rank = _int(env, "SLURM_PROCID")
    # srun sets SLURM_STEP_NUM_TASKS for the step it launched; SLURM_NTASKS is the allocation's.
    world = int(env.get("SLURM_STEP_NUM_TASKS") or _int(env, "SLURM_NTASKS"))
    local_rank = int(env.get("SLURM_LOCALID", "0"))
    nodes = int(
        env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or 1
    )
    local_world = max(world // max(nodes, 1), 1)
    _check(rank, world, local_rank, local_world, "srun")
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if "MASTER_ADDR" in env:
        addr = env["MASTER_ADDR"]
    else:
        nodelist = (
            env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        )
        if not nodelist:
            raise DistEnvError("srun: SLURM_JOB_NODELIST is not set and MASTER_ADDR is not given")
        addr = first_host(nodelist)
    if "MASTER_PORT" in env:
        port = int(env["MASTER_PORT"])
    elif job:
        port = port_from_job_id(job)
    else:
        raise DistEnvError("srun: SLURM_JOB_ID is not set and MASTER_PORT is not given")
    source = "submitit" if env.get("SUBMITIT_EXECUTOR") == "slurm" else "slurm"
    return DistEnv(rank, world, local_rank, local_world, addr, port, source, job)


def _in_srun_step(env: Mapping[str, str]) -> bool:
    # SLURM_PROCID/SLURM_NTASKS also appear in a plain sbatch batch script, where only one task runs; a
    # task of srun's step also has the step's description.
    return "SLURM_PROCID" in env and ("SLURM_STEP_NUM_TASKS" in env or "SLURM_STEP_ID" in env)


def launcher_of(env: Mapping[str, str]) -> str:
    """Which launcher started this process (for the log; the layout comes from :func:`detect`)."""
    if "TORCHELASTIC_RUN_ID" in env or "TORCHELASTIC_RESTART_COUNT" in env:
        return "torchrun"  # also under srun (one torchrun per node)
    if env.get("SUBMITIT_EXECUTOR"):
        return "submitit"
    if _in_srun_step(env):
        return "srun"
    return "env" if "RANK" in env else "single"


def detect(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Rank layout of this process from the launcher's variables (see the module docstring)."""
    env = os.environ if environ is None else environ
    launcher = launcher_of(env)
    if "RANK" in env and "WORLD_SIZE" in env:
        found = _from_torchrun(env)
    elif env.get("SUBMITIT_EXECUTOR") == "local" and "SUBMITIT_LOCAL_GLOBALID" in env:
        found = _from_submitit_local(env)
    # A multi-task world needs srun's step; without it we run as one process rather than wait forever for
    # tasks that never start.
    elif _in_srun_step(env):
        found = _from_slurm(env)
    else:
        port = int(env["MASTER_PORT"]) if "MASTER_PORT" in env else free_port()
        addr = env.get("MASTER_ADDR", "127.0.0.1")
        found = DistEnv(0, 1, 0, 1, addr, port, "single", env.get("SLURM_JOB_ID"))
    return dataclasses.replace(found, launcher=launcher)


def local_address(master_addr: str, master_port: int) -> str:
    """The address this host uses to reach the master (the interface the process group talks through)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((master_addr, master_port))  # UDP: picks a route, sends nothing
            return s.getsockname()[0]
    except OSError:
        return "?"


def export(dist_env: DistEnv, environ: dict[str, str] | None = None) -> None:
    """Write the standard variables so that DeepSpeed and ``env://`` agree with ``dist_env``."""
    target = os.environ if environ is None else environ
    target.update(dist_env.as_env())
