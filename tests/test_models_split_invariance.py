"""Each backbone's training step does not depend on how the global batch is split (issue 19).

Under a step context the micro-batches' losses are shares of the global-batch loss and every random draw
(latent noise, dropout, attention dropout) is keyed by (seed, step, sample key): the summed loss and the
summed gradient of a global batch run at once equal those of the same batch cut into uneven micro-batches
in another order, with dropout on.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from actiongpt.models import step_context as sc
from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.registry import build_model
from tests.models_batches import TEXT_DIM, identity_stats, pairs_batch, single_batch

CASES = {"temos": TemosConfig, "teach": TeachConfig, "motionclip": MotionClipConfig}


def _take(batch: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            t = v[idx]
            if k.startswith("motion"):  # re-pad to this micro-batch's longest sequence, as the loader does
                n = batch["lengths" + k[len("motion") :]][idx]
                t = t[:, : int(n.max())]
            out[k] = t
        else:
            out[k] = [v[i] for i in idx]
    return out


def _global(batch: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k, v in batch.items() if k.startswith("lengths") and torch.is_tensor(v)]
    return {
        "samples": len(batch["keys"]),
        "frames": {k: int(batch[k].sum()) for k in keys},
        "max_len": {k: int(batch[k].max()) for k in keys},
    }


def _step(model: torch.nn.Module, batch: dict[str, Any], parts: list[list[int]]) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    total = 0.0
    for idx in parts:
        micro = _take(batch, idx)
        with sc.active(sc.StepContext(seed=7, step=3, keys=micro["keys"], **_global(batch))):
            loss = model(micro)["loss"]
        loss.backward()
        total += float(loss.detach())
    return total, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", sorted(CASES))
def test_split_does_not_change_loss_or_gradient(name: str) -> None:
    torch.manual_seed(0)
    cfg = CASES[name].tiny()
    cfg.dropout = 0.2
    model = build_model(name, cfg, TEXT_DIM)
    identity_stats(model)
    assert sc.make_dropout_keyed(model) > 0
    model.train()
    if name == "teach":
        batch = pairs_batch(
            [16, 9, 12, 15, 7, 11, 14, 10], [18, 15, 8, 13, 12, 9, 16, 11], [3, 0, 2, 1, 0, 2, 1, 3]
        )
    else:
        batch = single_batch([24, 20, 9, 22, 13, 17, 11, 19])
    whole, g_whole = _step(model, batch, [list(range(8))])
    split, g_split = _step(model, batch, [[5, 0, 7], [2, 6, 1], [4, 3]])
    assert split == pytest.approx(whole, rel=1e-5)
    assert g_whole.keys() == g_split.keys()
    for n, g in g_whole.items():
        assert torch.allclose(g, g_split[n], rtol=1e-4, atol=1e-6), (n, (g - g_split[n]).abs().max())
    # a different step draws different noise and dropout masks
    with sc.active(sc.StepContext(seed=7, step=4, keys=batch["keys"], **_global(batch))):
        other = float(model(batch)["loss"].detach())
    assert other != pytest.approx(whole, rel=1e-6)


def test_without_a_context_the_losses_are_the_micro_batch_means() -> None:
    from actiongpt.models import losses as L

    out, target = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 3, 4])
    plain = L.recons_loss(out, target, lengths, "padded")
    ctx = sc.StepContext(
        seed=0, step=1, samples=3, frames={"lengths": 12}, max_len={"lengths": 5}, keys=["a", "b", "c"]
    )
    with sc.active(ctx):
        shared = L.recons_loss(out, target, lengths, "padded")
    assert torch.allclose(plain, shared)
