"""The contrastive text-motion evaluator (``model=evaluator``): its loss, and a tiny one trained by the real
entry point (``python -m launch.train``, the distributed trainer on one rank) on shards whose motions depend
on their label, then scored on val by ``actiongpt eval evaluator``'s function."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actiongpt.config import ConfigError
from actiongpt.models.evaluator import duplicate_mask, info_nce
from actiongpt.models.evaluator_config import EvaluatorConfig
from actiongpt.models.registry import build_model
from tests.dist_helpers import launch as L
from tests.dist_helpers.eval_toy import toy_motion


def test_info_nce_ignores_near_duplicate_texts_as_negatives() -> None:
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    text[1] = text[0]  # the same label twice in a batch
    motion = F.normalize(text + 0.3 * torch.randn(4, 8, generator=g), dim=-1)
    ignore = duplicate_mask(text, 0.9)
    assert ignore.tolist()[0] == [False, True, False, False] and not bool(ignore.diagonal().any())
    logits = text @ motion.T / 0.1
    masked = logits.masked_fill(ignore, float("-inf"))
    by_hand = 0.5 * sum(
        -(torch.log_softmax(m, 1).diagonal().mean()) for m in (masked, masked.T)
    )  # row i: text i against every motion but its duplicates'
    assert float(info_nce(text, motion, 0.1, ignore)) == pytest.approx(float(by_hand), rel=1e-6)
    assert float(info_nce(text, motion, 0.1, ignore)) < float(info_nce(text, motion, 0.1))


def test_evaluator_forward_backward_reaches_every_parameter() -> None:
    model = build_model("evaluator", EvaluatorConfig.tiny(), text_dim=8)
    b = 6
    batch = {
        "motion": torch.randn(b, 20, 135),
        "lengths": torch.tensor([20, 10, 5, 20, 7, 9]),
        "text": torch.randn(b, 4, 8),
        "text_mask": torch.ones(b, 4, dtype=torch.bool),
        "text_pooled": torch.randn(b, 6),
    }
    out = model(batch)
    assert set(out) >= {"loss", "t2m_top1"} and math.isfinite(float(out["loss"].detach()))
    out["loss"].backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    emb = model.embed_motion(batch["motion"], batch["lengths"])
    assert torch.allclose(emb.norm(dim=-1), torch.ones(b))


def _label_source(n: int, split: str, seed: int):
    """Single actions whose motion is the label's (a toy body per label) plus per-sample noise and length."""
    from shards.source import ListSource, SourceSample
    from tests.dist_helpers.shards_data import LABELS

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = LABELS[int(rng.integers(len(LABELS)))]
        length = int(rng.integers(20, 40))
        motion = toy_motion(label, length).numpy()
        motion = motion + 0.02 * rng.standard_normal(motion.shape).astype(np.float32)
        out.append(
            SourceSample(f"{split}-{i:04d}", motion, [label], [length], {"source": f"toy/{i}", "fps": 30.0})
        )
    return ListSource(out, split, "seg")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    from tests.dist_helpers import shards_data as S

    root = tmp_path_factory.mktemp("evaluator")
    store = S.make_store(root / "emb")
    S.build(root / "seg", store, {"train": _label_source(96, "train", 1), "val": _label_source(48, "val", 2)})
    run = root / "run"
    args = [
        "-c", "configs/train/evaluator.yaml", "-c", "configs/train/tiny.yaml",
        f"shards_dir={root / 'seg'}", f"run_dir={run}", "max_steps=60", "batch_size=16", "val_every=0",
        "ckpt_every=60", "progress=false", "tensorboard=false", "num_workers=0",
    ]  # fmt: skip
    res = L.run([sys.executable, "-m", "launch.train", *args], timeout=600)
    assert "finished" in res.stdout + res.stderr
    return root / "seg", run / "model.safetensors"


def test_a_trained_tiny_evaluator_retrieves_reference_motions_well_above_chance(trained) -> None:
    from cluster.eval_config import EvalConfig
    from cluster.eval_model import load_model
    from cluster.eval_retrieval import evaluator_quality

    shards, model = trained
    loaded = load_model(model)
    assert loaded.model.name == "evaluator" and loaded.meta["text_source"] == "label"
    cfg = EvalConfig(evaluator=str(model), shards_dir=str(shards), backend="gloo", batch_size=16)
    scores = evaluator_quality(cfg, ["val"])
    assert scores is not None
    val = scores["val"]
    chance = val["chance_top1"]  # 1/32: 8 labels, 31 distractors of other labels
    assert chance == pytest.approx(1 / 32)
    ref = val["reference"]
    # loose bound: 8 label-shaped motion families after 60 steps (measured: 1.0); untrained: near 1/32
    assert ref["t2m_R1"] > 5 * chance and ref["R_precision_top1"] > 5 * chance, ref
    assert ref["R_precision_top3"] >= ref["R_precision_top1"]


def test_eval_rejects_a_checkpoint_that_is_not_an_evaluator(trained, tmp_path: Path) -> None:
    from cluster.eval_retrieval import check_evaluator
    from shards.manifest import Manifest
    from tests.dist_helpers.eval_toy import export_tiny_model

    shards, _ = trained
    temos = export_tiny_model(shards, tmp_path / "temos.safetensors", name="temos")
    with pytest.raises(ConfigError, match="not a text-motion evaluator"):
        check_evaluator(str(temos), Manifest.load(shards))
    with pytest.raises(ConfigError, match="does not exist"):
        check_evaluator(str(tmp_path / "missing.safetensors"), Manifest.load(shards))
