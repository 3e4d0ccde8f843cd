"""The real backbones train through the real entry point: ``torchrun --nproc_per_node=2 -m launch.train``.

Data: the embedded dataset's shards (``data/embedded/shards/{pairs,seg}-minilm``, or the folder named by
``ACTIONGPT_TEST_SHARDS`` holding ``pairs-minilm/`` and ``seg-minilm/``) when they have been built;
otherwise a small shard set built here with the shard writer from synthetic motions and a deterministic
hash embedder (``tests/dist_helpers/shards_data.py``), so the test runs on a fresh checkout. Either way the
tiny preset of each backbone trains 24 steps on 2 gloo ranks, and the training and validation losses must
fall; the exported model must load for evaluation.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest

from tests.dist_helpers import launch as L

pytestmark = pytest.mark.dist

EMBEDDED = Path(os.environ.get("ACTIONGPT_TEST_SHARDS", L.REPO / "data" / "embedded" / "shards"))
MODELS = {"temos": "seg", "teach": "pairs", "motionclip": "seg"}


@pytest.fixture(scope="module")
def shard_dirs(tmp_path_factory) -> dict[str, Path]:
    embedded = {mode: EMBEDDED / f"{mode}-minilm" for mode in ("pairs", "seg")}
    if all((p / "manifest.json").is_file() for p in embedded.values()):
        return embedded
    from tests.dist_helpers import shards_data as S

    root = tmp_path_factory.mktemp("shards")
    store = S.make_store(root / "emb")
    out = {}
    for mode in ("pairs", "seg"):
        pairs = mode == "pairs"
        sources = {
            "train": S.make_source(48, "train", pairs=pairs),
            "val": S.make_source(16, "val", pairs=pairs, seed=2),
        }
        S.build(root / mode, store, sources)
        out[mode] = root / mode
    return out


@pytest.mark.parametrize("model", sorted(MODELS))
def test_loss_falls_for_each_backbone_in_a_two_rank_run(
    model: str, shard_dirs: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = [
        "-c", f"configs/train/{model}.yaml", "-c", "configs/train/tiny.yaml",
        f"shards_dir={shard_dirs[MODELS[model]]}", f"run_dir={run}", "max_steps=24", "batch_size=4",
        "val_every=6", "val_batches=4", "ckpt_every=12", "progress=false", "tensorboard=false",
        "dist_timeout_s=120",
    ]  # fmt: skip
    res = L.run(L.torchrun_cmd(2, args, module="launch.train"), timeout=600)
    assert "finished" in res.stdout + res.stderr
    losses = L.losses(run)
    steps = sorted(losses)
    assert steps == list(range(1, 25)), steps
    first = statistics.mean(losses[s] for s in steps[:8])
    last = statistics.mean(losses[s] for s in steps[-8:])
    assert last < 0.95 * first, f"{model}: training loss did not fall ({first:.4f} -> {last:.4f})"
    val = L.train_records(run, kind="val")
    assert len(val) >= 2
    assert val[max(val)]["val_loss"] < val[min(val)]["val_loss"], f"{model}: validation loss did not fall"
    recs = L.train_records(run)
    assert all(r["world_size"] == 2 and r["samples"] == 8 for r in recs.values())

    from cluster.eval_model import load_model

    loaded = load_model(run / "model.safetensors")
    assert loaded.model.name == model and loaded.meta["step"] == steps[-1]
