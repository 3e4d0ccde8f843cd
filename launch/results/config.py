"""``ExperimentConfig`` (defaults in configs/results.yaml) and the list of training runs it implies.

The experiment is the paper's comparison at small scale: Table 1 (Default vs Action-GPT for every backbone,
several seeds), Table 2 (Action-GPT-TEACH with k = 1, 2, 4, 8), the zero-shot split, and (not in the paper)
the compact text aggregators for TEMOS/TEACH against the original per-position one. Its data stages
(dataset, description check, embeddings, shards) are the demo's, with every shipped description stored per
label (``store_k``) so that one shard build serves every k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actiongpt.config import ConfigError
from actiongpt.data.synth.config import SynthConfig
from actiongpt.models.registry import backbone
from actiongpt.text.aggregate import AGGREGATORS
from launch.demo.context import BACKBONES, SHIPPED_DESCRIPTIONS, SPLITS, DemoConfig, DemoEvalConfig

METHOD_TEXT = {"default": "label", "actiongpt": "descriptions"}  # TrainConfig.text_source per method


@dataclass
class ExperimentConfig:
    out: str = "runs/results"
    doc: str | None = None  # also copy results.md (and its picture) here, e.g. docs/results.md
    backbones: list[str] = field(default_factory=lambda: list(BACKBONES))
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    k: int = 4  # descriptions per label for Table 1 (the paper's)
    ablation_backbone: str | None = "teach"  # Table 2's backbone; None: no k ablation
    ablation_ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    # Action-GPT (k) with other aggregators than the original's. Backbones None: every one above with a token
    # text path (TEMOS, TEACH); [] (or no aggregators): no such runs
    compact_backbones: list[str] | None = None
    compact_aggregators: list[str] = field(default_factory=lambda: ["sentence_mean", "sentences"])
    store_k: int = 8  # descriptions embedded and stored per label (>= every k used)
    data: SynthConfig = field(default_factory=SynthConfig)
    descriptions: list[str] = field(default_factory=lambda: [SHIPPED_DESCRIPTIONS])
    embedder: str = "minilm"
    embeddings: str | None = None  # None: <out>/embeddings/<embedder>
    shards: str | None = None  # None: <out>/shards
    steps: dict[str, int] = field(default_factory=lambda: {"teach": 2000, "temos": 2000, "motionclip": 1000})
    nproc: int = 1  # ranks per training run (torchrun when > 1)
    jobs: int = 2  # training runs at the same time
    ckpt_every: int = 500
    log_every: int = 50
    train_overrides: list[str] = field(default_factory=list)  # more TrainConfig key=value for every run
    splits: list[str] = field(default_factory=lambda: ["val", "zeroshot"])
    eval_nproc: int = 2
    eval_base: dict[str, Any] = field(default_factory=dict)  # more EvalConfig fields for every evaluation
    # the contrastive text-motion evaluator every run is scored with (R-precision, FID, ...): training steps
    # of its one tiny model (seed of configs/train/evaluator.yaml); 0 = none, APE/AVE only
    evaluator_steps: int = 1500

    def __post_init__(self) -> None:
        unknown = sorted(set(self.backbones) - set(BACKBONES))
        if unknown or not self.backbones:
            raise ConfigError(f"backbones: {self.backbones!r}; choose from {list(BACKBONES)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: give one or more distinct seeds, got {self.seeds!r}")
        ks = [self.k, *(self.ablation_ks if self.ablation_backbone else [])]
        if min(ks) < 1 or max(ks) > self.store_k:
            raise ConfigError(f"k and ablation_ks must lie in 1..store_k={self.store_k}, got {ks}")
        if self.ablation_backbone is not None and self.ablation_backbone not in self.backbones:
            raise ConfigError(
                f"ablation_backbone: {self.ablation_backbone!r} is not among backbones {self.backbones}"
            )
        if self.compact_backbones is None:
            self.compact_backbones = [b for b in self.backbones if backbone(b).text == "tokens"]
        if self.compact_aggregators and self.compact_backbones:
            bad_agg = [a for a in self.compact_aggregators if a not in AGGREGATORS or a == "original"]
            if bad_agg or len(set(self.compact_aggregators)) != len(self.compact_aggregators):
                raise ConfigError(
                    f"compact_aggregators: {self.compact_aggregators!r}; give distinct ones from "
                    f"{[a for a in AGGREGATORS if a != 'original']} (the original is Table 1's run)"
                )
            bad_b = [
                b for b in self.compact_backbones if b not in self.backbones or backbone(b).text != "tokens"
            ]
            if bad_b:
                raise ConfigError(
                    f"compact_backbones: {bad_b} are not among backbones {self.backbones} or have no token "
                    "text path (MotionCLIP uses the pooled vector, which every aggregator averages alike)"
                )
        for b in self.backbones:
            if self.steps.get(b, 0) < 1:
                raise ConfigError(f"steps.{b}: must be >= 1 (got {self.steps.get(b)})")
        if self.evaluator_steps < 0:
            raise ConfigError(f"evaluator_steps: must be >= 0, got {self.evaluator_steps}")
        if self.nproc < 1 or self.jobs < 1 or self.eval_nproc < 1:
            raise ConfigError("nproc, jobs and eval_nproc must be >= 1")
        bad = sorted(set(self.splits) - set(SPLITS))
        if bad or not self.splits:
            raise ConfigError(f"splits: {self.splits!r}; choose from {list(SPLITS)}")

    def demo_config(self) -> DemoConfig:
        """The demo configuration whose data stages (data .. shards) this experiment reuses."""
        return DemoConfig(
            out=self.out,
            backbones=list(self.backbones),
            data=self.data,
            descriptions=list(self.descriptions),
            k=self.store_k,
            embedder=self.embedder,
            embeddings=self.embeddings,
            shards=self.shards,
            eval=DemoEvalConfig(splits=list(self.splits)),
        )


@dataclass(frozen=True)
class RunSpec:
    """One training run: a backbone, Default or Action-GPT (k descriptions, an aggregator), one seed."""

    backbone: str
    method: str  # "default" | "actiongpt"
    seed: int
    k: int | None = None  # Action-GPT only
    aggregator: str | None = None  # Action-GPT only; None = the original per-position mean

    @property
    def name(self) -> str:
        k = f"-k{self.k}" if self.method == "actiongpt" else ""
        agg = f"-{self.aggregator}" if self.aggregator else ""
        return f"{self.backbone}-{self.method}{k}{agg}-s{self.seed}"

    @property
    def label(self) -> str:
        """Row label: "Default", "Action-GPT k=4", "Action-GPT k=4 sentence_mean"."""
        if self.method == "default":
            return "Default"
        return f"Action-GPT k={self.k}" + (f" {self.aggregator}" if self.aggregator else "")


def planned_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Every training run, each once: Table 1's runs seed by seed (so that an early stop still leaves
    complete seeds), then the k ablation's extra runs (its k = ``cfg.k`` row is Table 1's run), then the
    compact aggregators' runs."""
    runs: list[RunSpec] = []
    for seed in cfg.seeds:
        for b in cfg.backbones:
            runs += [RunSpec(b, "default", seed), RunSpec(b, "actiongpt", seed, cfg.k)]
    if cfg.ablation_backbone:
        for seed in cfg.seeds:
            runs += [RunSpec(cfg.ablation_backbone, "actiongpt", seed, k) for k in cfg.ablation_ks]
    for seed in cfg.seeds:
        for b in cfg.compact_backbones or []:
            runs += [RunSpec(b, "actiongpt", seed, cfg.k, a) for a in cfg.compact_aggregators]
    seen: set[str] = set()
    unique = []
    for r in runs:
        if r.name not in seen:
            seen.add(r.name)
            unique.append(r)
    return unique


def run_dir(cfg: ExperimentConfig, spec: RunSpec) -> Path:
    return Path(cfg.out) / "runs" / spec.name


def eval_dir(cfg: ExperimentConfig, spec: RunSpec, split: str) -> Path:
    return Path(cfg.out) / "eval" / f"{spec.name}-{split}"
