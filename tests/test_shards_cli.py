"""``actiongpt shards verify`` / ``info``: exit codes and messages on good and damaged shards."""

from __future__ import annotations

import json
from pathlib import Path

from shards.manifest import Manifest
from tests.dist_helpers.shards_data import build, make_source, make_store, run_cli


def test_verify_and_info(tmp_path: Path, capsys) -> None:
    store = make_store(tmp_path / "emb")
    build(tmp_path / "sh", store, {"train": make_source(30)}, shard_multiple=2, target_shard_mb=0.05)
    assert run_cli(["shards", "verify", str(tmp_path / "sh"), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    assert run_cli(["shards", "info", str(tmp_path / "sh")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"]["train"]["samples"] == 30 and info["token_dim"] == 8
    shard = Manifest.load(tmp_path / "sh").shards("train")[0].name
    path = tmp_path / "sh" / shard
    path.write_bytes(path.read_bytes()[:-2048])
    assert run_cli(["shards", "verify", str(tmp_path / "sh"), "--no-progress"]) == 1
    assert f"shard {shard}" in capsys.readouterr().out
    assert run_cli(["shards", "verify", str(tmp_path / "nothing")]) == 2
    assert "manifest.json not found" in capsys.readouterr().err
