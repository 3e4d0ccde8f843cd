"""A tiny model of each backbone overfits a handful of samples, from Action-GPT and from baseline texts."""

from __future__ import annotations

import pytest
import torch

from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.registry import build_model
from tests.models_batches import TEXT_DIM, identity_stats, pairs_batch, single_batch

CASES = {"temos": TemosConfig, "teach": TeachConfig, "motionclip": MotionClipConfig}
# The term that shows the text side learnt (MotionCLIP's text only enters through the cosine alignment).
TEXT_TERM = {"temos": "recons_text2rfeats", "teach": "recons_text2rfeats_1", "motionclip": "text_cosine"}


def overfit(name: str, agpt: bool, steps: int = 300) -> list[dict[str, float]]:
    torch.manual_seed(0)
    cfg = CASES[name].tiny()
    cfg.dropout = 0.0
    model = build_model(name, cfg, TEXT_DIM)
    identity_stats(model)
    if name == "teach":
        batch = pairs_batch([16, 14, 12, 15], [18, 15, 16, 13], [3, 0, 2, 1], agpt=agpt)
    else:
        batch = single_batch([24, 20, 16, 22], agpt=agpt)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(steps):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in out.items()})
    return history


@pytest.mark.parametrize("agpt", [True, False], ids=["action-gpt", "baseline"])
@pytest.mark.parametrize("name", list(CASES))
def test_tiny_model_overfits(name, agpt):
    history = overfit(name, agpt)
    first = history[0]
    last = {k: sum(h[k] for h in history[-10:]) / 10 for k in history[-1]}
    assert last["loss"] < first["loss"] / 10, (first["loss"], last["loss"])
    term = TEXT_TERM[name]
    assert last[term] < first[term] / 3, (term, first[term], last[term])
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
