"""The training loop: epochs over a stateful loader, a step-based schedule, validation, checkpoints, logging,
preemption, and exact resume.

Exactness: a checkpoint holds everything that decides the next step — model, optimizer, engine extras
(loss scaler), step and epoch, every rank's loader position and RNG state. The learning rate is a function
of the step; validation runs with its own RNG so it never shifts the training random streams. A relaunch
of the same command therefore produces the same losses and parameters as a run that was never stopped.

Entry point: :func:`train` (model and loaders come from factories so that the process group exists and the
seed is set before they are built).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from actiongpt import config as cfglib
from actiongpt.config import ConfigError
from actiongpt.models import step_context
from cluster import global_batch, rng_state
from cluster.checkpoint import CheckpointInfo, CheckpointManager
from cluster.dist_env import DistEnv
from cluster.engines.base import Engine, build_engine
from cluster.loader_protocol import batch_size_of, check_loader
from cluster.metrics_log import MetricsLogger, summary_line
from cluster.preemption import requeue_slurm_job
from cluster.runtime import Runtime
from cluster.schedule import StepSchedule
from cluster.train_config import TrainConfig

log = logging.getLogger(__name__)

TRAIN_STATE_FORMAT = 1
_END = object()


@dataclasses.dataclass
class TrainResult:
    status: str  # "finished" | "preempted" | "stopped" (run_steps reached)
    step: int
    epoch: int
    max_steps: int
    last_checkpoint: Path | None
    export: Path | None = None
    resumed_from: int | None = None


class Callback(Protocol):
    """Optional hooks (all ranks). Any subset of these methods may be defined."""

    def on_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None: ...
    def on_checkpoint(self, trainer: Trainer, info: CheckpointInfo) -> None: ...
    def on_end(self, trainer: Trainer, result: TrainResult) -> None: ...


ModelFactory = Callable[[], torch.nn.Module]
LoaderFactory = Callable[[DistEnv], tuple[Any, Any]]  # -> (train loader, validation loader or None)


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process peak RSS)


class Trainer:
    """One training run inside a :class:`Runtime`. Use :func:`train` unless you need the object."""

    def __init__(
        self,
        cfg: TrainConfig,
        rt: Runtime,
        build_model: ModelFactory,
        build_loaders: LoaderFactory,
        callbacks: Sequence[object] = (),
        checkpoint_manager_cls: type[CheckpointManager] = CheckpointManager,
        extra_meta: dict[str, Any] | None = None,
    ):
        self.cfg = cfg
        self.rt = rt
        assert rt.pg is not None, "Trainer needs an entered Runtime"
        self.pg = rt.pg
        self.rank, self.world = rt.rank, rt.world_size
        self.is_main = self.rank == 0
        self.run_dir = Path(cfg.run_dir)
        self.callbacks = list(callbacks)
        self.extra_meta = dict(extra_meta or {})
        self.ckpt = checkpoint_manager_cls(self.run_dir / "checkpoints", cfg.keep_last, self.rank)
        self.step = 0
        self.epoch = 0
        self.samples_seen = 0
        self.resumed_from: int | None = None
        self.last_saved_step: int | None = None
        self.last_checkpoint: Path | None = None

        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfglib.save(cfg, self.run_dir / "config.yaml")
            self.ckpt.remove_incomplete()
        self._barrier()
        self.resume_info = self.ckpt.latest()
        load_universal = self._prepare_resume()
        info = self.resume_info
        self.geometry = global_batch.resolve(
            cfg, self.world, info.meta if info else None, str(info.path) if info else ""
        )
        self.accum = self.geometry.micro_steps

        rng_state.seed_all(cfg.seed)  # identical initial weights on every rank
        model = build_model()
        # Losses normalised over the global batch and per-sample randomness: the step does not depend on the
        # split of the global batch over ranks and micro-batches (actiongpt.models.step_context).
        self.split_invariant = bool(getattr(model, "global_batch_loss", False))
        if self.split_invariant:
            step_context.make_dropout_keyed(model)
        self.engine: Engine = build_engine(
            model,
            dataclasses.replace(cfg, batch_size=self.geometry.micro_batch),
            self.pg,
            self.accum,
            **({"load_universal": load_universal} if cfg.engine == "deepspeed" else {}),
        )
        self.train_loader, self.val_loader = build_loaders(rt.env)
        check_loader(self.train_loader, "training")
        self._split_global_batches()
        if self.val_loader is not None:
            check_loader(self.val_loader, "validation")
        batches = len(self.train_loader)
        if batches < self.accum:
            raise ConfigError(
                f"the training loader has {batches} batches per rank per epoch, fewer than the {self.accum} "
                f"micro-batches of one optimizer step (batch_size={cfg.batch_size}, world size {self.world})"
            )
        self.steps_per_epoch = batches // self.accum
        assert cfg.epochs is not None and cfg.lr is not None
        self.max_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.schedule = StepSchedule(cfg.schedule, cfg.lr, self.max_steps, cfg.warmup_steps, cfg.min_lr_ratio)
        self.metrics = MetricsLogger(self.run_dir, enabled=self.is_main, tensorboard=cfg.tensorboard)

        if self.geometry.changed_from is not None:
            self.metrics.event(
                0 if info is None else info.step,
                "global_batch_changed",
                old=self.geometry.changed_from,
                new=self.geometry.global_batch,
                world_size=self.world,
            )
        if self.resume_info is not None:
            self._resume(self.resume_info)
        else:
            self.train_loader.set_epoch(0)
            rng_state.seed_all(rng_state.rank_seed(cfg.seed, self.rank))

    # ------------------------------------------------------------------------------------------- helpers
    def _split_global_batches(self) -> None:
        """Tell the loader the step's global batch and micro-steps (or check that it already yields them)."""
        geo = self.geometry
        configure = getattr(self.train_loader, "set_global_batch", None)
        if configure is not None:
            configure(geo.global_batch, geo.micro_steps)
        elif not geo.uniform or geo.micro_batch != self.cfg.batch_size:
            raise ConfigError(
                f"{type(self.train_loader).__name__} yields batches of {self.cfg.batch_size} per rank and "
                f"cannot split a global batch of {geo.global_batch} over {self.world} ranks"
            )
        log.info(
            "global batch %d = %d ranks x %d micro-steps x up to %d samples",
            geo.global_batch,
            self.world,
            geo.micro_steps,
            geo.micro_batch,
        )

    def _forward_backward(
        self, micro: int, batch: Any, stats: global_batch.StepStats
    ) -> dict[str, torch.Tensor]:
        last = micro == self.accum - 1
        if not self.split_invariant:
            return self.engine.forward_backward(batch, last_micro=last)
        # step + 1: the step number the metrics record shows
        with step_context.active(stats.context(self.cfg.seed, self.step + 1, batch)):
            return self.engine.forward_backward(batch, last_micro=last, loss_factor=float(self.world))

    def _barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def _prepare_resume(self) -> bool:
        """Check the checkpoint found against this run; convert a ZeRO checkpoint for a new world size.
        Returns whether DeepSpeed must load the universal form."""
        info = self.resume_info
        if info is None:
            return False
        meta = info.meta
        if meta.get("engine") != self.cfg.engine:
            raise ConfigError(
                f"{info.path} was written by engine {meta.get('engine')!r} but engine={self.cfg.engine!r}; "
                "resume with the same engine (or export the model and start a new run)"
            )
        if self.cfg.engine != "deepspeed":
            return False
        old_stage = int(meta.get("zero_stage") or 0)
        if old_stage != self.cfg.zero_stage:
            raise ConfigError(
                f"{info.path} uses ZeRO stage {old_stage}, the config asks for {self.cfg.zero_stage}"
            )
        old_world = int(meta.get("world_size", self.world))
        if old_world == self.world:
            return False
        if old_stage == 0:
            return False  # no partitioned optimizer state: loads at any world size
        from cluster.ds_universal import ensure_universal
        from cluster.engines.deepspeed_engine import DS_TAG, UNIVERSAL_TAG

        log.info(
            "world size %d -> %d: converting %s to a universal checkpoint", old_world, self.world, info.path
        )
        ensure_universal(
            info.path, DS_TAG, UNIVERSAL_TAG, self.rank, self.cfg.convert_timeout_s, self._barrier
        )
        self._barrier()
        return True

    def _resume(self, info: CheckpointInfo) -> None:
        t0 = time.perf_counter()
        ts = self.engine.load(info.path, info.meta)
        if ts.get("format") != TRAIN_STATE_FORMAT:
            raise ValueError(
                f"{info.path}: train state format {ts.get('format')!r}, expected {TRAIN_STATE_FORMAT}"
            )
        self.step, self.epoch = int(ts["step"]), int(ts["epoch"])
        self.samples_seen = int(ts.get("samples_seen", 0))
        self.engine.load_extra_state(ts.get("engine_extra") or {})
        if ts.get("schedule") != self.schedule.state_dict():
            log.warning(
                "schedule changed since the checkpoint: %s -> %s",
                ts.get("schedule"),
                self.schedule.state_dict(),
            )
        ranks = ts["ranks"]
        old_world = len(ranks)
        if old_world == self.world:
            mine = ranks[self.rank]
            if mine.get("rank") != self.rank:
                raise ValueError(f"{info.path}: per-rank states are out of order")
            self.train_loader.load_state_dict(mine["loader"])
            self._sync_epoch()
            rng_state.restore(mine["rng"])
            how = "exact"
        else:
            self._reshard_loader([r["loader"] for r in ranks], old_world)
            # RNG streams belong to ranks that no longer exist: start fresh, reproducible streams.
            rng_state.seed_all(rng_state.rank_seed(self.cfg.seed, self.rank, self.step))
            how = f"resharded {old_world}->{self.world} ranks"
        self.resumed_from = self.step
        self.last_saved_step = self.step
        self.last_checkpoint = info.path
        secs = time.perf_counter() - t0
        log.info(
            "resumed from %s (step %d, epoch %d, %s) in %.2fs", info.path, self.step, self.epoch, how, secs
        )
        self.metrics.event(
            self.step,
            "resume",
            path=str(info.path),
            mode=how,
            load_seconds=round(secs, 4),
            world_size=self.world,
        )

    def _reshard_loader(self, states: list[dict[str, Any]], old_world: int) -> None:
        policy = self.cfg.on_world_size_change
        if policy == "error":
            raise ConfigError(
                f"checkpoint has {old_world} ranks, this run {self.world} (on_world_size_change=error)"
            )
        if policy == "reshard":
            try:
                self.train_loader.load_state_dict(states)
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"world size changed ({old_world} -> {self.world}) and "
                    f"{type(self.train_loader).__name__} "
                    f"cannot continue the epoch from the old ranks' positions ({exc}); set "
                    "on_world_size_change=restart_epoch to replay the epoch instead"
                ) from exc
            self._sync_epoch()
            return
        log.warning(
            "world size changed (%d -> %d): restarting epoch %d from its beginning (samples repeat)",
            old_world,
            self.world,
            self.epoch,
        )
        self.train_loader.set_epoch(self.epoch)

    def _sync_epoch(self) -> None:
        """Report the loader's own epoch when it keeps one (it may roll over by itself on ``iter``)."""
        epoch = getattr(self.train_loader, "epoch", None)
        if isinstance(epoch, int):
            self.epoch = epoch

    # --------------------------------------------------------------------------------------- main loop
    def _batches(self) -> Iterator[Any]:
        """Micro-batches forever, moving to the next epoch when the loader runs out."""
        it = iter(self.train_loader)
        while True:
            batch = next(it, _END)
            if batch is _END:
                self.epoch += 1
                self.train_loader.set_epoch(self.epoch)
                it = iter(self.train_loader)
                batch = next(it, _END)
                if batch is _END:
                    raise RuntimeError(f"the training loader yields no batch in epoch {self.epoch}")
            self._sync_epoch()
            yield batch

    def run(self) -> TrainResult:
        cfg = self.cfg
        self._call("on_start")
        status = "finished"
        steps_this_launch = 0
        batches = self._batches()
        bar = None
        if self.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=self.max_steps,
                initial=self.step,
                desc="train",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=1.0,
            )
        keys: list[str] | None = None
        window: list[dict[str, Any]] = []
        while self.step < self.max_steps:
            t_start = time.perf_counter()
            wait = 0.0
            n_samples = 0
            sums: dict[str, torch.Tensor] = {}
            micro_batches = []
            for _ in range(self.accum):
                t0 = time.perf_counter()
                micro_batches.append(next(batches))
                wait += time.perf_counter() - t0
            stats = global_batch.step_stats(self.pg, micro_batches, batch_size_of, self.split_invariant)
            for micro, batch in enumerate(micro_batches):
                n_samples += batch_size_of(batch)
                terms = self._forward_backward(micro, batch, stats)
                for k, v in terms.items():
                    sums[k] = sums[k] + v if k in sums else v
            lr = self.schedule.lr_at(self.step)
            grad_norm = self.engine.step(lr)
            self.step += 1
            steps_this_launch += 1

            # One collective per step: mean loss terms, samples, data wait, and the preemption flag.
            if keys is None:
                keys = sorted(sums)
            # split-invariant terms are shares of the global-batch loss: their sum over ranks is the loss
            per_rank = 1 if self.split_invariant else self.accum
            vec = torch.tensor(
                [float(sums[k]) / per_rank for k in keys]
                + [float(n_samples), wait, 1.0 if self.rt.preemption.requested else 0.0],
                dtype=torch.float64,
            )
            if self.pg.backend == "nccl":
                vec = vec.to(self.pg.device)
            dist.all_reduce(vec)
            vec = vec.cpu()
            step_time = time.perf_counter() - t_start
            global_samples = int(vec[len(keys)])
            self.samples_seen += global_samples
            preempt = float(vec[len(keys) + 2]) > 0
            ranks = 1 if self.split_invariant else self.world
            record: dict[str, Any] = {k: float(vec[i]) / ranks for i, k in enumerate(keys)}
            mean_wait = float(vec[len(keys) + 1]) / self.world
            record.update(
                epoch=self.epoch,
                lr=lr,
                grad_norm=grad_norm,
                samples=global_samples,
                samples_seen=self.samples_seen,
                samples_per_s=global_samples / step_time,
                samples_per_s_per_device=global_samples / step_time / self.world,
                step_time_s=step_time,
                data_wait_s=mean_wait,
                data_wait_pct=100.0 * mean_wait / step_time,
                peak_mem_mb=_peak_mem_mb(self.pg.device),
                world_size=self.world,
                global_batch=self.geometry.global_batch,
                micro_steps=self.accum,
                batch_digest=stats.digest,
            )
            if not math.isfinite(record["loss"]):
                log.warning("step %d: non-finite loss %s", self.step, record["loss"])
            self.metrics.log(self.step, record)
            window.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
            if self.is_main and (self.step % cfg.log_every == 0 or self.step == self.max_steps):
                line = summary_line(self.step, self.max_steps, _window_mean(window))
                (bar.write if bar is not None else print)(line)
                log.debug(line)
                window = []
            self._call("on_step_end", record)

            if cfg.val_every and self.step % cfg.val_every == 0:
                self.validate()
            if self.step % cfg.ckpt_every == 0 or self.step == self.max_steps:
                self.save()
            if preempt:
                status = "preempted"
                reason = self.rt.preemption.received or "a peer rank's signal"
                log.warning("preemption (%s) at step %d: saving and exiting", reason, self.step)
                self.save()
                self.metrics.event(self.step, "preempted", signal=reason)
                if self.is_main and cfg.requeue:
                    requeue_slurm_job(_environ())
                break
            if cfg.run_steps and steps_this_launch >= cfg.run_steps and self.step < self.max_steps:
                status = "stopped"
                self.save()
                log.info(
                    "run_steps=%d reached at step %d: saved; run the same command to continue",
                    cfg.run_steps,
                    self.step,
                )
                break
        if bar is not None:
            bar.close()
        if self.step >= self.max_steps and self.last_saved_step != self.step:
            self.save()
        result = TrainResult(
            status,
            self.step,
            self.epoch,
            self.max_steps,
            self.last_checkpoint,
            resumed_from=self.resumed_from,
        )
        if (
            status == "finished"
            and cfg.export_on_finish
            and self.is_main
            and self.last_checkpoint is not None
        ):
            from cluster.checkpoint import latest
            from cluster.export import export_checkpoint

            info = latest(self.ckpt.root)
            if info is not None:
                result.export = export_checkpoint(info, self.run_dir / "model.pt", self.extra_meta)
        self.metrics.event(self.step, "end", status=status)
        self.metrics.close()
        self._call("on_end", result)
        return result

    # ---------------------------------------------------------------------------------------- validation
    def validate(self) -> dict[str, float] | None:
        """Mean validation loss terms over the validation loader (all ranks), logged as kind ``val``."""
        if self.val_loader is None:
            return None
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        count = 0
        with rng_state.isolated(seed=self.cfg.seed + 1), self.engine.evaluating():
            self.val_loader.set_epoch(0)
            for i, batch in enumerate(self.val_loader):
                if self.cfg.val_batches and i >= self.cfg.val_batches:
                    break
                terms = self.engine.eval_forward(batch)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
        keys = sorted(sums)
        vec = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
        if self.pg.backend == "nccl":
            vec = vec.to(self.pg.device)
        dist.all_reduce(vec)
        vec = vec.cpu()
        total = float(vec[-1])
        if total == 0:
            log.warning("validation loader yielded no batch")
            return None
        out = {f"val_{k}": float(vec[i]) / total for i, k in enumerate(keys)}
        out["val_seconds"] = time.perf_counter() - t0
        self.metrics.log(self.step, out, kind="val")
        if self.is_main:
            log.info(
                "step %d validation: %s",
                self.step,
                " ".join(f"{k}={v:.5f}" for k, v in out.items() if k != "val_seconds"),
            )
        return out

    # ---------------------------------------------------------------------------------------- checkpoint
    def train_state(self) -> dict[str, Any]:
        """Everything beyond model/optimizer that the next step depends on (collective: gathers ranks)."""
        local = {"rank": self.rank, "loader": self.train_loader.state_dict(), "rng": rng_state.capture()}
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, local)
        return {
            "format": TRAIN_STATE_FORMAT,
            "step": self.step,
            "epoch": self.epoch,
            "samples_seen": self.samples_seen,
            "world_size": self.world,
            "accum": self.accum,
            "global_batch": self.geometry.global_batch,
            "schedule": self.schedule.state_dict(),
            "engine_extra": self.engine.extra_state(),
            "ranks": gathered,
        }

    def save(self) -> CheckpointInfo | None:
        """Collective save of the current step (no-op if this step is already saved)."""
        if self.last_saved_step == self.step:
            return None
        state = self.train_state()
        meta = {
            "format": TRAIN_STATE_FORMAT,
            "engine": self.cfg.engine,
            "zero_stage": self.cfg.zero_stage if self.cfg.engine == "deepspeed" else None,
            "world_size": self.world,
            "global_batch": self.geometry.global_batch,
            "epoch": self.epoch,
            "model": self.cfg.model,
            "preset": self.cfg.preset,
            "model_overrides": self.cfg.model_overrides,
            **self.extra_meta,
        }
        info = self.ckpt.save(self.step, lambda p: self.engine.save(p, state), meta)
        self.last_saved_step = self.step
        self.last_checkpoint = info.path
        self.metrics.event(
            self.step,
            "checkpoint",
            path=str(info.path),
            save_seconds=info.meta.get("save_seconds"),
            bytes=info.meta.get("bytes"),
        )
        if self.is_main:
            log.info(
                "saved %s (%.2fs, %s bytes)",
                info.path,
                info.meta.get("save_seconds", float("nan")),
                info.meta.get("bytes"),
            )
        self._call("on_checkpoint", info)
        return info


def _window_mean(window: list[dict[str, Any]]) -> dict[str, Any]:
    if not window:
        return {}
    out: dict[str, Any] = {}
    for k, v in window[-1].items():
        vals = [r[k] for r in window if isinstance(r.get(k), (int, float))]
        out[k] = sum(vals) / len(vals) if vals and isinstance(v, float) else v
    out["peak_mem_mb"] = window[-1].get("peak_mem_mb")
    return out


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _check_global_batch_before_start(cfg: TrainConfig) -> None:
    """Refuse (ConfigError, exit 2 on every rank) a resume whose global batch cannot be kept, before any
    rank joins the process group (a failure after that would end the job with status 1)."""
    from cluster.checkpoint import latest
    from cluster.dist_env import detect

    info = latest(Path(cfg.run_dir) / "checkpoints")
    if info is not None:
        global_batch.resolve(cfg, detect().world_size, info.meta, str(info.path))


def train(
    cfg: TrainConfig,
    build_model: ModelFactory,
    build_loaders: LoaderFactory,
    callbacks: Sequence[object] = (),
    checkpoint_manager_cls: type[CheckpointManager] = CheckpointManager,
    extra_meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Set up the runtime, train (resuming from the newest complete checkpoint in ``cfg.run_dir``), shut down.

    In a multi-rank job an exception on any rank ends every rank with a non-zero status (see
    :class:`cluster.runtime.Runtime`).
    """
    cfg = cfg.resolved()
    _check_global_batch_before_start(cfg)
    with Runtime(cfg) as rt:
        trainer = Trainer(cfg, rt, build_model, build_loaders, callbacks, checkpoint_manager_cls, extra_meta)
        return trainer.run()
