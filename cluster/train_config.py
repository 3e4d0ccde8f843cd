"""``TrainConfig``: the one config dataclass of the training runtime (defaults = the papers' settings).

Fields left ``None`` take the value the original code used for the chosen backbone (see
``reference/action-gpt-original.md`` §5.5/§5.6): AdamW lr 7e-5 with 4 samples per GPU for TEMOS and TEACH,
lr 1e-4 with batch 20 for MotionCLIP; 1003 and 100 epochs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from actiongpt.config import ConfigError

# The original settings per backbone (Action-GPT TEMOS/TEACH: 4 GPUs x batch 4; MotionCLIP: batch 20).
BACKBONE_DEFAULTS: dict[str, dict[str, Any]] = {
    "temos": {"lr": 7e-5, "batch_size": 4, "epochs": 1003},
    "teach": {"lr": 7e-5, "batch_size": 4, "epochs": 1003},
    "motionclip": {"lr": 1e-4, "batch_size": 20, "epochs": 100},
}


@dataclasses.dataclass
class TrainConfig:
    """Everything ``actiongpt train`` needs: model, data, optimisation, checkpoints and the runtime."""

    # --- run
    run_dir: str = "runs/train"
    seed: int = 1234
    # --- model (built by actiongpt.models.registry.build_model(model, preset config, text_dim))
    model: str = "teach"
    preset: str = "paper"  # paper | tiny | path to a model YAML (configs/model/*.yaml)
    model_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    # --- data (shards.loader.ShardLoader over the shard folder; TEACH needs a pairs build, the others seg)
    shards_dir: str = "data/embedded/shards/pairs-minilm"
    train_split: str = "train"
    val_split: str = "val"
    text_source: Literal["descriptions", "label"] = "descriptions"  # Action-GPT | the baseline
    k: int | None = None  # None: all stored descriptions (the paper's k = 4 when built so)
    # None: "original" (or the aggregate the shards store); "sentence_mean"/"sentences": 1 or k text tokens
    # for TEMOS/TEACH, at the baseline's step time (actiongpt.text.aggregate)
    aggregator: str | None = None
    num_workers: int = 2
    loader_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # other LoaderConfig fields
    # --- optimisation
    engine: Literal["ddp", "deepspeed"] = "ddp"
    zero_stage: int = 2
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    lr: float | None = None
    weight_decay: float = 0.01  # torch's AdamW default, which the original code used
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: Literal["constant", "warmup_cosine", "warmup_linear"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    batch_size: int | None = None  # per rank and micro-step
    grad_accum: int = 1
    global_batch_size: int = (
        0  # > 0: samples per optimizer step, kept on any world size (cluster.global_batch)
    )
    allow_global_batch_change: bool = False  # resume even when the checkpoint's global batch cannot be kept
    grad_clip: float = 0.0  # 0 = off (the originals did not clip); the norm is always logged
    epochs: int | None = None
    max_steps: int = 0  # 0: epochs x optimizer steps per epoch
    run_steps: int = 0  # > 0: save and stop after this many steps in this launch (time slicing)
    # --- validation, checkpoints, logging
    val_every: int = 0  # steps; 0 = off
    val_batches: int = 0  # 0 = the whole validation loader
    ckpt_every: int = 1000
    keep_last: int = 3
    log_every: int = 50
    tensorboard: bool = True
    progress: bool = True
    export_on_finish: bool = True
    # --- distributed runtime
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    dist_timeout_s: float = 600.0
    signals: list[str] = dataclasses.field(default_factory=lambda: ["SIGUSR1", "SIGTERM"])
    requeue: bool = True
    on_world_size_change: Literal["reshard", "restart_epoch", "error"] = "reshard"
    find_unused_parameters: bool = False
    convert_timeout_s: float = 3600.0  # ZeRO -> universal checkpoint conversion on a world-size change

    def __post_init__(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"zero_stage: {self.zero_stage} is not one of 0, 1, 2, 3")
        for name in ("grad_accum", "ckpt_every", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in (
            "max_steps",
            "run_steps",
            "val_every",
            "val_batches",
            "global_batch_size",
            "warmup_steps",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.grad_clip < 0:
            raise ConfigError(f"grad_clip: must be >= 0, got {self.grad_clip}")
        if self.dist_timeout_s <= 0:
            raise ConfigError(f"dist_timeout_s: must be > 0, got {self.dist_timeout_s}")
        if self.k is not None and self.k < 1:
            raise ConfigError(f"k: must be >= 1, got {self.k}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: must be >= 0, got {self.num_workers}")

    def resolved(self) -> TrainConfig:
        """A copy with the backbone's original lr / batch size / epochs filled in where left unset."""
        defaults = BACKBONE_DEFAULTS.get(self.model.lower(), {})
        out = dataclasses.replace(self)
        for name in ("lr", "batch_size", "epochs"):
            if getattr(out, name) is None:
                if name not in defaults:
                    raise ConfigError(
                        f"{name}: no default for model {self.model!r} "
                        f"(known: {sorted(BACKBONE_DEFAULTS)}); set it"
                    )
                setattr(out, name, defaults[name])
        assert out.lr is not None and out.batch_size is not None
        if out.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {out.lr}")
        if out.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {out.batch_size}")
        return out

    def accumulation_for(self, world_size: int) -> int:
        """Micro-steps per optimizer step at this world size (from ``global_batch_size`` when set)."""
        assert self.batch_size is not None, "call resolved() first"
        if self.global_batch_size <= 0:
            return self.grad_accum
        per_step = self.batch_size * world_size
        if self.global_batch_size % per_step:
            raise ConfigError(
                f"global_batch_size={self.global_batch_size} is not divisible by batch_size x world size = "
                f"{self.batch_size} x {world_size}"
            )
        return self.global_batch_size // per_step
