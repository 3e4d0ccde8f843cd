"""``MotionBatch``: what collate builds, read by field or by the flat names; it survives DataLoader workers
and device moves as itself (not turned into a dict), and carries the samples' keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from actiongpt.models.batch import ActionTensors, MotionBatch
from cluster.engines.base import to_device
from cluster.loader_protocol import batch_size_of
from shards.collate import Prepared, collate


def samples(pairs: bool) -> list[Prepared]:
    rng = np.random.default_rng(0)
    out = []
    for i, n in enumerate((5, 9, 3)):
        motion = rng.standard_normal((n + 4, 135)).astype(np.float32)
        tokens = rng.standard_normal((i + 2, 8)).astype(np.float32)
        texts = [(tokens, rng.standard_normal(6).astype(np.float32))]
        out.append(Prepared(f"k{i}", motion, [n, 1, 3] if pairs else [n + 4], [f"a{i}", f"b{i}"], texts * 2))
    return out


def test_a_single_action_batch_by_field_and_by_name():
    batch = collate(samples(False), pairs=False)
    assert isinstance(batch, MotionBatch) and not batch.is_pairs and batch.size == 3
    (act,) = batch.actions
    assert batch.keys == batch["keys"] == ["k0", "k1", "k2"]
    assert act.motion.shape == (3, 13, 135) and act.lengths.tolist() == [9, 13, 7]
    assert act.text.shape == (3, 4, 8) and act.text_mask.sum(1).tolist() == [2, 3, 4]
    assert act.labels == ["a0", "a1", "a2"] and batch.transition_lengths is None
    assert list(batch) == ["keys", "motion", "lengths", "text", "text_mask", "text_pooled", "labels"]
    assert batch["motion"] is act.motion and "motion_0" not in batch and batch.get("motion_0") is None
    with pytest.raises(KeyError):
        batch["motion_0"]
    text = act.text_batch()
    assert text.tokens is act.text and text.pooled is act.text_pooled
    assert act.text_batch(pooled_only=True).tokens is None


def test_a_pair_batch_by_field_and_by_name():
    batch = collate(samples(True), pairs=True)
    assert batch.is_pairs and batch["transition_lengths"].tolist() == [1, 1, 1]
    first, second = batch.actions
    assert batch["motion_0"] is first.motion and batch["text_mask_1"] is second.text_mask
    assert first.lengths.tolist() == [5, 9, 3] and second.lengths.tolist() == [4, 4, 4]
    assert batch.sequence_lengths().tolist() == [[5, 4], [9, 4], [3, 4]]
    assert second.labels == ["b0", "b1", "b2"] and "motion" not in batch
    assert dict(batch.items())["labels_1"] == ["b0", "b1", "b2"]
    with pytest.raises(ValueError, match="transition_lengths"):
        MotionBatch(["k"], batch.actions)


class _Batches(IterableDataset):
    def __iter__(self):
        yield collate(samples(True), pairs=True)


def test_the_type_survives_dataloader_workers_and_device_moves():
    """The shard loader hands batches through a DataLoader (batch_size=None): a Mapping would come back
    as a plain dict; the batch must come back as itself, keys included."""
    (got,) = list(DataLoader(_Batches(), batch_size=None, num_workers=1, multiprocessing_context="fork"))
    want = collate(samples(True), pairs=True)
    assert isinstance(got, MotionBatch) and got.keys == want.keys
    assert all(torch.equal(got[name], want[name]) for name in want if isinstance(want[name], torch.Tensor))
    moved = to_device(got, torch.device("cpu"))
    assert isinstance(moved, MotionBatch) and batch_size_of(moved) == 3
    assert isinstance(moved.actions[0], ActionTensors) and torch.equal(moved["motion_1"], want["motion_1"])
