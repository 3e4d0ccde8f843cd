"""Shard build: format, manifest, determinism over builder counts, resume, crash safety, verify, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from actiongpt.text.embedding_store import EmbeddingStore
from shards.format import ShardError
from shards.loader import LoaderConfig, ShardLoader
from shards.manifest import Manifest
from shards.verify import verify_shards
from tests.dist_helpers.shards_data import LABELS, build, make_source, make_store

OPTS = {"shard_multiple": 4, "target_shard_mb": 0.02}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> EmbeddingStore:
    return make_store(tmp_path_factory.mktemp("emb"), k=4)


@pytest.fixture(scope="module")
def sources():
    return {"train": make_source(60, "train"), "val": make_source(17, "val")}


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("*"))
        if p.is_file() and p.name != "build_config.yaml"
    }


def test_build_writes_tar_shards_and_a_complete_manifest(tmp_path: Path, store, sources) -> None:
    res = build(tmp_path, store, sources, **OPTS)
    m = Manifest.load(tmp_path)
    assert res.manifest == tmp_path / "manifest.json" and m.splits == ["train", "val"]
    shards = m.shards("train")
    assert len(shards) % 4 == 0 and sum(m.counts("train")) == 60
    assert max(m.counts("train")) - min(m.counts("train")) <= 1
    assert m.text == {"storage": "table", "store": "individual", "k": 4, "aggregator": None}
    assert m.embedder["token_dim"] == 8 and m.data["motion"]["dtype"] == "float16"
    mean, std = m.stats()
    assert mean.shape == std.shape == (135,) and m.data["stats"]["split"] == "train"
    frames = np.concatenate(
        [sources["train"].load(i).motion.astype(np.float16).astype(np.float64) for i in range(60)]
    )
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, frames.std(0, ddof=1), rtol=1e-4)
    listing = subprocess.run(
        ["tar", "-tf", str(tmp_path / shards[0].name)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listing[:2] == ["s000000000.meta.json", "s000000000.motion.npy"]
    assert (tmp_path / "train-text-000000.tar").is_file()
    assert res.summary["train"]["per_sample_with_table"] > res.summary["train"]["per_sample_shards"] > 0
    assert verify_shards(tmp_path).ok


def test_same_bytes_for_any_number_of_builders(tmp_path: Path, store, sources) -> None:
    build(tmp_path / "one", store, sources, **OPTS)
    for part in (2, 0, 1):  # three builders, in any order; the last one writes the manifest
        res = build(tmp_path / "three", store, sources, part=part, num_parts=3, **OPTS)
    assert res.manifest is not None
    one, three = _digests(tmp_path / "one"), _digests(tmp_path / "three")
    assert one == three and "manifest.json" in one


def test_rerun_resumes_and_a_crash_leaves_no_whole_looking_shard(tmp_path: Path, store, sources) -> None:
    class Crash(RuntimeError):
        pass

    src = make_source(60, "train")
    real_load = src.load
    calls = {"n": 0}

    def flaky(i):
        calls["n"] += 1
        if calls["n"] == 25:
            raise Crash("builder killed")
        return real_load(i)

    src.load = flaky  # type: ignore[method-assign]
    with pytest.raises(Crash):
        build(tmp_path, store, {"train": src}, **OPTS)
    assert not (tmp_path / "manifest.json").exists()
    assert not list(tmp_path.glob(".*.tmp*"))  # the half-written shard was removed
    finished = len(list((tmp_path / ".build").glob("*.json")))  # shards and text-table parts done before
    src.load = real_load  # type: ignore[method-assign]
    res = build(tmp_path, store, {"train": src}, **OPTS)
    assert res.items_reused == finished and res.items_written == res.items_total - finished > 0
    ref = build(tmp_path / "ref", store, {"train": make_source(60, "train")}, **OPTS)
    assert ref.manifest is not None
    assert _digests(tmp_path) == _digests(tmp_path / "ref")


def _loader_keys_and_tensors(root: Path, **kw):
    cfg = LoaderConfig(root=str(root), batch_size=4, num_workers=0, **kw)
    return list(ShardLoader(cfg, rank=0, world_size=1))


def test_sample_and_table_storage_give_identical_batches(tmp_path: Path, store, sources) -> None:
    table = build(tmp_path / "table", store, {"train": sources["train"]}, text_storage="table", **OPTS)
    inline = build(tmp_path / "sample", store, {"train": sources["train"]}, text_storage="sample", **OPTS)
    # (sample storage makes bigger, hence more, shards: compare in stored order)
    a = _loader_keys_and_tensors(tmp_path / "table", k=3, aggregator="masked_mean", shuffle=False)
    b = _loader_keys_and_tensors(tmp_path / "sample", k=3, aggregator="masked_mean", shuffle=False)
    assert len(a) == len(b) == 15
    for x, y in zip(a, b):
        assert x["keys"] == y["keys"]
        for key in ("motion_0", "motion_1", "text_0", "text_mask_1", "text_pooled_1"):
            assert (x[key] == y[key]).all()
    assert table.summary["train"]["per_sample_shards"] < inline.summary["train"]["per_sample_shards"]


def test_aggregate_only_shards_equal_load_time_aggregation(tmp_path: Path, store, sources) -> None:
    build(tmp_path / "ind", store, {"train": sources["train"]}, text_store="individual", k=4, **OPTS)
    agg = build(
        tmp_path / "agg",
        store,
        {"train": sources["train"]},
        text_store="aggregate",
        k=4,
        aggregator="masked_mean",
        text_storage="sample",
        **OPTS,
    )
    a = _loader_keys_and_tensors(tmp_path / "ind", aggregator="masked_mean", shuffle=False)
    b = _loader_keys_and_tensors(tmp_path / "agg", shuffle=False)
    for x, y in zip(a, b):
        assert x["keys"] == y["keys"]
        assert (x["text_mask_0"] == y["text_mask_0"]).all()
        np.testing.assert_allclose(x["text_0"].numpy(), y["text_0"].numpy(), atol=1e-2)  # fp16 storage
        np.testing.assert_allclose(x["text_pooled_1"].numpy(), y["text_pooled_1"].numpy(), atol=1e-2)
    assert agg.manifest is not None
    with pytest.raises(ShardError, match="only the aggregate"):
        ShardLoader(LoaderConfig(root=str(tmp_path / "agg"), k=2), rank=0, world_size=1)
    with pytest.raises(ShardError, match="k = 5 requested"):
        ShardLoader(LoaderConfig(root=str(tmp_path / "ind"), k=5), rank=0, world_size=1)


# --- bad input --------------------------------------------------------------------------------------------


def test_label_without_descriptions_is_named(tmp_path: Path, store) -> None:
    src = make_source(10, "train", labels=[*LABELS, "dance"])
    with pytest.raises(ShardError, match="label 'dance' has no descriptions"):
        build(tmp_path, store, {"train": src}, **OPTS)


def test_non_finite_motion_is_named_by_shard_and_key(tmp_path: Path, store) -> None:
    src = make_source(12, "train")
    src.samples[5].motion[3, 7] = np.nan
    with pytest.raises(
        ShardError, match=r"shard train-\d{6}\.tar, sample s\d{9} \(key 'seq0005-train'\).*NaN"
    ):
        build(tmp_path, store, {"train": src}, **OPTS)


def test_non_finite_description_embedding_is_named(tmp_path: Path) -> None:
    st = make_store(tmp_path / "emb")
    tok = np.load(tmp_path / "emb" / "chunk-000000.tok.npy")
    tok[:] = np.inf
    np.save(tmp_path / "emb" / "chunk-000000.tok.npy", tok)
    with pytest.raises(ShardError, match="non-finite embedding for label"):
        build(tmp_path / "sh", EmbeddingStore(tmp_path / "emb"), {"train": make_source(10)}, **OPTS)
    del st


def _rewrite_member(path: Path, member: str, transform) -> None:
    """Rewrite one tar member in place (simulating corruption that keeps the tar readable)."""
    with tarfile.open(path) as tf:
        items = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for m, data in items:
            if m.name == member:
                data = transform(data)
                m.size = len(data)
            tf.addfile(m, io.BytesIO(data))


def test_verify_names_the_first_bad_sample(tmp_path: Path, store, sources) -> None:
    build(tmp_path, store, {"train": sources["train"]}, **OPTS)
    m = Manifest.load(tmp_path)
    bad = m.shards("train")[1]
    key = f"s{bad.first_id + 1:09d}"

    def poison(data: bytes) -> bytes:
        arr = np.load(io.BytesIO(data))
        arr[0, 0] = np.inf
        buf = io.BytesIO()
        np.save(buf, arr)
        return buf.getvalue()

    _rewrite_member(tmp_path / bad.name, f"{key}.motion.npy", poison)
    report = verify_shards(tmp_path, checksum=False)
    assert not report.ok
    assert f"shard {bad.name}, sample {key}" in report.first_problem and "NaN or Inf" in report.first_problem
    # with checksums the replaced file is caught before decoding
    assert (
        "sha256" in verify_shards(tmp_path).first_problem or "bytes" in verify_shards(tmp_path).first_problem
    )


def test_truncated_and_garbled_tars_are_reported_with_shard_and_key(tmp_path: Path, store, sources) -> None:
    build(tmp_path, store, {"train": sources["train"]}, **OPTS)
    m = Manifest.load(tmp_path)
    first, second = m.shards("train")[:2]
    data = (tmp_path / first.name).read_bytes()
    (tmp_path / first.name).write_bytes(data[: len(data) // 2 + 100])
    raw = bytearray((tmp_path / second.name).read_bytes())
    raw[700:900] = b"\xff" * 200  # inside the first member's data / the next header
    (tmp_path / second.name).write_bytes(bytes(raw))
    report = verify_shards(tmp_path, checksum=False)
    text = "\n".join(report.problems)
    assert f"shard {first.name}" in text and f"shard {second.name}" in text
    assert "after sample s" in text or "sample s" in text
    # the loader fails loudly on the same data, naming the shard
    with pytest.raises(ShardError, match=r"shard train-\d{6}\.tar"):
        list(
            ShardLoader(
                LoaderConfig(root=str(tmp_path), batch_size=4, num_workers=0, shuffle=False),
                rank=0,
                world_size=1,
            )
        )


def test_manifest_records_digests_and_bytes(tmp_path: Path, store, sources) -> None:
    build(tmp_path, store, sources, **OPTS)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["config_digest"] and data["embedder_digest"] == store.index["embedder_digest"]
    assert data["splits"]["train"]["dataset_digest"] != data["splits"]["val"]["dataset_digest"]
    per = data["splits"]["train"]["bytes"]
    assert per["per_sample_motion"] < per["per_sample_shards"]
