"""Aggregators of k description embeddings, each against a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actiongpt.text.aggregate import (
    POSITIONWISE,
    aggregate_padded,
    aggregate_pooled,
    aggregate_tokens,
)

# Two descriptions: A has 3 tokens, B has 1 token (D = 2).
A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float16)
B = np.array([[10.0, 20.0]], dtype=np.float16)


def test_original_is_unmasked_positionwise_mean_over_k() -> None:
    # position 0: (A0 + B0) / 2; positions 1, 2: only A contributes but the divisor stays k = 2
    expected = np.array([[5.5, 11.0], [1.5, 2.0], [2.5, 3.0]], dtype=np.float32)
    out = aggregate_tokens([A, B], "original")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_masked_mean_divides_by_the_descriptions_present() -> None:
    expected = np.array([[5.5, 11.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    np.testing.assert_array_equal(aggregate_tokens([A, B], "masked_mean"), expected)


def test_order_of_descriptions_does_not_matter_and_length_is_the_max() -> None:
    for method in POSITIONWISE:
        np.testing.assert_array_equal(aggregate_tokens([A, B], method), aggregate_tokens([B, A], method))
        assert aggregate_tokens([A, B], method).shape == (3, 2)


def test_single_description_is_returned_unchanged() -> None:
    for method in POSITIONWISE:
        np.testing.assert_array_equal(aggregate_tokens([A], method), A.astype(np.float32))


def test_sentence_level_aggregators_use_each_descriptions_mean_token() -> None:
    # s_A = mean of A's 3 tokens = (3, 4); s_B = (10, 20)
    sentences = aggregate_tokens([A, B], "sentences")
    assert sentences.dtype == np.float32
    np.testing.assert_array_equal(sentences, np.array([[3.0, 4.0], [10.0, 20.0]], dtype=np.float32))
    np.testing.assert_array_equal(aggregate_tokens([B, A], "sentences"), sentences[::-1])
    # one token whatever k and the description lengths; order-free
    np.testing.assert_array_equal(
        aggregate_tokens([A, B], "sentence_mean"), np.array([[6.5, 12.0]], np.float32)
    )
    np.testing.assert_array_equal(
        aggregate_tokens([B, A], "sentence_mean"), np.array([[6.5, 12.0]], np.float32)
    )
    np.testing.assert_array_equal(aggregate_tokens([A], "sentence_mean"), np.array([[3.0, 4.0]], np.float32))


def test_sentence_level_padded_ignores_pad_states_and_matches_unpadded() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[10.0, 20.0], [7.0, 7.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    for method, length in (("sentences", 2), ("sentence_mean", 1)):
        agg, valid = aggregate_padded(hidden, mask, method)
        torch.testing.assert_close(agg, torch.from_numpy(aggregate_tokens([A, B], method)))
        assert valid.shape == (length,) and bool(valid.all())
    batched, valid = aggregate_padded(torch.randn(5, 4, 7, 3), torch.rand(5, 4, 7) > 0.3, "sentences")
    assert batched.shape == (5, 4, 3) and valid.shape == (5, 4)


def test_sentence_level_rejects_an_empty_description() -> None:
    with pytest.raises(ValueError, match="without tokens"):
        aggregate_tokens([A, np.zeros((0, 2), np.float16)], "sentence_mean")


def test_pooled_mean_of_k_vectors() -> None:
    pooled = np.array([[1.0, -1.0, 4.0], [3.0, 1.0, 0.0]], dtype=np.float16)
    np.testing.assert_array_equal(aggregate_pooled(pooled), np.array([2.0, 0.0, 2.0], dtype=np.float32))


def test_padded_original_reproduces_the_original_code_including_pad_states() -> None:
    # The original sums the 4 padded DistilBERT outputs and divides by 4; pad positions carry real states.
    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[10.0, 20.0], [7.0, 7.0], [9.0, 9.0]]]
    )  # B's positions 1, 2 are [PAD] states
    mask = torch.tensor([[True, True, True], [True, False, False]])
    agg, union = aggregate_padded(hidden, mask, "original")
    torch.testing.assert_close(agg, torch.tensor([[5.5, 11.0], [5.0, 5.5], [7.0, 7.5]]))
    assert union.tolist() == [True, True, True]
    # masked: pad states are ignored, equal to the unpadded masked mean
    agg_m, _ = aggregate_padded(hidden, mask, "masked_mean")
    torch.testing.assert_close(agg_m, torch.from_numpy(aggregate_tokens([A, B], "masked_mean")))


def test_padded_with_zero_pads_equals_unpadded_original() -> None:
    hidden = torch.zeros(2, 3, 2)
    hidden[0] = torch.from_numpy(A.astype(np.float32))
    hidden[1, :1] = torch.from_numpy(B.astype(np.float32))
    mask = torch.tensor([[True, True, True], [True, False, False]])
    agg, _ = aggregate_padded(hidden, mask, "original")
    torch.testing.assert_close(agg, torch.from_numpy(aggregate_tokens([A, B], "original")))


def test_batched_padded_groups() -> None:
    hidden = torch.randn(5, 4, 7, 3)  # batch of 5 labels, k = 4, 7 positions, D = 3
    mask = torch.rand(5, 4, 7) > 0.3
    agg, union = aggregate_padded(hidden, mask, "masked_mean")
    assert agg.shape == (5, 7, 3) and union.shape == (5, 7)
    b, p = 2, 3
    m = mask[b, :, p]
    if m.any():
        torch.testing.assert_close(agg[b, p], hidden[b, m, p].mean(0))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="unknown aggregator"):
        aggregate_tokens([A], "max")
    with pytest.raises(ValueError, match="zero descriptions"):
        aggregate_tokens([], "original")
    with pytest.raises(ValueError, match="one D"):
        aggregate_tokens([A, np.zeros((2, 3))], "original")
    with pytest.raises(ValueError):
        aggregate_pooled(np.zeros((0, 3)))
