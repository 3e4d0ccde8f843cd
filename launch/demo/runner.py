"""Running the project's own commands from the demo: in-process (``actiongpt ...``) or under torchrun.

Every command is printed before it runs, exactly as a user would type it, so the demo doubles as a tour of
the command line; the resolved config each one reads is in ``<run>/configs/``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from launch.errors import UserError

# Nothing in the demo needs the network; the embedded text encoder ships with its package.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def child_env(cmd: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in OFFLINE_ENV.items():
        env.setdefault(k, v)
    if "--standalone" in cmd:
        # what torchrun would set anyway (one thread per rank), without its warning about doing so
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def torchrun_prefix(nproc: int) -> list[str]:
    """``torchrun --standalone --nproc_per_node=N`` (the one next to this Python, else its module form)."""
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    launcher = [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc_per_node={nproc}"]


def display(cmd: list[str]) -> str:
    head = Path(cmd[0]).name if os.sep in cmd[0] else cmd[0]
    if head.startswith("python"):
        head = "python"
    return shlex.join([head, *cmd[1:]])


def run_subprocess(cmd: list[str], what: str, rerun: str = "actiongpt demo") -> None:
    """Run ``cmd`` with the caller's output streams (progress bars show live); a failure is a UserError
    that tells the user to ``rerun`` the command (finished work is kept)."""
    print(f"  $ {display(cmd)}", flush=True)
    interrupted = []

    def on_sigint(signum: int, frame: object) -> None:
        # Ctrl-C reaches the child too (same process group): let it stop cleanly, then report.
        interrupted.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: keep the default behaviour
        previous = None
    try:
        rc = subprocess.run(cmd, env=child_env(cmd), check=False).returncode
    except OSError as exc:
        raise UserError(f"{what}: could not start {cmd[0]}: {exc}") from exc
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise UserError(
            f"{what} was interrupted (Ctrl-C). Run `{rerun}` again to continue: finished stages are "
            "skipped and training resumes from its last checkpoint"
        )
    if rc != 0:
        raise UserError(
            f"{what} failed (exit status {rc}; its output is above). Fix the cause and run `{rerun}` "
            "again: finished work is kept and training resumes from its last checkpoint"
        )


def run_cli(argv: list[str], what: str) -> None:
    """Run ``actiongpt <argv>`` in this process (no second interpreter start-up for the light stages)."""
    from launch.cli import build_parser, parse_args

    print(f"  $ actiongpt {shlex.join(argv)}", flush=True)
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    args = parse_args(build_parser(), argv)
    rc = int(args.func(args) or 0)
    if rc != 0:
        raise UserError(f"{what} failed (`actiongpt {shlex.join(argv)}` exited with status {rc})")


def raise_missing(path: Path, what: str) -> None:
    from launch.errors import UserError

    raise UserError(f"{what} exited without writing {path}; see its output above")
