"""The demo's configuration (``DemoConfig``, defaults in configs/demo.yaml), run context and stage type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actiongpt.config import ConfigError
from actiongpt.data.synth.config import SynthConfig
from actiongpt.models.registry import backbone

SHIPPED_DESCRIPTIONS = "actiongpt/assets/descriptions/embedded_smollm2.jsonl"
BACKBONES = ("motionclip", "temos", "teach")  # the paper's Table 1 order
SPLITS = ("train", "val", "test", "zeroshot")  # every split of the embedded dataset
# The shard layout each backbone trains on (its registry record: TEACH pairs, the others single actions).
LAYOUT = {b: backbone(b).shard_mode for b in BACKBONES}
METHODS = {"actiongpt": ("descriptions", "Action-GPT"), "default": ("label", "Default")}


@dataclass
class DemoTrainConfig:
    """Training of the demo's runs: per backbone one Action-GPT and one Default (raw label) run, each
    ``configs/train/<backbone>.yaml`` + ``configs/train/tiny.yaml`` + these settings, on ``nproc`` ranks."""

    nproc: int = 2
    # optimizer steps per run; chosen so that the whole TEACH demo stays under 10 min on 2 cores
    steps: dict[str, int] = field(default_factory=lambda: {"teach": 400, "temos": 600, "motionclip": 200})
    # the contrastive text-motion evaluator (R-precision, FID, ...): steps; 0 = none (APE/AVE only)
    evaluator_steps: int = 300
    ckpt_every: int = 100  # an interrupted demo resumes from here
    log_every: int = 100
    val_every: int = 0  # the eval stage measures the models; 0 keeps training fast
    overrides: list[str] = field(default_factory=list)  # more TrainConfig ``key=value`` for every run


@dataclass
class DemoEvalConfig:
    """Evaluation of every run on ``splits`` (one ``actiongpt eval compare`` on ``nproc`` ranks)."""

    nproc: int = 2
    splits: list[str] = field(default_factory=lambda: ["val", "zeroshot"])
    renders: int = 3  # generated-vs-reference GIFs per evaluation (the same samples for both methods)
    base: dict[str, Any] = field(default_factory=dict)  # more EvalConfig fields for every row


@dataclass
class DemoConfig:
    """The demo's settings. ``data`` is the embedded dataset's generator config (``data.out``: its folder);
    ``embeddings``/``shards`` default to folders inside ``out`` so that a run folder holds everything."""

    out: str = "runs/demo"
    backbones: list[str] = field(default_factory=lambda: ["teach"])
    data: SynthConfig = field(default_factory=SynthConfig)
    descriptions: list[str] = field(default_factory=lambda: [SHIPPED_DESCRIPTIONS])
    k: int = 4  # descriptions per label (the paper's)
    embedder: str = "minilm"
    embeddings: str | None = None  # None: <out>/embeddings/<embedder>
    shards: str | None = None  # None: <out>/shards (holds pairs-<embedder>/ and seg-<embedder>/)
    train: DemoTrainConfig = field(default_factory=DemoTrainConfig)
    eval: DemoEvalConfig = field(default_factory=DemoEvalConfig)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.backbones) - set(BACKBONES))
        if unknown or not self.backbones:
            raise ConfigError(f"backbones: {self.backbones!r}; choose from {list(BACKBONES)}")
        if self.k < 1:
            raise ConfigError(f"k: must be >= 1, got {self.k}")
        if not self.descriptions:
            raise ConfigError("descriptions: name at least one description cache")
        for b in self.backbones:
            if self.train.steps.get(b, 0) < 1:
                raise ConfigError(f"train.steps.{b}: must be >= 1 (got {self.train.steps.get(b)})")
        if self.train.nproc < 1 or self.eval.nproc < 1:
            raise ConfigError("train.nproc and eval.nproc must be >= 1")
        bad = sorted(set(self.eval.splits) - set(SPLITS))
        if bad or not self.eval.splits:
            raise ConfigError(f"eval.splits: {self.eval.splits!r}; choose from {list(SPLITS)}")


@dataclass
class DemoContext:
    """One invocation of the demo: the config, the stages to force, and results passed between stages."""

    cfg: DemoConfig
    redo: set[str] = field(default_factory=set)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def data_dir(self) -> Path:
        return Path(self.cfg.data.out)

    @property
    def backbones(self) -> list[str]:
        """The chosen backbones in Table 1's order."""
        return [b for b in BACKBONES if b in self.cfg.backbones]

    @property
    def layouts(self) -> list[str]:
        """The shard layouts the chosen backbones need (``pairs`` and/or ``seg``)."""
        return sorted({LAYOUT[b] for b in self.backbones})

    @property
    def embeddings_dir(self) -> Path:
        return Path(self.cfg.embeddings or self.out / "embeddings" / self.cfg.embedder)

    def shards_dir(self, layout: str) -> Path:
        return Path(self.cfg.shards or self.out / "shards") / f"{layout}-{self.cfg.embedder}"

    def run_dir(self, backbone: str, method: str) -> Path:
        return self.out / "runs" / f"{backbone}-{method}"

    @property
    def configs_dir(self) -> Path:
        """The resolved config of every command the demo runs (rerun one stage by hand with ``-c``)."""
        return self.out / "configs"

    @property
    def eval_dir(self) -> Path:
        return self.out / "eval"

    def inside_out(self, path: Path) -> bool:
        """Whether ``path`` lies inside the run folder (only such outputs are deleted by ``--redo``)."""
        try:
            path.resolve().relative_to(self.out.resolve())
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class Stage:
    """One step of the demo: ``done`` says whether earlier work can be reused, ``run`` does the work,
    ``show`` prints the earlier result when the stage is skipped."""

    name: str
    help: str
    run: Callable[[DemoContext], None]
    done: Callable[[DemoContext], bool]
    show: Callable[[DemoContext], None] | None = None
