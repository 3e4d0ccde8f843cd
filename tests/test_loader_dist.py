"""Two ranks (real gloo processes) with DataLoader workers: equal batch counts, disjoint and complete epoch
coverage, identical continuation after save/restore mid-epoch, and a changed world size (2 -> 1, 1 -> 2)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from shards.loader import LoaderConfig, ShardLoader
from tests.dist_helpers.loader_ranks import epoch_save_resume, resume_from_states
from tests.dist_helpers.shards_data import build, make_source, make_store

pytestmark = pytest.mark.dist

N, BATCH, STOP = 90, 4, 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("dist")
    store = make_store(base / "emb")
    build(base / "shards", store, {"train": make_source(N, "train")}, shard_multiple=4, target_shard_mb=0.05)
    return base / "shards"


def _cfg(root: Path) -> dict:
    # fork: processes made by mp.spawn would otherwise spawn their DataLoader workers too (slow imports);
    # torchrun-launched ranks fork by default
    return LoaderConfig(
        root=str(root), batch_size=BATCH, num_workers=2, shuffle_buffer=6, seed=11, mp_context="fork"
    ).__dict__


def _flat(batches: list[list[str]]) -> list[str]:
    return [k for b in batches for k in b]


@pytest.fixture(scope="module")
def two_rank_run(root: Path, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("out")
    mp.spawn(epoch_save_resume, args=(2, _free_port(), _cfg(root), STOP, str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_equal_batch_counts_and_disjoint_complete_coverage(two_rank_run) -> None:
    refs = [r["reference"] for r in two_rank_run]
    assert two_rank_run[0]["counts"] == two_rank_run[1]["counts"] == [N // (2 * BATCH)] * 2
    keys = _flat(refs[0]) + _flat(refs[1])
    assert len(keys) == len(set(keys))  # disjoint, no repeats
    dropped = N - len(keys)
    assert 0 <= dropped < 2 * BATCH  # complete up to the documented drop_last tail
    assert set(keys) <= {s.key for s in make_source(N, "train").samples}


def test_save_restore_mid_epoch_gives_identical_continuation(two_rank_run) -> None:
    for r in two_rank_run:
        assert r["head"] == r["reference"][:STOP]
        assert r["tail"] == r["reference"][STOP:]
        assert r["state"]["position"] == STOP and r["state"]["plan"]["world"] == 2


def test_world_size_two_to_one_neither_repeats_nor_skips(root: Path, two_rank_run) -> None:
    states = [r["state"] for r in two_rank_run]
    loader = ShardLoader(LoaderConfig(**_cfg(root)), rank=0, world_size=1)
    loader.load_state_dict(states)
    tail = [b["keys"] for b in loader]
    seen = _flat(two_rank_run[0]["head"]) + _flat(two_rank_run[1]["head"]) + _flat(tail)
    assert len(seen) == len(set(seen))
    assert N - len(seen) < 1 * BATCH  # only the new plan's drop_last tail
    # a single state means "every rank consumed the same count" (lockstep): same result here
    single = ShardLoader(LoaderConfig(**_cfg(root)), rank=0, world_size=1)
    single.load_state_dict(states[0])
    assert [b["keys"] for b in single] == tail


def test_world_size_one_to_two(root: Path, tmp_path: Path) -> None:
    cfg = _cfg(root)
    one = ShardLoader(LoaderConfig(**cfg), rank=0, world_size=1)
    head = []
    for b in one:
        head.append(b["keys"])
        if len(head) == 7:
            break
    state = json.loads(json.dumps(one.state_dict()))
    mp.spawn(resume_from_states, args=(2, _free_port(), cfg, [state], str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"resumed{r}.json").read_text()) for r in range(2)]
    assert res[0]["len"] == res[1]["len"] > 0
    seen = _flat(head) + _flat(res[0]["tail"]) + _flat(res[1]["tail"])
    assert len(seen) == len(set(seen))
    assert N - len(seen) < 2 * BATCH
