"""The stateful loader in one process: batch schema, DataLoader workers, exact resume, text choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from actiongpt.text.aggregate import aggregate_tokens
from shards.loader import LoaderConfig, ShardLoader
from shards.manifest import Manifest
from tests.dist_helpers.shards_data import build, make_source, make_store


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("loader")
    store = make_store(root / "emb", k=4)
    build(root / "pairs", store, {"train": make_source(70, "train")}, shard_multiple=4, target_shard_mb=0.03)
    build(
        root / "seg",
        store,
        {"train": make_source(50, "train", pairs=False)},
        shard_multiple=2,
        target_shard_mb=0.03,
    )
    return root, store


def _keys(batches) -> list[list[str]]:
    return [b["keys"] for b in batches]


def _cfg(root: Path, **kw) -> LoaderConfig:
    base = {"root": str(root), "batch_size": 4, "num_workers": 2, "shuffle_buffer": 5, "seed": 3}
    return LoaderConfig(**{**base, **kw})


def test_pair_batch_schema_and_normalisation(shards) -> None:
    root, _ = shards
    loader = ShardLoader(_cfg(root / "pairs", num_workers=0, shuffle=False), rank=0, world_size=1)
    b = next(iter(loader))
    assert b["motion_0"].dtype == torch.float32 and b["motion_0"].shape[-1] == 135
    assert b["lengths_0"].dtype == torch.int64 and b["transition_lengths"].dtype == torch.int64
    assert b["text_0"].shape[:2] == b["text_mask_0"].shape and b["text_mask_0"].dtype == torch.bool
    assert b["text_pooled_1"].shape == (4, 6) and len(b["keys"]) == 4 and "_0" not in b["keys"][0]
    # padded frames are zero, valid frames normalised with the manifest's train statistics
    m = Manifest.load(root / "pairs")
    mean, std = m.stats()
    src = make_source(70, "train")
    sample = next(s for s in src.samples if s.key == b["keys"][0])
    full = (sample.motion.astype(np.float16).astype(np.float32) - mean) / (std + 1e-12)
    l0 = sample.lengths[0]
    np.testing.assert_allclose(b["motion_0"][0, :l0].numpy(), full[:l0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        b["motion_1"][0, : int(b["lengths_1"][0])].numpy(), full[l0:], rtol=1e-5, atol=1e-5
    )
    assert int(b["lengths_1"][0]) == sample.lengths[1] + sample.lengths[2]
    assert (b["motion_0"][0, l0:] == 0).all()


def test_text_choice_k_aggregator_and_label(shards) -> None:
    root, store = shards
    cfg = _cfg(root / "seg", num_workers=0, shuffle=False, batch_size=5)
    by_k = {
        k: next(iter(ShardLoader(LoaderConfig(**{**cfg.__dict__, "k": k}), rank=0, world_size=1)))
        for k in (1, 4)
    }
    label_b = next(
        iter(ShardLoader(LoaderConfig(**{**cfg.__dict__, "text_source": "label"}), rank=0, world_size=1))
    )
    label = by_k[1]["labels"][0]
    emb = store.get(label)
    for k, b in by_k.items():
        want = aggregate_tokens(emb.desc_tokens[:k], "original")
        n = int(b["text_mask"][0].sum())
        assert n == want.shape[0]
        np.testing.assert_allclose(b["text"][0, :n].numpy(), want, atol=1e-6)
        np.testing.assert_allclose(
            b["text_pooled"][0].numpy(), emb.desc_pooled[:k].astype(np.float32).mean(0), atol=1e-6
        )
    n = int(label_b["text_mask"][0].sum())
    np.testing.assert_array_equal(label_b["text"][0, :n].numpy(), emb.label_tokens.astype(np.float32))


def test_epoch_has_no_repeats_and_reshuffles(shards) -> None:
    root, _ = shards
    loader = ShardLoader(_cfg(root / "pairs"), rank=0, world_size=1)
    e0 = _keys(loader)
    e1 = _keys(loader)  # the next iter() starts epoch 1
    flat0 = [k for b in e0 for k in b]
    assert len(e0) == len(e1) == 70 // 4 and len(flat0) == len(set(flat0)) == 68
    assert e0 != e1
    loader.set_epoch(0)
    assert _keys(loader) == e0


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("extra", [{}, {"bucket_batches": 3}, {"num_workers": 0}, {"num_workers": 3}])
def test_resume_mid_epoch_continues_exactly(shards, extra) -> None:
    root, _ = shards
    cfg = _cfg(root / "pairs", **extra)
    full = ShardLoader(cfg, rank=0, world_size=1)
    reference = [b for _ in range(2) for b in full]  # two whole epochs
    for stop in (1, len(reference) // 2 + 3):  # inside epoch 0, and inside epoch 1
        first = ShardLoader(cfg, rank=0, world_size=1)
        got = []
        while len(got) < stop:
            for b in first:
                got.append(b)
                if len(got) == stop:
                    break
        state = first.state_dict()
        resumed = ShardLoader(cfg, rank=0, world_size=1)
        resumed.load_state_dict(state)
        while len(got) < len(reference):
            got.extend(resumed)
        assert _keys(got) == _keys(reference)
    for x, y in zip(got, reference):
        assert torch.equal(x["motion_1"], y["motion_1"]) and torch.equal(x["text_0"], y["text_0"])


def test_state_mismatch_is_refused(shards) -> None:
    root, _ = shards
    state = ShardLoader(_cfg(root / "pairs"), rank=0, world_size=1).state_dict()
    other = ShardLoader(_cfg(root / "pairs", seed=4), rank=0, world_size=1)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)


def test_set_epoch_restarts_the_epoch_and_len_counts_remaining_batches(shards) -> None:
    root, _ = shards
    loader = ShardLoader(_cfg(root / "pairs", num_workers=0), rank=0, world_size=1)
    full = _keys(loader)
    loader.set_epoch(0)
    it = iter(loader)
    next(it), next(it)
    assert len(loader) == len(full) - 2 and loader.state_dict()["position"] == 2
    loader.set_epoch(0)  # the protocol: start epoch 0 from its beginning
    assert _keys(loader) == full
