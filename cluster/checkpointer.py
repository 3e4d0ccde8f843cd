"""The trainer's checkpointer: which checkpoint to resume from, when to save, and the save and load.

It holds two stateful parts: the engine (model, optimizer and its extras) and the train state (step, epoch,
schedule, every rank's loader position and RNG state), both written into one step directory by the engine
(``cluster.checkpoint`` for the directories, markers, digests and rotation).

Resume is decided before the run directory is touched: the newest complete checkpoint (rank 0's listing,
broadcast) whose files match their recorded digests (checked by all ranks, each a share; damaged ones are
named and skipped), refused when it was written by another experiment (``cluster.run_identity``) or another
engine. Every rank reaches the same decision, so every rank resumes from the same checkpoint or raises the
same ConfigError.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch.distributed as dist

from actiongpt.config import ConfigError
from cluster.checkpoint import CheckpointInfo, CheckpointManager
from cluster.engines.base import Engine
from cluster.metrics_log import MetricsLogger
from cluster.run_identity import check_same_experiment
from cluster.train_config import TrainConfig

log = logging.getLogger(__name__)

TRAIN_STATE_FORMAT = 1


class TrainState(Protocol):
    """The trainer's part of a checkpoint. ``state_dict`` is collective (it gathers every rank's loader
    and RNG state); ``load_state_dict`` returns how the loader was restored (for the log)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> str: ...


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


class Checkpointer:
    """Saves every ``ckpt_every`` steps and at the last step; resumes from the newest usable checkpoint."""

    def __init__(
        self,
        cfg: TrainConfig,
        rank: int,
        world: int,
        meta: Mapping[str, Any],
        manager_cls: type[CheckpointManager] = CheckpointManager,
    ):
        self.cfg = cfg
        self.rank, self.world = rank, world
        self.every = cfg.ckpt_every
        self.meta = dict(meta)  # what every marker records besides step, epoch and files
        self.manager = manager_cls(Path(cfg.run_dir) / "checkpoints", cfg.keep_last, rank)
        self.last_step: int | None = None
        self.last_path: Path | None = None
        self.engine: Engine | None = None
        self.train: TrainState | None = None
        self.metrics: MetricsLogger | None = None
        self.verify_seconds: float | None = None  # finding and checking the resumed checkpoint

    @property
    def root(self) -> Path:
        return self.manager.root

    def attach(self, engine: Engine, train: TrainState, metrics: MetricsLogger) -> None:
        self.engine, self.train, self.metrics = engine, train, metrics

    # ------------------------------------------------------------------------------------------ resume
    def _check(self, info: CheckpointInfo) -> None:
        """Refuse a checkpoint of another experiment or engine (its marker only)."""
        check_same_experiment(str(info.path), info.meta, self.meta)
        recorded = info.meta.get("engine")
        if recorded != self.cfg.engine:
            raise ConfigError(
                f"{info.path} was written by engine {recorded!r} but engine={self.cfg.engine!r}; "
                "resume with the same engine (or export the model and start a new run)"
            )
        if self.cfg.engine == "deepspeed":
            old_stage = int(info.meta.get("zero_stage") or 0)
            if old_stage != self.cfg.zero_stage:
                raise ConfigError(
                    f"{info.path} uses ZeRO stage {old_stage}, the config asks for {self.cfg.zero_stage}"
                )

    def find(self) -> CheckpointInfo | None:
        """Collective: the checkpoint to resume from (None: start from step 0). Reads the checkpoints and
        writes nothing; raises the same ConfigError on every rank when none can be used."""
        t0 = time.perf_counter()
        info = self.manager.newest_usable(self._check)
        self.verify_seconds = round(time.perf_counter() - t0, 4)
        return info

    def remove_incomplete(self) -> None:
        """Rank 0, at start-up: delete the directories of saves that did not finish."""
        self.manager.remove_incomplete()

    def convert_for_world_size(self, info: CheckpointInfo | None) -> bool:
        """Collective: convert a partitioned ZeRO checkpoint for a new world size. Returns whether
        DeepSpeed must load the universal form."""
        if info is None or self.cfg.engine != "deepspeed":
            return False
        old_stage = int(info.meta.get("zero_stage") or 0)
        old_world = int(info.meta.get("world_size", self.world))
        if old_world == self.world or old_stage == 0:
            return False  # same partitioning, or no partitioned optimizer state: loads as it is
        from cluster.ds_universal import ensure_universal
        from cluster.engines.deepspeed_engine import DS_TAG, UNIVERSAL_TAG

        log.info(
            "world size %d -> %d: converting %s to a universal checkpoint", old_world, self.world, info.path
        )
        ensure_universal(info.path, DS_TAG, UNIVERSAL_TAG, self.rank, self.cfg.convert_timeout_s, _barrier)
        _barrier()
        return True

    def load(self, info: CheckpointInfo) -> None:
        """Collective: restore the engine and the train state from ``info``."""
        assert self.engine is not None and self.train is not None and self.metrics is not None
        t0 = time.perf_counter()
        ts = self.engine.load(info.path, info.meta)
        if ts.get("format") != TRAIN_STATE_FORMAT:
            raise ValueError(
                f"{info.path}: train state format {ts.get('format')!r}, expected {TRAIN_STATE_FORMAT}"
            )
        how = self.train.load_state_dict(ts)
        step = int(ts["step"])
        self.last_step, self.last_path = step, info.path
        secs = time.perf_counter() - t0
        log.info("resumed from %s (step %d, epoch %d, %s) in %.2fs", info.path, step, ts["epoch"], how, secs)
        self.metrics.event(
            step,
            "resume",
            path=str(info.path),
            mode=how,
            load_seconds=round(secs, 4),
            verify_seconds=self.verify_seconds,
            world_size=self.world,
        )

    # -------------------------------------------------------------------------------------------- save
    def due(self, step: int, last_step: bool = False) -> bool:
        return step % self.every == 0 or last_step

    def save(
        self, step: int, epoch: int, last_step: bool = False, force: bool = False
    ) -> CheckpointInfo | None:
        """Collective save of ``step`` when the interval says so (or ``force``); a step already saved is
        not saved again."""
        if not (force or self.due(step, last_step)) or self.last_step == step:
            return None
        assert self.engine is not None and self.train is not None and self.metrics is not None
        engine, state = self.engine, self.train.state_dict()
        meta = {
            "format": TRAIN_STATE_FORMAT,
            "engine": self.cfg.engine,
            "zero_stage": self.cfg.zero_stage if self.cfg.engine == "deepspeed" else None,
            "world_size": self.world,
            "epoch": epoch,
            **self.meta,
        }
        info = self.manager.save(step, lambda p: engine.save(p, state), meta)
        self.last_step, self.last_path = step, info.path
        self.metrics.event(
            step,
            "checkpoint",
            path=str(info.path),
            save_seconds=info.meta.get("save_seconds"),
            digest_seconds=info.meta.get("digest_seconds"),
            bytes=info.meta.get("bytes"),
        )
        if self.rank == 0:
            log.info(
                "saved %s (%.2fs, %s bytes)",
                info.path,
                info.meta.get("save_seconds", float("nan")),
                info.meta.get("bytes"),
            )
        return info
