"""The retrieval metrics' definitions on hand-made embeddings whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from actiongpt import metrics_retrieval as R


def _unit(n: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift() -> None:
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(1))
    assert R.fid(x, x) == pytest.approx(0.0, abs=1e-9)
    shifts = [0.1, 0.5, 1.0, 2.0]
    values = [R.fid(x + s, x) for s in shifts]
    # a pure shift of the mean by s in every one of 8 dimensions: FID = 8 s^2 (the covariances are equal)
    assert values == pytest.approx([8 * s * s for s in shifts], rel=1e-6)
    assert R.fid(x * 2.0, x) > 0.5  # a different covariance counts too


def test_fid_matches_the_closed_form_for_diagonal_gaussians() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5000, 3, generator=g), torch.randn(5000, 3, generator=g)
    a, b = a * torch.tensor([1.0, 2.0, 0.5]), b * torch.tensor([2.0, 1.0, 0.5])
    sa, sb = a.var(0, unbiased=True), b.var(0, unbiased=True)
    closed = float(((a.mean(0) - b.mean(0)) ** 2).sum() + (sa + sb - 2 * (sa * sb).sqrt()).sum())
    assert R.fid(a, b) == pytest.approx(closed, abs=0.02)  # off-diagonal sample covariances are ~0


def test_r_precision_of_perfect_embeddings_is_one() -> None:
    n = 200
    emb = _unit(n)
    ids = [f"text {i % 50}" for i in range(n)]
    # texts of one label share one embedding (what a perfect evaluator gives), motions sit on their text
    text = torch.stack([emb[i % 50] for i in range(n)])
    out = R.r_precision(text, text.clone(), ids)
    assert out["R_precision_top1"] == out["t2m_R1"] == 1.0
    assert out["retrieval_batch"] == 32 and out["chance_top1"] == pytest.approx(1 / 32)


def test_r_precision_of_random_embeddings_is_near_chance() -> None:
    n = 4000
    ids = [f"text {i % 400}" for i in range(n)]
    out = R.r_precision(_unit(n, seed=3), _unit(n, seed=4), ids, seed=7)
    for k in (1, 2, 3):  # chance k/32; binomial sd over 4000 items ~ 0.003-0.005
        assert abs(out[f"R_precision_top{k}"] - k / 32) < 0.02
        assert abs(out[f"t2m_R{k}"] - k / 32) < 0.02


def test_distractors_are_other_texts_seeded_and_fewer_when_the_split_is_small() -> None:
    ids = [f"t{i % 5}" for i in range(60)]
    d = R.distractors(ids, batch=32, seed=0)
    assert d.shape == (60, 31)
    for i in range(60):
        row = d[i].tolist()
        assert len(set(row)) == 31 and all(ids[j] != ids[i] for j in row)
    assert torch.equal(d, R.distractors(ids, batch=32, seed=0))
    assert not torch.equal(d, R.distractors(ids, batch=32, seed=1))
    small = R.distractors([f"t{i % 3}" for i in range(9)], batch=32)
    assert small.shape == (9, 6)  # only 6 items of another text exist for each
    with pytest.raises(ValueError, match="two different texts"):
        R.distractors(["same"] * 5)


def test_diversity_multimodality_and_mm_dist() -> None:
    # points on a line at 0 and 1: every pair of different points is 1 apart
    two = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert R.diversity(two, pairs=50) == pytest.approx(1.0)
    emb = _unit(300, seed=5)
    assert R.diversity(emb, seed=1) == pytest.approx(math.sqrt(2), abs=0.1)  # random unit vectors, 16-d
    variants = torch.zeros(4, 3, 2)
    variants[:, 1, 0] = 3.0  # variants 0/1 3 apart, 0/2 0 apart, 1/2 3 apart
    assert R.multimodality(variants) == pytest.approx(2.0)
    assert R.mm_dist(torch.zeros(3, 2), torch.tensor([[3.0, 4.0]] * 3)) == pytest.approx(5.0)
