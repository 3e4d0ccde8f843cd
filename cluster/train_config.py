"""``TrainConfig``: the one config dataclass of the training runtime, and :func:`load_train_config`, the one
way every entry path (``actiongpt train``, ``python -m launch.train`` under torchrun/srun and the sbatch
scripts, ``actiongpt submit train``, the demo and results runners) turns config files and overrides into it.

Fields left ``None`` take the chosen backbone's values (``actiongpt.models.registry``): ``lr`` from the
model preset (paper: AdamW 7e-5 for TEMOS and TEACH, 1e-4 for MotionCLIP; tiny: 1e-3), ``batch_size`` and
``epochs`` from the backbone record (4 per GPU and 1003 epochs for TEMOS/TEACH, 20 and 100 for MotionCLIP).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from actiongpt import config as cfglib
from actiongpt.config import ConfigError

if TYPE_CHECKING:
    from cluster.runtime import RuntimeConfig


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
    # before step 1, the shards against the manifest: sizes and counts (cheap), + sha256 ("digests"), or "off"
    shard_check: Literal["sizes", "digests", "off"] = "sizes"
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

    def model_config(self) -> Any:
        """The backbone's config dataclass: preset (paper | tiny | YAML path) <- ``model_overrides``."""
        from actiongpt.models.registry import config_class

        cls = config_class(self.model)
        if self.preset in ("paper", "tiny"):
            base = cfglib.to_dict(getattr(cls, self.preset)())
        else:
            path = Path(self.preset)
            if not path.is_file():
                raise ConfigError(
                    f"preset: {self.preset!r} is neither 'paper', 'tiny' nor an existing YAML file"
                )
            base = cfglib.to_dict(cfglib.load(cls, [path]))
        return cfglib.from_dict(cls, cfglib.merge(base, self.model_overrides), where="model")

    @property
    def runtime(self) -> RuntimeConfig:
        """The process group's part of this config (``cluster.runtime.Runtime`` takes it)."""
        from cluster.runtime import RuntimeConfig

        return RuntimeConfig(self.backend, self.dist_timeout_s, tuple(self.signals))

    def resolved(self) -> TrainConfig:
        """A copy with the backbone's lr (of the model preset) / batch size / epochs filled in where unset.

        A model outside the registry (the tests' toy models) resolves when all three are set.
        """
        out = dataclasses.replace(self)
        unset = [name for name in ("lr", "batch_size", "epochs") if getattr(out, name) is None]
        if unset:
            from actiongpt.models.registry import BACKBONES

            spec = BACKBONES.get(self.model.lower())
            if spec is None:
                raise ConfigError(
                    f"{unset[0]}: no default for unknown model {self.model!r}; choose from "
                    f"{list(BACKBONES)} or set {', '.join(unset)}"
                )
            if out.lr is None:
                out.lr = float(self.model_config().lr)
            if out.batch_size is None:
                out.batch_size = spec.batch_size
            if out.epochs is None:
                out.epochs = spec.epochs
        assert out.lr is not None and out.batch_size is not None
        if out.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {out.lr}")
        if out.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {out.batch_size}")
        return out


def load_train_config(
    files: Sequence[str | Path], overrides: Sequence[str] = (), *, check_model: bool = True
) -> TrainConfig:
    """Config files (applied in order) + ``key=value`` overrides -> the resolved config of a training run.

    The one resolution every entry path uses, so the same arguments train the same run wherever they are
    given. The model must be a registered backbone and its preset and overrides must build, unless
    ``check_model`` is off (exporting a checkpoint reads only ``run_dir``).
    """
    from actiongpt.models.registry import backbone

    cfg = cfglib.load(TrainConfig, [Path(f) for f in files], list(overrides))
    if check_model:
        backbone(cfg.model)  # "unknown model 'gpt9'; choose from [...]"
        cfg.model_config()  # a bad preset or model override fails here, before any process starts
    return cfg.resolved()
