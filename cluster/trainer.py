"""The training loop: epochs over a stateful loader, a step-based schedule, validation, checkpoints, logging,
preemption, and exact resume.

Exactness: a checkpoint holds everything that decides the next step — model, optimizer, engine extras
(loss scaler), step and epoch, every rank's loader position and RNG state. The learning rate is a function
of the step; validation runs with its own RNG so it never shifts the training random streams. A relaunch
of the same command therefore produces the same losses and parameters as a run that was never stopped.

Pieces: ``cluster.checkpointer`` (which checkpoint to resume, when to save), ``cluster.loader_restore``
(the loader's position on resume), ``cluster.step_metrics`` (the per-step record and its one all-reduce).
Entry point: :func:`train` (model and loaders come from factories so that the process group exists and the
seed is set before they are built).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from actiongpt import config as cfglib
from actiongpt.config import ConfigError
from actiongpt.models import step_context
from cluster import global_batch, rng_state
from cluster.checkpoint import CheckpointManager
from cluster.checkpointer import TRAIN_STATE_FORMAT, Checkpointer
from cluster.dist_env import DistEnv
from cluster.engines import Engine, build_engine
from cluster.loader_protocol import batch_size_of, check_loader
from cluster.loader_restore import loader_epoch, restore_loader
from cluster.metrics_log import MetricsLogger
from cluster.preemption import requeue_slurm_job
from cluster.run_identity import experiment_meta
from cluster.runtime import Runtime
from cluster.schedule import StepSchedule
from cluster.step_metrics import LocalStep, StepLog, reduce_step, step_record
from cluster.train_config import TrainConfig
from cluster.validation import validation_means

log = logging.getLogger(__name__)

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


ModelFactory = Callable[[], torch.nn.Module]
LoaderFactory = Callable[[DistEnv], tuple[Any, Any]]  # -> (train loader, validation loader or None)


class Trainer:
    """One training run inside a :class:`Runtime`. Use :func:`train` unless you need the object.

    Callbacks are objects with any of ``on_start(trainer)``, ``on_step_end(trainer, record)``,
    ``on_checkpoint(trainer, info)`` and ``on_end(trainer, result)`` (called on every rank).
    """

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
        self.step = 0
        self.epoch = 0
        self.samples_seen = 0
        self.resumed_from: int | None = None

        meta = experiment_meta(cfg, self.extra_meta)
        self.ckpt = Checkpointer(cfg, self.rank, self.world, meta, checkpoint_manager_cls)
        self.resume_info = info = self.ckpt.find()  # decided before anything in the run directory changes
        # The global batch is kept across world sizes; accumulation and micro-batch follow it
        self.geometry = global_batch.resolve(
            cfg, self.world, info.meta if info else None, str(info.path) if info else ""
        )
        self.accum = self.geometry.micro_steps
        self.ckpt.meta["global_batch"] = self.geometry.global_batch
        self._prepare_run_dir()
        load_universal = self.ckpt.convert_for_world_size(self.resume_info)
        self.engine = self._build_engine(build_model, load_universal)
        self.train_loader, self.val_loader = self._build_loaders(build_loaders)
        self.steps_per_epoch = len(self.train_loader) // self.accum
        assert cfg.epochs is not None and cfg.lr is not None
        self.max_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.schedule = StepSchedule(cfg.schedule, cfg.lr, self.max_steps, cfg.warmup_steps, cfg.min_lr_ratio)
        self.metrics = MetricsLogger(self.run_dir, enabled=self.is_main, tensorboard=cfg.tensorboard)
        self.ckpt.attach(self.engine, self, self.metrics)
        if self.geometry.changed_from is not None:
            self.metrics.event(
                0 if info is None else info.step,
                "global_batch_changed",
                old=self.geometry.changed_from,
                new=self.geometry.global_batch,
                world_size=self.world,
            )
        if self.resume_info is not None:
            self.ckpt.load(self.resume_info)
            self.resumed_from = self.step
        else:
            self.train_loader.set_epoch(0)
            rng_state.seed_all(rng_state.rank_seed(cfg.seed, self.rank))

    def _prepare_run_dir(self) -> None:
        """Rank 0: the resolved config next to the checkpoints; saves that never finished removed."""
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfglib.save(self.cfg, self.run_dir / "config.yaml")
            self.ckpt.remove_incomplete()
        self._barrier()

    def _build_engine(self, build_model: ModelFactory, load_universal: bool) -> Engine:
        rng_state.seed_all(self.cfg.seed)  # identical initial weights on every rank
        model = build_model()
        # Losses normalised over the global batch and per-sample randomness: the step does not depend on the
        # split of the global batch over ranks and micro-batches (actiongpt.models.step_context).
        self.split_invariant = bool(getattr(model, "global_batch_loss", False))
        if self.split_invariant:
            step_context.make_dropout_keyed(model)
        extra = {"load_universal": load_universal} if self.cfg.engine == "deepspeed" else {}
        cfg = dataclasses.replace(self.cfg, batch_size=self.geometry.micro_batch)
        return build_engine(model, cfg, self.pg, self.accum, **extra)

    def _build_loaders(self, build_loaders: LoaderFactory) -> tuple[Any, Any]:
        train_loader, val_loader = build_loaders(self.rt.env)
        check_loader(train_loader, "training")
        self._split_global_batches(train_loader)
        if val_loader is not None:
            check_loader(val_loader, "validation")
        batches = len(train_loader)
        if batches < self.accum:
            raise ConfigError(
                f"the training loader has {batches} batches per rank per epoch, fewer than the {self.accum} "
                f"micro-batches of one optimizer step (batch_size={self.cfg.batch_size}, "
                f"world size {self.world})"
            )
        return train_loader, val_loader

    def _split_global_batches(self, loader: Any) -> None:
        """Tell the loader the step's global batch and micro-steps (or check that it already yields them)."""
        geo = self.geometry
        configure = getattr(loader, "set_global_batch", None)
        if configure is not None:
            configure(geo.global_batch, geo.micro_steps)
        elif not geo.uniform or geo.micro_batch != self.cfg.batch_size:
            raise ConfigError(
                f"{type(loader).__name__} yields batches of {self.cfg.batch_size} per rank and "
                f"cannot split a global batch of {geo.global_batch} over {self.world} ranks"
            )
        log.info(
            "global batch %d = %d ranks x %d micro-steps x up to %d samples",
            geo.global_batch,
            self.world,
            geo.micro_steps,
            geo.micro_batch,
        )

    @property
    def last_checkpoint(self) -> Path | None:
        return self.ckpt.last_path

    # ------------------------------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        """Steps until ``max_steps``, a preemption or ``run_steps``; then the final save and the export."""
        self._call("on_start")
        steps_log = StepLog(
            self.metrics, self.is_main, self.cfg.progress, self.step, self.max_steps, self.cfg.log_every
        )
        batches = self._batches()
        first_step = self.step
        status = "finished"
        while self.step < self.max_steps:
            record, preempt = self.train_step(batches)
            steps_log.log(self.step, record)
            self._call("on_step_end", record)
            if self.cfg.val_every and self.step % self.cfg.val_every == 0:
                self.validate()
            self.save(last_step=self.step == self.max_steps)
            if preempt:
                status = self._preempted()
                break
            if self._slice_done(first_step):
                status = self._stopped()
                break
        steps_log.close()
        if self.step >= self.max_steps:
            self.save(force=True)
        result = TrainResult(
            status,
            self.step,
            self.epoch,
            self.max_steps,
            self.last_checkpoint,
            resumed_from=self.resumed_from,
        )
        if status == "finished":
            result.export = self._export()
        self.metrics.event(self.step, "end", status=status)
        self.metrics.close()
        self._call("on_end", result)
        return result

    def train_step(self, batches: Iterator[Any]) -> tuple[dict[str, Any], bool]:
        """One optimizer step over ``accum`` micro-batches; returns the step's record and whether any rank
        asked to stop (preemption)."""
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
        record, preempt = self._step_metrics(LocalStep(sums, n_samples, wait, lr, grad_norm), t_start)
        record.update(
            global_batch=self.geometry.global_batch, micro_steps=self.accum, batch_digest=stats.digest
        )
        return record, preempt

    def _forward_backward(
        self, micro: int, batch: Any, stats: global_batch.StepStats
    ) -> dict[str, torch.Tensor]:
        last = micro == self.accum - 1
        if not self.split_invariant:
            return self.engine.forward_backward(batch, last_micro=last)
        # step + 1: the step number the metrics record shows
        with step_context.active(stats.context(self.cfg.seed, self.step + 1, batch)):
            return self.engine.forward_backward(batch, last_micro=last, loss_factor=float(self.world))

    def _step_metrics(self, local: LocalStep, t_start: float) -> tuple[dict[str, Any], bool]:
        """The step's all-reduced record (the keys are fixed at the first step, the same on every rank)."""
        if self._keys is None:
            self._keys = sorted(local.sums)
        terms, samples, wait, preempt = reduce_step(
            self.pg, self._keys, local, self.accum, self.rt.preemption.requested, shares=self.split_invariant
        )
        step_time = time.perf_counter() - t_start
        self.samples_seen += samples
        record = step_record(
            terms,
            local,
            samples,
            wait,
            step_time,
            epoch=self.epoch,
            samples_seen=self.samples_seen,
            world=self.world,
            device=self.pg.device,
        )
        if not math.isfinite(record["loss"]):
            log.warning("step %d: non-finite loss %s", self.step, record["loss"])
        return record, preempt

    _keys: list[str] | None = None

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
            self.epoch = loader_epoch(self.train_loader, self.epoch)
            yield batch

    def _preempted(self) -> str:
        reason = self.rt.preemption.received or "a peer rank's signal"
        log.warning("preemption (%s) at step %d: saving and exiting", reason, self.step)
        self.save(force=True)
        self.metrics.event(self.step, "preempted", signal=reason)
        if self.is_main and self.cfg.requeue:
            requeue_slurm_job(dict(os.environ))
        return "preempted"

    def _slice_done(self, first_step: int) -> bool:
        """``run_steps`` steps done in this launch, with steps left (time slicing)."""
        runs = self.cfg.run_steps
        return bool(runs) and self.step - first_step >= runs and self.step < self.max_steps

    def _stopped(self) -> str:
        self.save(force=True)
        log.info(
            "run_steps=%d reached at step %d: saved; run the same command to continue",
            self.cfg.run_steps,
            self.step,
        )
        return "stopped"

    def _export(self) -> Path | None:
        """Rank 0: the consolidated model of the newest checkpoint, next to the run (``export_on_finish``)."""
        if not (self.cfg.export_on_finish and self.is_main and self.last_checkpoint is not None):
            return None
        from cluster.checkpoint import latest
        from cluster.export import EXPORT_FILE, export_checkpoint

        info = latest(self.ckpt.root)
        if info is None:
            return None
        return export_checkpoint(info, self.run_dir / EXPORT_FILE, self.extra_meta)

    # ------------------------------------------------------------------------------------------- helpers
    def _barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def validate(self) -> dict[str, float] | None:
        """Mean validation loss terms (all ranks), logged as kind ``val``."""
        if self.val_loader is None:
            return None
        t0 = time.perf_counter()
        out = validation_means(self.engine, self.val_loader, self.pg, self.cfg.seed + 1, self.cfg.val_batches)
        if out is None:
            return None
        out["val_seconds"] = time.perf_counter() - t0
        self.metrics.log(self.step, out, kind="val")
        if self.is_main:
            values = " ".join(f"{k}={v:.5f}" for k, v in out.items() if k != "val_seconds")
            log.info("step %d validation: %s", self.step, values)
        return out

    # ---------------------------------------------------------------------------------------- checkpoint
    def save(self, last_step: bool = False, force: bool = False) -> None:
        """Collective: save the current step when the interval says so (or ``force``)."""
        info = self.ckpt.save(self.step, self.epoch, last_step=last_step, force=force)
        if info is not None:
            self._call("on_checkpoint", info)

    def state_dict(self) -> dict[str, Any]:
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

    def load_state_dict(self, ts: Mapping[str, Any]) -> str:
        """Restore step, epoch, engine extras, loader position and RNG; returns how the loader resumed."""
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
        path = self.resume_info.path if self.resume_info is not None else self.run_dir
        how = restore_loader(
            self.train_loader, ranks, self.rank, self.world, self.epoch, self.cfg.on_world_size_change, path
        )
        self.epoch = loader_epoch(self.train_loader, self.epoch)
        if how == "exact":
            rng_state.restore(ranks[self.rank]["rng"])
        else:
            # RNG streams belong to ranks that no longer exist: start fresh, reproducible streams.
            rng_state.seed_all(rng_state.rank_seed(self.cfg.seed, self.rank, self.step))
        return how


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
    with Runtime(cfg.runtime) as rt:
        trainer = Trainer(cfg, rt, build_model, build_loaders, callbacks, checkpoint_manager_cls, extra_meta)
        return trainer.run()


def _check_global_batch_before_start(cfg: TrainConfig) -> None:
    """Refuse (ConfigError, exit 2 on every rank) a resume whose global batch cannot be kept, before any
    rank joins the process group (a failure after that would end the job with status 1)."""
    from cluster.checkpoint import latest
    from cluster.dist_env import detect

    info = latest(Path(cfg.run_dir) / "checkpoints")
    if info is not None:
        global_batch.resolve(cfg, detect().world_size, info.meta, str(info.path))
