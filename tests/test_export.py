"""Exports: ``model.safetensors`` + ``model.json``, loaded without any unpickling; older ``model.pt`` exports;
the one resolver of a model path and the one read of the weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from actiongpt.io_utils import file_sha256
from actiongpt.models.configs import TeachConfig
from actiongpt.models.registry import build_model
from cluster.eval_model import load_model, resolve_model
from cluster.export import (
    EXPORT_FORMAT,
    LEGACY_FORMAT,
    ExportError,
    load_export,
    meta_file,
    write_export,
)
from cluster.export import (
    main as export_main,
)
from tests.models_batches import realistic_stats

TEXT_DIM = 16
META = {"model": "teach", "preset": "tiny", "model_overrides": {}, "text_dim": TEXT_DIM, "step": 7}


def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("teach", TeachConfig.tiny(), TEXT_DIM)
    realistic_stats(model)
    return model.state_dict()


def test_an_export_loads_from_its_file_its_json_or_its_run_folder_without_unpickling(tmp_path, no_unpickling):
    state = tiny_state()
    weights = write_export(state, META, tmp_path / "run" / "model.safetensors")
    doc = json.loads(meta_file(weights).read_text())
    assert doc["format"] == EXPORT_FORMAT and doc["meta"] == META
    assert doc["weights"] == {
        "file": "model.safetensors",
        "bytes": weights.stat().st_size,
        "sha256": file_sha256(weights),
    }
    assert weights.read_bytes()[8:9] == b"{"  # a safetensors header (JSON), not a zip/pickle container
    for path in (tmp_path / "run", weights, meta_file(weights)):
        loaded = load_model(path)
        assert loaded.source == weights and loaded.meta == META and not loaded.model.training
        got = loaded.model.state_dict()
        assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state), path


def test_resolving_reads_only_the_json_and_loading_reads_the_weights_once(tmp_path, monkeypatch):
    weights = write_export(tiny_state(), META, tmp_path / "model.safetensors")
    reads: list[Path] = []
    real = load_export

    def counting(path, doc=None):
        reads.append(Path(path))
        return real(path, doc)

    monkeypatch.setattr("cluster.eval_model.load_export", counting)
    source = resolve_model(tmp_path)
    assert source.kind == "export" and source.meta["step"] == 7 and reads == []
    load_model(source)
    assert reads == [weights]


def test_a_damaged_or_incomplete_export_is_refused_naming_the_file(tmp_path, capsys):
    from launch.cli import main

    weights = write_export(tiny_state(), META, tmp_path / "model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"model\.safetensors: the weights do not match model\.json"):
        load_model(weights)
    assert main(["sample", "--checkpoint", str(tmp_path), "--text", "walk"]) == 2  # one line, no traceback
    err = capsys.readouterr().err
    assert "the weights do not match model.json" in err and "Traceback" not in err
    meta_file(weights).unlink()
    with pytest.raises(ExportError, match=r"its metadata file model\.json is missing"):
        load_model(weights)
    meta_file(weights).write_text('{"format": "something"}')
    with pytest.raises(ExportError, match="not an Action-GPT export"):
        resolve_model(tmp_path)
    with pytest.raises(ExportError, match=r"written as a \.safetensors file"):
        write_export({}, META, tmp_path / "model.pt")
    with pytest.raises(ExportError, match="plain JSON data"):
        write_export({}, {"step": object()}, tmp_path / "x.safetensors")


def test_an_older_model_pt_export_loads_tensors_only_with_a_note_and_converts(tmp_path, caplog, capsys):
    state = tiny_state()
    old = tmp_path / "model.pt"
    torch.save({"format": LEGACY_FORMAT, "model_state": state, "meta": META}, old)
    with caplog.at_level(logging.WARNING, logger="cluster.export"):
        loaded = load_model(tmp_path)
    assert loaded.source == old and loaded.meta == META
    assert f"python -m cluster.export {old}" in caplog.text
    assert export_main([str(old)]) == 0 and "model.safetensors" in capsys.readouterr().out
    source = resolve_model(tmp_path)  # the new export is preferred over the old file
    assert source.kind == "export" and source.path == tmp_path / "model.safetensors"
    got, meta = load_export(source.path)
    assert meta == META and all(torch.equal(got[k], state[k]) for k in state)
    torch.save({"format": "something"}, tmp_path / "x.pt")
    assert export_main([str(tmp_path / "x.pt")]) == 2
    assert "not an exported Action-GPT model" in capsys.readouterr().out
