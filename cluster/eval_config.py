"""``EvalConfig``: the one config dataclass of the evaluation stage (defaults = the original protocol), and
``CompareConfig``: several evaluations printed as one table (Table 1 / Table 2 layouts).

Original protocol (TEACH's ``teach/model/metrics/compute.py`` and ``eval.py``): BABEL val, one sample per
text, ``mmmns`` joints, the soft-min floor and the knees-and-elbows heading, TEACH pairs generated with
``slerp_ws 8`` and ``align full``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from actiongpt.config import ConfigError
from cluster.eval_metrics_config import RetrievalSettings


@dataclasses.dataclass
class EvalConfig:
    """``actiongpt eval run``: one checkpoint on one split with one text setting."""

    # --- what to evaluate
    checkpoint: str = ""  # exported model file, a checkpoint step directory, or a run directory
    shards_dir: str = "data/embedded/shards/pairs-minilm"
    split: str = "val"  # val (the original's), zeroshot, or any built split
    # Action-GPT descriptions | the baseline's raw label; None = what the checkpoint was trained with
    text_source: Literal["descriptions", "label"] | None = None
    # descriptions aggregated (the k ablation) and how (actiongpt.text.aggregate.AGGREGATORS); None: as the
    # checkpoint was trained (a baseline evaluated on descriptions: all the shards hold, "original")
    k: int | None = None
    aggregator: str | None = None
    # --- generation
    num_samples: int = 1  # generated motions per text (the original: 1)
    seed: int = 0  # global seed; each sample's seed = hash(seed, key, sample index)
    mean: bool = False  # decode the latent mean instead of sampling (MotionCLIP always does)
    fact: float = 1.0  # noise scale (the original's ``fact``)
    slerp_window: int | None = 8  # TEACH pairs: frames interpolated at the boundary
    align: Literal["full", "trajectory", "none"] = "full"
    yaw: Literal["original", "heading"] = "original"
    # --- scoring
    floor: str = "original"  # "original" (soft minimum, as published) | "min"
    heading: str = "original"  # "original" (knees and elbows, as published) | "hips_shoulders"
    body: Literal["bundled", "smplh"] = "bundled"  # skeleton for the joints
    smplh_path: str | None = None  # SMPL-H model file/folder when body = smplh
    gender: str = "male"
    # --- evaluator-based metrics (cluster.eval_retrieval): a model=evaluator checkpoint; the groups beside
    # APE/AVE (ape, retrieval, physics; None = all with an evaluator, else APE/AVE alone)
    evaluator: str = ""
    metrics: list[str] | None = None
    retrieval: RetrievalSettings = dataclasses.field(default_factory=RetrievalSettings)
    # --- execution
    batch_size: int = 64
    num_workers: int = 0
    bucket_batches: int = 8  # sort windows of batches by length: less padding, same samples
    max_batches: int = 0  # > 0: only this many batches per rank (a quick look; no completeness check)
    device: str = "auto"  # auto = cuda:<local rank> when available, else cpu
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    dist_timeout_s: float = 600.0
    progress: bool = True
    # --- outputs
    out_dir: str | None = None  # None: <run dir>/eval/<split>-<text>[-k<k>][-<aggregator>] (output_dir)
    renders: int = 4  # samples rendered (generated vs reference GIF + trajectory plot); 0 = none
    render_fps: float = 15.0
    model_label: str | None = None  # table row labels; default from the checkpoint (model) and text_source
    method_label: str | None = None

    def __post_init__(self) -> None:
        try:
            self.scoring()  # the evaluator's own settings check num_samples, floor and heading
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")
        for name in ("num_workers", "bucket_batches", "max_batches", "renders"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.k is not None and self.k < 1:
            raise ConfigError(f"k: must be >= 1, got {self.k}")
        if self.slerp_window is not None and self.slerp_window < 0:
            raise ConfigError(f"slerp_window: must be >= 0 or null, got {self.slerp_window}")
        if self.body == "smplh" and not self.smplh_path:
            raise ConfigError("smplh_path: required when body = smplh")
        if self.dist_timeout_s <= 0:
            raise ConfigError(f"dist_timeout_s: must be > 0, got {self.dist_timeout_s}")
        if self.render_fps <= 0:
            raise ConfigError(f"render_fps: must be > 0, got {self.render_fps}")

    def scoring(self) -> Any:
        """The evaluator's :class:`cluster.evaluator.EvalSettings` of this config."""
        from cluster.evaluator import EvalSettings

        return EvalSettings(
            seed=self.seed, num_samples=self.num_samples, floor=self.floor, heading=self.heading
        )

    def output_dir(self, text_source: str) -> str:
        """``out_dir``, else inside the checkpoint's run directory (ARCHITECTURE: runs/<name>/eval/...)."""
        if self.out_dir:
            return self.out_dir
        ckpt = Path(self.checkpoint)
        if ckpt.is_file():
            run = ckpt.parent
        elif ckpt.parent.name == "checkpoints":  # runs/<name>/checkpoints/step-N
            run = ckpt.parent.parent
        else:
            run = ckpt
        name = f"{self.split}-{text_source}" + (f"-k{self.k}" if self.k is not None else "")
        name += f"-{self.aggregator}" if self.aggregator else ""
        return str(run / "eval" / name)

    def method(self, text_source: str | None = None) -> str:
        """Row label of the text setting: the paper's "Default" (raw label) or "Action-GPT" (with k)."""
        if self.method_label:
            return self.method_label
        if (text_source or self.text_source) == "label":
            return "Default"
        return "Action-GPT" if self.k is None else f"Action-GPT (k = {self.k})"


@dataclasses.dataclass
class CompareRow:
    """One evaluation of a comparison: ``overrides`` of EvalConfig fields (checkpoint, text_source, k...)."""

    name: str  # sub-folder of the comparison's out_dir
    group: str = ""  # first table column (model / component); default: the checkpoint's model
    label: str = ""  # second column (method / setting); default: EvalConfig.method()
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class CompareConfig:
    """``actiongpt eval compare``: evaluate every row (``base`` + the row's overrides) and print one table."""

    out_dir: str = "runs/eval/compare"
    base: dict[str, Any] = dataclasses.field(default_factory=dict)  # EvalConfig fields shared by the rows
    rows: list[CompareRow] = dataclasses.field(default_factory=list)
    headers: tuple[str, str] = ("model", "method")  # Table 1; Table 2 uses ("component", "setting")
    reuse: bool = True  # keep a row's metrics.json when it was made with the same resolved config
    digits: int = 3

    def __post_init__(self) -> None:
        if not self.rows:
            raise ConfigError("rows: a comparison needs at least one row")
        names = [r.name for r in self.rows]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"rows: duplicate row names {dup}")
        for r in self.rows:
            if not r.name or "/" in r.name or r.name.startswith("."):
                raise ConfigError(f"rows: name {r.name!r} must be a plain folder name")
