"""Shapes and masks for variable lengths: padding never changes the valid outputs."""

from __future__ import annotations

import pytest
import torch

from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.inputs import lengths_to_mask
from actiongpt.models.layers import PositionalEncoding
from actiongpt.models.motion_decoder import MotionDecoder
from actiongpt.models.motion_encoder import MotionEncoder
from actiongpt.models.registry import build_model
from actiongpt.models.teach import last_frames
from actiongpt.models.text_encoder import TextEncoder
from actiongpt.models.text_hist import TextHistEncoder
from tests.models_batches import NFEATS, TEXT_DIM, identity_stats, pairs_batch, single_batch

ARCH = dict(latent_dim=32, ff_size=64, num_layers=2, num_heads=2, dropout=0.0)


def test_positional_encoding_values():
    pe = PositionalEncoding(4, dropout=0.0)
    out = pe(torch.zeros(1, 3, 4))
    pos = torch.arange(3.0)
    expected = torch.stack([pos.sin(), pos.cos(), (pos / 100).sin(), (pos / 100).cos()], dim=-1)
    assert torch.allclose(out[0], expected, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds"):
        PositionalEncoding(4, max_len=5)(torch.zeros(1, 6, 4))


def test_decoder_shapes_and_zero_padding():
    torch.manual_seed(0)
    dec = MotionDecoder(NFEATS, **ARCH).eval()
    z = torch.randn(3, 32)
    lengths = torch.tensor([7, 3, 5])
    out = dec(z, lengths)
    assert out.shape == (3, 7, NFEATS)
    mask = lengths_to_mask(lengths)
    assert torch.all(out[~mask] == 0) and torch.all(out[mask].abs().sum(-1) > 0)
    assert dec(z, lengths, nframes=10).shape == (3, 10, NFEATS)
    # Valid frames do not depend on how much padding the batch has, nor on the other samples.
    alone = dec(z[1:2], lengths[1:2])
    assert torch.allclose(out[1, :3], alone[0], atol=1e-5)


def test_motion_encoder_ignores_padded_frames():
    torch.manual_seed(0)
    enc = MotionEncoder(NFEATS, **ARCH).eval()
    x = torch.randn(2, 9, NFEATS)
    lengths = torch.tensor([9, 4])
    mu, logvar = enc.encode(x, lengths)
    assert mu.shape == logvar.shape == (2, 32)
    x2 = x.clone()
    x2[1, 4:] = 100.0  # garbage in the padding
    mu2, _ = enc.encode(x2, lengths)
    assert torch.allclose(mu, mu2, atol=1e-5)
    # Without lengths (the original TEACH motion branch) the padding is attended to.
    mu3, _ = enc.encode(x2, None)
    assert not torch.allclose(mu[1], mu3[1], atol=1e-3)
    dist = enc(x, lengths)
    assert torch.allclose(dist.scale, (0.5 * logvar).exp())


def test_text_encoder_masks_padding_tokens():
    torch.manual_seed(0)
    enc = TextEncoder(TEXT_DIM, **ARCH).eval()
    tokens = torch.randn(2, 6, TEXT_DIM)
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    d1 = enc(tokens, mask)
    tokens2 = tokens.clone()
    tokens2[1, 3:] = 50.0
    d2 = enc(tokens2, mask)
    assert d1.loc.shape == (2, 32)
    assert torch.allclose(d1.loc, d2.loc, atol=1e-5) and torch.allclose(d1.scale, d2.scale, atol=1e-5)
    # The same text padded to a longer width gives the same distribution.
    d3 = enc(
        torch.cat([tokens[1:2, :3], torch.zeros(1, 9, TEXT_DIM)], 1), torch.tensor([[True] * 3 + [False] * 9])
    )
    assert torch.allclose(d1.loc[1], d3.loc[0], atol=1e-5)


def test_text_hist_encoder_with_and_without_history():
    torch.manual_seed(0)
    enc = TextHistEncoder(TEXT_DIM, NFEATS, hist_frames=5, **ARCH).eval()
    tokens = torch.randn(2, 4, TEXT_DIM)
    mask = torch.ones(2, 4, dtype=torch.bool)
    d0 = enc(tokens, mask)
    h = torch.randn(2, 5, NFEATS)
    d1 = enc(tokens, mask, h)
    assert d0.loc.shape == d1.loc.shape == (2, 32)
    assert not torch.allclose(d0.loc, d1.loc, atol=1e-4)  # the history conditions the latent
    with pytest.raises(ValueError, match="hframes"):
        enc(tokens, mask, torch.randn(2, 5, 10))
    assert not hasattr(enc, "motionTransEncoder")


def test_last_frames_per_sample():
    x = torch.arange(2 * 8, dtype=torch.float32).view(2, 8, 1)
    out = last_frames(x, torch.tensor([8, 6]), 3)
    assert out[:, :, 0].tolist() == [[5, 6, 7], [11, 12, 13]]
    with pytest.raises(ValueError, match="at least 3 frames"):
        last_frames(x, torch.tensor([8, 2]), 3)


@pytest.mark.parametrize("name,cfg", [("temos", TemosConfig.tiny()), ("motionclip", MotionClipConfig.tiny())])
def test_single_action_models_accept_extra_padding(name, cfg):
    torch.manual_seed(0)
    cfg.dropout = 0.0
    model = build_model(name, cfg, TEXT_DIM).eval()
    identity_stats(model)
    tight = single_batch([12, 7, 9], seed=3)
    loose = single_batch([12, 7, 9], seed=3, pad_to=20)
    torch.manual_seed(1)
    a = model(tight)
    torch.manual_seed(1)
    b = model(loose)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_teach_forward_terms_and_padding():
    torch.manual_seed(0)
    cfg = TeachConfig.tiny()
    cfg.dropout = 0.0
    model = build_model("teach", cfg, TEXT_DIM).eval()
    batch = pairs_batch([10, 8], [12, 9], [3, 0])
    torch.manual_seed(1)
    out = model(batch)
    expected = {"loss"} | {
        f"{t}_{i}"
        for i in (0, 1)
        for t in (
            "recons_text2rfeats",
            "recons_rfeats2rfeats",
            "kl_text2motion",
            "kl_motion2text",
            "kl_text",
            "kl_motion",
            "latent_manifold",
        )
    }
    assert set(out) == expected
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    # Garbage in the padded area of the ground truth changes nothing.
    batch["motion_1"][1, 9:] = 7.0
    torch.manual_seed(1)
    again = model(batch)
    assert all(torch.allclose(out[k], again[k], atol=1e-5) for k in out)


def test_bad_batches_give_clear_errors():
    model = build_model("temos", TemosConfig.tiny(), TEXT_DIM)
    batch = single_batch([5, 4])
    with pytest.raises(ValueError, match=r"missing key\(s\) \['text_mask'\]"):
        model({k: v for k, v in batch.items() if k != "text_mask"})
    with pytest.raises(ValueError, match="text_dim 16"):
        model({**batch, "text": torch.randn(2, 12, 8)})
    with pytest.raises(ValueError, match="lengths must be in"):
        model({**batch, "lengths": torch.tensor([5, 9])})
    bad = {**batch, "text_mask": batch["text_mask"].clone()}
    bad["text_mask"][1] = False
    with pytest.raises(ValueError, match="at least one valid token"):
        model(bad)
    with pytest.raises(ValueError, match=r"\(B, T, 135\)"):
        model({**batch, "motion": torch.zeros(2, 5, 10)})
    teach = build_model("teach", TeachConfig.tiny(), TEXT_DIM)
    with pytest.raises(ValueError, match="motion_0"):
        teach(batch)
