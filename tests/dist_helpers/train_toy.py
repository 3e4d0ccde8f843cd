"""Launch target for the runtime tests: ``torchrun ... -m tests.dist_helpers.train_toy --run-dir D [k=v]``.

Trains the toy model with the real trainer (``cluster.trainer.train``); test-only instruments are
callbacks and a checkpoint-manager subclass, so the runtime itself carries no test hooks:
- ``--fail-at-step N --fail-rank R``: rank R raises after step N;
- ``--hang-at-step N --hang-rank R``: rank R sleeps forever after step N (peers must time out);
- ``--stall-ckpt-step N``: rank 0 stops between writing checkpoint N's data and its marker (for kill -9);
- ``--step-delay S``: sleep S seconds after each step (lets a test signal mid-run);
- ``--record-keys``: every rank appends the sample keys it hands to the model to ``keys-rank<R>.jsonl``;
- ``--dump-start`` / ``--dump-end``: rank 0 writes model (+ DDP optimizer) state to ``state-start.pt`` /
  ``state-end.pt`` right after set-up (after any resume) and at the end;
- ``--shards DIR``: train :class:`tests.dist_helpers.shard_toy.ShardToyVAE` on the real shard loader over
  ``DIR`` (split ``train``, single actions) instead of the toy model and loader.

A configuration error exits 2 with the message, as ``actiongpt train`` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from actiongpt import config as cfglib
from actiongpt.config import ConfigError
from cluster.checkpoint import CheckpointManager
from cluster.dist_env import DistEnv
from cluster.train_config import TrainConfig
from cluster.trainer import train
from tests.dist_helpers.toy import ToyLoader, ToyModel


class RecordingLoader:
    """Passes through a loader and records the keys of every batch handed out."""

    def __init__(self, inner: ToyLoader, path: Path):
        self.inner, self.path = inner, path

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self):
        for batch in self.inner:
            with open(self.path, "a") as f:
                f.write(json.dumps({"epoch": self.inner.epoch, "keys": list(batch["keys"])}) + "\n")
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.inner.load_state_dict(state)

    @property
    def epoch(self) -> int:
        return self.inner.epoch

    def __getattr__(self, name: str) -> Any:  # optional loader methods (set_global_batch)
        return getattr(self.inner, name)


class Instruments:
    def __init__(self, args: argparse.Namespace):
        self.args = args

    def _dump(self, trainer, name: str) -> None:
        engine = trainer.engine
        out: dict[str, Any] = {"step": trainer.step, "epoch": trainer.epoch}
        if trainer.cfg.engine == "ddp":
            from torch.distributed.checkpoint.state_dict import get_state_dict

            model_sd, optim_sd = get_state_dict(engine.ddp, engine.optimizer)
            out["model"] = {k: v.detach().clone() for k, v in model_sd.items()}
            out["optim_state"] = {
                k: {n: (t.detach().clone() if torch.is_tensor(t) else t) for n, t in st.items()}
                for k, st in optim_sd["state"].items()
            }
        else:
            # DeepSpeed's debugging API gathers full fp32 parameters and optimizer moments under any ZeRO
            # stage (collective: every rank calls it).
            from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

            out["model"], out["optim_state"] = {}, {}
            for pname, param in engine.module.named_parameters():
                full = safe_get_full_fp32_param(param)
                if full is None:  # ZeRO-0: plain parameters and a plain torch optimizer state
                    out["model"][pname] = param.detach().clone()
                    state = engine.optimizer.state[param]
                    out["optim_state"][pname] = {
                        k: state[k].detach().clone() for k in ("exp_avg", "exp_avg_sq")
                    }
                    continue
                out["model"][pname] = full.detach().clone()
                out["optim_state"][pname] = {
                    k: safe_get_full_optimizer_state(param, k).detach().clone()
                    for k in ("exp_avg", "exp_avg_sq")
                }
        if trainer.rank == 0:
            torch.save(out, Path(trainer.cfg.run_dir) / name)

    def on_start(self, trainer) -> None:
        if self.args.dump_start:
            self._dump(trainer, "state-start.pt")

    def on_step_end(self, trainer, record: dict[str, Any]) -> None:
        a = self.args
        if a.fail_at_step and trainer.step == a.fail_at_step and trainer.rank == a.fail_rank:
            raise RuntimeError(f"injected failure on rank {trainer.rank} at step {trainer.step}")
        if a.hang_at_step and trainer.step == a.hang_at_step and trainer.rank == a.hang_rank:
            while True:
                time.sleep(1)
        if a.step_delay:
            time.sleep(a.step_delay)

    def on_end(self, trainer, result) -> None:
        if self.args.dump_end:
            self._dump(trainer, "state-end.pt")
        if trainer.rank == 0:
            (Path(trainer.cfg.run_dir) / "result.json").write_text(
                json.dumps(
                    {
                        "status": result.status,
                        "step": result.step,
                        "epoch": result.epoch,
                        "resumed_from": result.resumed_from,
                        "max_steps": result.max_steps,
                    }
                )
            )


def stalling_manager(stall_step: int) -> type[CheckpointManager]:
    class Stalling(CheckpointManager):
        def _before_marker(self, path: Path) -> None:
            if self.rank == 0 and path.name == f"step-{stall_step:08d}":
                (path.parent.parent / "STALLED").write_text(str(os.getpid()))
                while True:  # the test kills us here, data written, marker not
                    time.sleep(1)

    return Stalling


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--run-dir", required=True)
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--fail-at-step", type=int, default=0)
    p.add_argument("--fail-rank", type=int, default=1)
    p.add_argument("--hang-at-step", type=int, default=0)
    p.add_argument("--hang-rank", type=int, default=1)
    p.add_argument("--stall-ckpt-step", type=int, default=0)
    p.add_argument("--step-delay", type=float, default=0.0)
    p.add_argument("--record-keys", action="store_true")
    p.add_argument("--dump-start", action="store_true")
    p.add_argument("--dump-end", action="store_true")
    p.add_argument("--shards", default="")
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s [{os.environ.get('RANK', '0')}] %(name)s: %(message)s"
    )

    defaults = [
        f"run_dir={args.run_dir}",
        "model=toy",
        "lr=0.01",
        "batch_size=4",
        "epochs=2",
        "ckpt_every=1000",
        "log_every=4",
        "tensorboard=false",
        "progress=false",
        "dist_timeout_s=60",
    ]
    cfg = cfglib.load(TrainConfig, [], defaults + list(args.overrides))
    run_dir = Path(cfg.run_dir)

    def build_model() -> torch.nn.Module:
        if args.shards:
            from shards.manifest import Manifest
            from tests.dist_helpers.shard_toy import ShardToyVAE

            return ShardToyVAE(Manifest.load(Path(args.shards)).pooled_dim)
        return ToyModel()

    def build_loaders(env: DistEnv):
        assert cfg.batch_size is not None
        if args.shards:
            from shards.loader import LoaderConfig, ShardLoader

            lc = LoaderConfig(root=args.shards, batch_size=cfg.batch_size, num_workers=0, seed=cfg.seed)
            loader: Any = ShardLoader(lc, rank=env.rank, world_size=env.world_size)
        else:
            loader = ToyLoader(args.num_samples, cfg.batch_size, env.rank, env.world_size, seed=cfg.seed)
        if args.record_keys:
            run_dir.mkdir(parents=True, exist_ok=True)
            loader = RecordingLoader(loader, run_dir / f"keys-rank{env.rank}.jsonl")
        val = ToyLoader(16, cfg.batch_size, env.rank, env.world_size, seed=cfg.seed + 99)
        return loader, val

    manager = stalling_manager(args.stall_ckpt_step) if args.stall_ckpt_step else CheckpointManager
    try:
        result = train(cfg, build_model, build_loaders, [Instruments(args)], checkpoint_manager_cls=manager)
    except ConfigError as exc:
        print(f"train_toy: error: {exc}", file=sys.stderr)
        return 2
    print(f"RESULT {result.status} step={result.step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
