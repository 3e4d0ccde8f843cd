"""Round trip on the embedded dataset: generate it, embed with a real DistilBERT code path (real tokenizer,
tiny random weights loaded from a folder), build shards with the CLI, verify, read back with the loader, and
compare every sample with a direct computation (features from the AMASS files, the encoder run as the
original)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actiongpt.data.dataset import MotionDataset
from actiongpt.motion.features import feature_stats, rotations_to_features
from actiongpt.motion.rotations import axis_angle_to_matrix
from actiongpt.text.aggregate import AGGREGATORS, aggregate_padded
from actiongpt.text.embed_stage import run_embed_stage
from shards.loader import LoaderConfig, ShardLoader
from shards.manifest import Manifest
from tests.dist_helpers.shards_data import run_cli

K = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    from actiongpt.text.embedder_distilbert import DistilBertEmbedder
    from launch.cli import main

    root = tmp_path_factory.mktemp("roundtrip")
    sizes = ["sequences.train=6", "sequences.val=3", "sequences.test=1", "sequences.zeroshot=0", "seed=3"]
    assert main(["data", "synth", "--out", str(root / "data"), "--no-progress", *sizes]) == 0
    babel, amass = root / "data" / "babel", root / "data" / "amass"
    datasets = {s: MotionDataset(babel, amass, s, "pairs", progress=False) for s in ("train", "val")}
    labels = sorted({lab for ds in datasets.values() for r in ds.records for lab in (r.label_0, r.label_1)})
    rng = np.random.default_rng(0)
    words = [
        "the",
        "person",
        "lifts",
        "bends",
        "swings",
        "arms",
        "legs",
        "knees",
        "torso",
        "slowly",
        "forward",
        "back",
        "left",
        "right",
    ]
    descs = {
        lab: [f"{lab}: " + " ".join(rng.choice(words, size=int(rng.integers(4, 30)))) for _ in range(K)]
        for lab in labels
    }
    model_dir = root / "tiny-distilbert"
    tiny = DistilBertEmbedder.random_init("tiny", seed=1, device="cpu")
    tiny.model.save_pretrained(model_dir)
    tiny.tokenizer.save_pretrained(model_dir)
    embedder = DistilBertEmbedder.from_pretrained(model_dir, device="cpu")  # the real loading path
    run_embed_stage(descs, root / "emb", embedder, num_chunks=4, progress=False)
    out = root / "shards"
    rc = run_cli(
        [
            "shards",
            "build",
            "-c",
            "configs/shards/default.yaml",
            "--skip-embed",
            "--no-progress",
            f"out={out}",
            f"data.babel_dir={babel}",
            f"data.amass_dir={amass}",
            f"embed.out={root / 'emb'}",
            "embed.embedder=distilbert",
            f"embed.model={model_dir}",
            f"k={K}",
            "shard_multiple=2",
            "target_shard_mb=0.2",
        ]
    )
    assert rc == 0
    return {"out": out, "datasets": datasets, "descs": descs, "embedder": embedder}


def _direct_features(ds: MotionDataset) -> dict[str, np.ndarray]:
    out = {}
    for item in ds:
        rot = axis_angle_to_matrix(torch.from_numpy(np.asarray(item.poses, np.float32)))
        feats = rotations_to_features(rot, torch.from_numpy(np.asarray(item.trans, np.float32)), "original")
        out[item.key] = feats.numpy().astype(np.float16).astype(np.float32)  # stored as float16
    return out


def _direct_text(embedder, texts: list[str], method: str) -> tuple[np.ndarray, np.ndarray]:
    """As the original: tokenise the k descriptions padded together, run the encoder, average by position."""
    enc = embedder.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = embedder.model(**enc).last_hidden_state
    mask = enc["attention_mask"].bool()
    hidden = hidden * mask.unsqueeze(-1)  # we store no padding: pad positions count as zeros
    agg, union = aggregate_padded(hidden, mask, method)
    pooled = ((hidden.sum(1) / mask.sum(1, keepdim=True)).mean(0)).numpy()
    return agg[: int(union.sum())].numpy(), pooled


def test_verify_passes_and_every_sample_is_present(world) -> None:
    assert run_cli(["shards", "verify", str(world["out"]), "--no-progress"]) == 0
    m = Manifest.load(world["out"])
    for split, ds in world["datasets"].items():
        assert m.num_samples(split) == len(ds) > 0


def test_motion_and_statistics_match_direct_computation(world) -> None:
    m = Manifest.load(world["out"])
    direct = _direct_features(world["datasets"]["train"])
    mean, std = (t.numpy() for t in feature_stats(direct.values()))
    np.testing.assert_allclose(m.stats()[0], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.stats()[1], std, rtol=1e-4, atol=1e-5)
    cfg = LoaderConfig(root=str(world["out"]), batch_size=3, num_workers=0, shuffle=False, drop_last=False)
    seen = set()
    for batch in ShardLoader(cfg, rank=0, world_size=1):
        for i, key in enumerate(batch["keys"]):
            want = (direct[key] - m.stats()[0]) / (m.stats()[1] + 1e-12)
            l0, l1 = int(batch["lengths_0"][i]), int(batch["lengths_1"][i])
            assert l0 + l1 == want.shape[0]
            np.testing.assert_allclose(batch["motion_0"][i, :l0].numpy(), want[:l0], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(batch["motion_1"][i, :l1].numpy(), want[l0:], rtol=1e-4, atol=1e-4)
            seen.add(key)
    assert seen == set(direct)


@pytest.mark.parametrize("method", AGGREGATORS)
def test_text_matches_the_encoder_run_directly(world, method: str) -> None:
    cfg = LoaderConfig(
        root=str(world["out"]),
        split="val",
        batch_size=2,
        num_workers=0,
        shuffle=False,
        drop_last=False,
        aggregator=method,
    )
    batch = next(iter(ShardLoader(cfg, rank=0, world_size=1)))
    for j in (0, 1):
        label = batch[f"labels_{j}"][0]
        tok, pooled = _direct_text(world["embedder"], world["descs"][label], method)
        n = int(batch[f"text_mask_{j}"][0].sum())
        assert n == tok.shape[0]
        np.testing.assert_allclose(batch[f"text_{j}"][0, :n].numpy(), tok, atol=2e-2, rtol=1e-2)
        np.testing.assert_allclose(batch[f"text_pooled_{j}"][0].numpy(), pooled, atol=2e-2, rtol=1e-2)


def test_label_text_is_the_baseline_embedding(world) -> None:
    cfg = LoaderConfig(
        root=str(world["out"]),
        split="val",
        batch_size=2,
        num_workers=0,
        shuffle=False,
        drop_last=False,
        text_source="label",
    )
    batch = next(iter(ShardLoader(cfg, rank=0, world_size=1)))
    label = batch["labels_1"][1]
    ref = world["embedder"].embed([label])
    n = int(batch["text_mask_1"][1].sum())
    np.testing.assert_array_equal(batch["text_1"][1, :n].numpy(), ref.tokens[0].astype(np.float32))
