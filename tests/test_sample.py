"""``actiongpt sample``: phrase -> descriptions (cache, backend on a miss) -> embeddings -> motion."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from actiongpt.models.configs import TeachConfig, TemosConfig
from actiongpt.models.registry import build_model
from actiongpt.text.embedders import TextEmbeddings
from actiongpt.text.phrase_embed import CacheFirstDescriber, PhraseError, make_embed_fn
from cluster.export import write_export
from launch.cli import main
from launch.commands.sample import SHIPPED_CACHE
from tests.models_batches import realistic_stats

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEXT_DIM = 384  # all-MiniLM-L6-v2, the embedded setup's embedder
SHIPPED_LABEL = "about face"  # in the shipped cache, 8 descriptions


def export_tiny(path: Path, name: str, **meta: object) -> Path:
    """A tiny untrained backbone written exactly as ``cluster.export`` writes a model file."""
    torch.manual_seed(0)
    cfg_cls = {"temos": TemosConfig, "teach": TeachConfig}[name]
    model = build_model(name, cfg_cls.tiny(), TEXT_DIM)
    realistic_stats(model)
    full_meta = {"model": name, "preset": "tiny", "model_overrides": {}, "text_dim": TEXT_DIM, "step": 0}
    full_meta.update({"embedder": "all-MiniLM-L6-v2", "text_source": "descriptions", **meta})
    return write_export(model.state_dict(), full_meta, path)


def raw_describe_yaml(path: Path) -> Path:
    path.write_text("backend: raw\nk: 2\n")
    return path


def test_sample_shipped_phrase_writes_gif_and_npz(tmp_path, capsys, no_unpickling):
    ckpt = export_tiny(tmp_path / "model.safetensors", "temos", k=4)
    out = tmp_path / "samples"
    shipped_before = Path(SHIPPED_CACHE).read_bytes()
    rc = main(
        ["sample", "--checkpoint", str(ckpt), "--text", "About  Face", "--seconds", "2", "--out", str(out)]
    )
    assert rc == 0
    gif, npz = out / "about_face.gif", out / "about_face.npz"
    assert gif.stat().st_size > 0 and str(gif) in capsys.readouterr().out
    data = np.load(npz)
    assert data["features"].shape == (60, 135)
    assert data["rotmats"].shape == (60, 22, 3, 3) and data["trans"].shape == (60, 3)
    assert data["joints"].shape == (60, 22, 3) and np.isfinite(data["joints"]).all()
    from PIL import Image

    assert Image.open(gif).n_frames > 1
    assert not (out / "descriptions.jsonl").exists()  # a hit needs no backend and no user cache
    assert Path(SHIPPED_CACHE).read_bytes() == shipped_before


def test_sample_miss_uses_backend_and_user_cache(tmp_path):
    ckpt = export_tiny(tmp_path / "model.safetensors", "teach")
    out = tmp_path / "samples"
    yaml = raw_describe_yaml(tmp_path / "raw.yaml")
    argv = ["sample", "--checkpoint", str(ckpt), "--out", str(out), "--describe-config", str(yaml)]
    argv += ["--text", "act like a dog", "--text", SHIPPED_LABEL, "--seconds", "1", "--seconds", "0.5"]
    assert main(argv) == 0
    # TEACH: the two phrases are one sequence of 30 + 15 frames
    data = np.load(out / "act_like_a_dog_then_about_face.npz")
    assert data["joints"].shape == (45, 22, 3) and list(data["starts"]) == [0, 30]
    assert (out / "act_like_a_dog_then_about_face.gif").exists()
    records = [json.loads(line) for line in (out / "descriptions.jsonl").read_text().splitlines()]
    assert sorted((r["label"], r["i"], r["text"]) for r in records) == [
        ("act like a dog", 0, "act like a dog"),
        ("act like a dog", 1, "act like a dog"),
    ]
    # A second run finds the phrase in the user cache: the backend is not asked again.
    assert main([*argv, "--seed", "1"]) == 0
    assert len((out / "descriptions.jsonl").read_text().splitlines()) == 2


def test_sample_errors(tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(tmp_path / "nope.pt"), "--text", "walk"]) == 2
    assert "nope.pt does not exist" in capsys.readouterr().err
    ckpt = export_tiny(tmp_path / "model.safetensors", "temos")
    yaml = tmp_path / "openai.yaml"  # an LLM that cannot be reached: no key
    yaml.write_text("backend: openai\nopenai:\n  model: m\n  api_key_env: ACTIONGPT_TEST_UNSET_KEY\n")
    argv = ["sample", "--checkpoint", str(ckpt), "--text", "moonwalk backwards", "--out", str(tmp_path / "o")]
    assert main([*argv, "--describe-config", str(yaml)]) == 2
    err = capsys.readouterr().err
    assert "moonwalk backwards" in err and "actiongpt describe run" in err
    # The baseline embeds the phrase itself: no descriptions needed.
    assert main([*argv, "--text-source", "label", "--seconds", "0.5"]) == 0
    assert np.load(tmp_path / "o" / "moonwalk_backwards.npz")["joints"].shape[0] == 15


class FakeEmbedder:
    """Token i of a text = its word count; 2 tokens + one per word: checks what is embedded and aggregated."""

    def embed(self, texts, batch_size=32, progress=False):
        toks = [np.full((2 + len(t.split()), 3), float(len(t.split())), np.float16) for t in texts]
        return TextEmbeddings(toks, np.stack([t[0] for t in toks]))


def test_make_embed_fn_aggregates_first_k_descriptions():
    table = {"jump": ["one", "two words", "three words here"]}
    fn = make_embed_fn(lambda phrases: table, FakeEmbedder(), k=2, aggregator="masked_mean")
    tokens, mask, pooled = fn(["jump"])
    assert mask.tolist() == [[True] * 4]
    assert tokens[0, :, 0].tolist() == [1.5, 1.5, 1.5, 2.0]  # masked mean over "one" and "two words"
    assert pooled[0, 0].item() == 1.5
    tokens, _, _ = fn(["jump"], k=3, aggregator="original")
    assert tokens[0, :, 0].tolist() == pytest.approx([2.0, 2.0, 2.0, 5 / 3, 1.0])
    tokens, _, _ = fn(["jump"], description=2)
    assert tokens.shape[1] == 5
    # compact aggregators: one token (the mean of the descriptions' means: 1 and 2), or one per description
    tokens, mask, _ = fn(["jump", "jump"], aggregator="sentence_mean")
    assert tokens.shape == (2, 1, 3) and mask.all() and tokens[:, 0, 0].tolist() == [1.5, 1.5]
    tokens, mask, _ = fn(["jump"], k=3, aggregator="sentences")
    assert tokens[0, :, 0].tolist() == [1.0, 2.0, 3.0] and mask.all()
    with pytest.raises(PhraseError, match="'jump' has 3 descriptions, k = 4"):
        fn(["jump"], k=4)


def test_cache_first_describer_calls_on_miss_once(tmp_path):
    asked = []
    desc = CacheFirstDescriber([SHIPPED_CACHE], asked.append)
    with pytest.raises(PhraseError, match="'fly away'"):
        desc([SHIPPED_LABEL, "fly away"])  # on_miss wrote nothing: still missing
    assert asked == [["fly away"]]
    assert len(CacheFirstDescriber([SHIPPED_CACHE])([SHIPPED_LABEL])[SHIPPED_LABEL]) == 8
