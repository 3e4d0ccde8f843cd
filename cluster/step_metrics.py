"""The per-step metrics record: one all-reduce per step, then the logged fields, the progress bar and the
periodic summary line.

The one collective carries the mean loss terms, the samples, the data wait and the preemption flag, so all
ranks agree on when to stop without a second round trip.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import sys
from typing import Any

import torch
import torch.distributed as dist

from cluster.metrics_log import MetricsLogger, summary_line
from cluster.process_group import ProcessGroupInfo

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LocalStep:
    """What one rank measured during one optimizer step."""

    sums: dict[str, torch.Tensor]  # loss terms summed over the micro-batches
    samples: int
    wait_s: float  # time spent waiting for batches
    lr: float
    grad_norm: float


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process peak RSS)


def reduce_step(
    pg: ProcessGroupInfo, keys: list[str], local: LocalStep, accum: int, preempt: bool, shares: bool = False
) -> tuple[dict[str, float], int, float, bool]:
    """All ranks: (loss terms, global samples, mean data wait, any rank asked to stop). The loss terms are the
    mean over ranks and micro-batches, or with ``shares`` (each micro-batch returned its share of the
    global-batch loss) their sum."""
    world = pg.env.world_size
    per_rank, ranks = (1, 1) if shares else (accum, world)
    vec = torch.tensor(
        [float(local.sums[k]) / per_rank for k in keys]
        + [float(local.samples), local.wait_s, 1.0 if preempt else 0.0],
        dtype=torch.float64,
    )
    if pg.backend == "nccl":
        vec = vec.to(pg.device)
    dist.all_reduce(vec)
    vec = vec.cpu()
    terms = {k: float(vec[i]) / ranks for i, k in enumerate(keys)}
    n = len(keys)
    return terms, int(vec[n]), float(vec[n + 1]) / world, float(vec[n + 2]) > 0


def step_record(
    terms: dict[str, float],
    local: LocalStep,
    global_samples: int,
    mean_wait: float,
    step_time: float,
    *,
    epoch: int,
    samples_seen: int,
    world: int,
    device: torch.device,
) -> dict[str, Any]:
    """The logged record of one step: loss terms, optimisation, throughput, data wait and memory."""
    record: dict[str, Any] = dict(terms)
    record.update(
        epoch=epoch,
        lr=local.lr,
        grad_norm=local.grad_norm,
        samples=global_samples,
        samples_seen=samples_seen,
        samples_per_s=global_samples / step_time,
        samples_per_s_per_device=global_samples / step_time / world,
        step_time_s=step_time,
        data_wait_s=mean_wait,
        data_wait_pct=100.0 * mean_wait / step_time,
        peak_mem_mb=peak_mem_mb(device),
        world_size=world,
    )
    return record


def window_mean(window: list[dict[str, Any]]) -> dict[str, Any]:
    if not window:
        return {}
    out: dict[str, Any] = {}
    for k, v in window[-1].items():
        vals = [r[k] for r in window if isinstance(r.get(k), (int, float))]
        out[k] = sum(vals) / len(vals) if vals and isinstance(v, float) else v
    out["peak_mem_mb"] = window[-1].get("peak_mem_mb")
    return out


class StepLog:
    """Writes each step's record (metrics file, TensorBoard), moves the progress bar (rank 0, optional)
    and prints a summary line averaged over the last ``log_every`` steps."""

    def __init__(
        self,
        metrics: MetricsLogger,
        is_main: bool,
        progress: bool,
        start: int,
        max_steps: int,
        log_every: int,
    ):
        self.metrics = metrics
        self.is_main = is_main
        self.max_steps = max_steps
        self.log_every = log_every
        self.window: list[dict[str, Any]] = []
        self.bar = None
        if is_main and progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=max_steps,
                initial=start,
                desc="train",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=1.0,
            )

    def log(self, step: int, record: dict[str, Any]) -> None:
        self.metrics.log(step, record)
        self.window.append(record)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
        if self.is_main and (step % self.log_every == 0 or step == self.max_steps):
            line = summary_line(step, self.max_steps, window_mean(self.window))
            (self.bar.write if self.bar is not None else print)(line)
            log.debug(line)
            self.window = []

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
