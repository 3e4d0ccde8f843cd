"""DeepSpeed engine: ZeRO stages 0-3 with DeepSpeed's native checkpoints.

On CPU it is configured to need no JIT-compiled op: the shared-memory comm op is switched off (plain gloo
collectives instead, saving an ~85 s build) and AdamW runs as ``torch_adam`` (saving the ~135 s
``fused_adam`` build). The train state travels in DeepSpeed's ``client_state``; DeepSpeed writes that only
from rank 0, so the trainer gathers every rank's loader and RNG state into it first.

A ZeRO checkpoint cannot be loaded at another data-parallel size; the trainer converts it to a universal
checkpoint first (``cluster.ds_universal``) and this engine then loads it with ``load_universal``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cluster.engines.base import Engine, decode_train_state, encode_train_state, scalar_terms, to_device
from cluster.process_group import ProcessGroupInfo
from cluster.train_config import TrainConfig

log = logging.getLogger(__name__)

DS_TAG = "ds"
UNIVERSAL_TAG = "ds_universal"
CLIENT_KEY = "actiongpt_train_state"


def disable_jit_ops_on_cpu() -> None:
    """Keep DeepSpeed from JIT-compiling its shared-memory comm op on CPU (an ~85 s build; gloo is used)."""
    if torch.cuda.is_available():
        return
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def ds_config(cfg: TrainConfig, precision: str, accum: int, world_size: int, load_universal: bool) -> dict:
    """The DeepSpeed config for ``cfg`` (micro batch per rank, accumulation, ZeRO stage, AdamW)."""
    assert cfg.batch_size is not None and cfg.lr is not None
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": accum,
        "train_batch_size": cfg.batch_size * accum * world_size,
        "gradient_clipping": float(cfg.grad_clip),
        "zero_optimization": {"stage": cfg.zero_stage},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": list(cfg.betas),
                "eps": cfg.eps,
                "weight_decay": cfg.weight_decay,
                # torch's AdamW: no fused_adam JIT build, and the same update rule as the DDP engine.
                "torch_adam": True,
            },
        },
        "steps_per_print": 2**31 - 1,  # our trainer logs
        "wall_clock_breakdown": False,
        "checkpoint": {"load_universal": load_universal},
    }
    if precision in ("bf16", "fp16"):
        # torch autocast (fp32 master weights, half-precision matmuls) rather than DeepSpeed's bf16/fp16
        # modes, which cast the model and would need every float input of the batch cast to match. Under
        # ZeRO-0 with fp16 DeepSpeed adds a GradScaler itself. (GPU path: not exercisable on CPU machines.)
        config["torch_autocast"] = {
            "enabled": True,
            "dtype": "bfloat16" if precision == "bf16" else "float16",
        }
    return config


class DeepSpeedEngine(Engine):
    name = "deepspeed"

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        pg: ProcessGroupInfo,
        accum: int,
        load_universal: bool = False,
    ):
        super().__init__(model, cfg, pg, accum)
        disable_jit_ops_on_cpu()
        import deepspeed

        # DeepSpeed's ZeRO calls a torch collective under its deprecated name on every step.
        warnings.filterwarnings(
            "ignore", message=".*all_gather_into_tensor.* is deprecated", category=FutureWarning
        )
        # The process group already exists (cluster.process_group); DeepSpeed wraps it.
        deepspeed.init_distributed(dist_backend=pg.backend, timeout=dt.timedelta(seconds=pg.timeout_s))
        self.load_universal = load_universal
        self.config = ds_config(cfg, self.precision, accum, pg.env.world_size, load_universal)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        self.ds, self._optimizer, _, _ = deepspeed.initialize(
            model=model, model_parameters=params, config=self.config
        )
        self._module = self.ds.module

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    def forward_backward(
        self, batch: Mapping[str, Any], last_micro: bool, loss_factor: float | None = None
    ) -> dict[str, torch.Tensor]:
        batch = to_device(batch, self.device)
        out = self.ds(batch)
        terms = scalar_terms(out)
        if loss_factor is None:
            self.ds.backward(out["loss"])  # DeepSpeed divides by gradient_accumulation_steps itself
        else:
            self.ds.backward(out["loss"] * loss_factor, scale_wrt_gas=False)
        if not last_micro:
            self.ds.step()  # only advances DeepSpeed's micro-step counter off the accumulation boundary
        return terms

    def _own_grad_norm(self) -> float:
        grads = [p.grad for p in self.module.parameters() if p.grad is not None]
        if not grads:
            return math.nan
        return float(
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        )

    def step(self, lr: float) -> float:
        if not self.ds.is_gradient_accumulation_boundary():
            raise RuntimeError("DeepSpeed engine out of step with the trainer's accumulation")
        for group in self._optimizer.param_groups:
            group["lr"] = lr
        # Without ZeRO and without clipping DeepSpeed computes no norm; the gradients are already
        # all-reduced by backward() at the boundary, so compute it the same way the DDP engine does.
        own = self._own_grad_norm() if self.cfg.zero_stage == 0 else None
        self.ds.step()
        norm = self.ds.get_global_grad_norm()
        if norm is None:
            return own if own is not None else math.nan
        return float(norm)

    # --- checkpoints
    def save(self, path: Path, train_state: Mapping[str, Any]) -> None:
        client = {CLIENT_KEY: encode_train_state(train_state).decode()}
        ok = self.ds.save_checkpoint(str(path), tag=DS_TAG, client_state=client, save_latest=True)
        if ok is False:
            raise RuntimeError(f"DeepSpeed failed to save a checkpoint into {path}")

    def load(self, path: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
        tag = UNIVERSAL_TAG if self.load_universal else DS_TAG
        load_path, client = self.ds.load_checkpoint(
            str(path), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=False
        )
        if load_path is None or not client or CLIENT_KEY not in client:
            raise ValueError(f"{path}/{tag}: DeepSpeed could not load the checkpoint or its train state")
        return decode_train_state(client[CLIENT_KEY].encode(), f"{path}/{tag}")
