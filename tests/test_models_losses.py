"""Every loss term against a hand-computed value, and the models' weighted totals."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from actiongpt.models import losses as L
from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.inputs import lengths_to_mask
from actiongpt.models.registry import build_model
from tests.models_batches import TEXT_DIM, identity_stats, pairs_batch, realistic_stats, single_batch


def smooth_l1(d: torch.Tensor) -> torch.Tensor:
    d = d.abs()
    return torch.where(d < 1, 0.5 * d**2, d - 0.5)


def gauss_kl(q: Normal, p: Normal) -> torch.Tensor:
    """Closed-form KL of diagonal Gaussians, averaged over everything."""
    m1, s1, m2, s2 = q.loc, q.scale, p.loc, p.scale
    return (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).mean()


# -- the functions, on numbers worked out by hand ----------------------------------------------------------
def test_recons_padded_and_per_sample_by_hand():
    out = torch.tensor([[[0.5], [2.0], [9.0]], [[1.0], [0.0], [0.0]]])
    tgt = torch.zeros_like(out)
    lengths = torch.tensor([2, 1])
    # elements: 0.5 -> 0.125, 2.0 -> 1.5 (sample 0), 1.0 -> 0.5 (sample 1); frame 2 lies beyond max(lengths).
    assert L.recons_loss(out, tgt, lengths, "padded").item() == pytest.approx((0.125 + 1.5 + 0.5 + 0) / 4)
    assert L.recons_loss(out, tgt, lengths, "per_sample").item() == pytest.approx(
        ((0.125 + 1.5) / 2 + 0.5) / 2
    )
    # Garbage in the target's padding does not count.
    tgt[1, 1] = 5.0
    assert L.recons_loss(out, tgt, lengths, "padded").item() == pytest.approx(0.53125)
    with pytest.raises(ValueError, match="reduction"):
        L.recons_loss(out, tgt, lengths, "sum")


def test_kl_by_hand():
    q = Normal(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 1.0]]))
    p = Normal(torch.zeros(1, 2), torch.ones(1, 2))
    # dim 0: log(1/2) + (4 + 1)/2 - 1/2 ; dim 1: 0 ; mean over the 2 dims.
    assert L.kl_loss(q, p).item() == pytest.approx((math.log(0.5) + 2.0) / 2)
    assert L.kl_loss(p, p).item() == 0.0


def test_latent_manifold_mse_velocity_cosine_by_hand():
    assert L.latent_manifold_loss(torch.tensor([[0.5, 3.0]]), torch.zeros(1, 2)).item() == pytest.approx(
        (0.125 + 2.5) / 2
    )
    out = torch.tensor([[[0.0], [1.0], [3.0]], [[2.0], [2.0], [0.0]]])
    tgt = torch.zeros_like(out)
    mask = lengths_to_mask(torch.tensor([3, 2]))
    assert L.masked_mse(out, tgt, mask).item() == pytest.approx((0 + 1 + 9 + 4 + 4) / 5)
    # differences: sample 0: 1, 2 ; sample 1: 0 (frame 2 is padding).
    assert L.masked_velocity_mse(out, tgt, mask).item() == pytest.approx((1 + 4 + 0) / 3)
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 1.0], [0.0, -3.0]])
    assert L.cosine_loss(t, z).item() == pytest.approx(((1 - 1 / math.sqrt(2)) + 2.0) / 2, abs=1e-6)


def test_weighted_terms_total():
    terms = L.WeightedTerms()
    terms.add("a", 2.0, torch.tensor(1.5))
    terms.add("b", 1e-5, torch.tensor(100.0))
    out = terms.result()
    assert out["a"].item() == 3.0 and out["loss"].item() == pytest.approx(3.001)
    with pytest.raises(KeyError):
        terms.add("a", 1.0, torch.tensor(0.0))
    with pytest.raises(ValueError, match="every loss weight is 0"):
        L.WeightedTerms().result()


# -- the models' terms, recomputed by hand from their own intermediate tensors -------------------------------
def tiny(cls):
    cfg = cls.tiny()
    cfg.dropout = 0.0
    return cfg


def test_temos_terms_by_hand():
    torch.manual_seed(0)
    model = build_model("temos", tiny(TemosConfig), TEXT_DIM).eval()
    batch = single_batch([9, 6, 7], seed=2)
    torch.manual_seed(5)
    out = model(batch)

    # Same RNG stream as forward: text noise first, then motion noise.
    torch.manual_seed(5)
    lengths, motion = batch["lengths"], batch["motion"]
    mask = lengths_to_mask(lengths)[..., None]
    dt = model.textencoder(batch["text"], batch["text_mask"])
    zt = dt.loc + dt.scale * torch.randn_like(dt.loc)
    dm = model.motionencoder(motion, lengths)
    zm = dm.loc + dm.scale * torch.randn_like(dm.loc)
    n_elems = motion.numel()  # "padded": over the whole (B, max T, F) tensor
    rec_t = (smooth_l1(model.motiondecoder(zt, lengths) - motion) * mask).sum() / n_elems
    rec_m = (smooth_l1(model.motiondecoder(zm, lengths) - motion) * mask).sum() / n_elems
    ref = Normal(torch.zeros_like(dt.loc), torch.ones_like(dt.scale))
    w = model.cfg.losses
    expected = {
        "recons_text2rfeats": w.recons_text2rfeats * rec_t,
        "recons_rfeats2rfeats": w.recons_rfeats2rfeats * rec_m,
        "kl_text2motion": 32e-5 * gauss_kl(dt, dm),
        "kl_motion2text": 32e-5 * gauss_kl(dm, dt),
        "kl_text": 32e-5 * gauss_kl(dt, ref),
        "kl_motion": 32e-5 * gauss_kl(dm, ref),
        "latent_manifold": 1e-5 * smooth_l1(zt - zm).mean(),
    }
    assert set(out) == set(expected) | {"loss"}
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-9), key
    assert out["loss"].item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-5)


def test_teach_terms_by_hand():
    torch.manual_seed(0)
    model = build_model("teach", tiny(TeachConfig), TEXT_DIM).eval()
    batch = pairs_batch([8, 6], [10, 7], [2, 0], seed=4)
    torch.manual_seed(7)
    out = model(batch)

    torch.manual_seed(7)
    lens = [batch["lengths_0"], batch["lengths_1"]]
    mot = [batch["motion_0"], batch["motion_1"]]
    enc, dec = model.textencoder, model.motiondecoder
    dt0 = enc(batch["text_0"], batch["text_mask_0"])
    zt0 = dt0.loc + dt0.scale * torch.randn_like(dt0.loc)
    o0 = dec(zt0, lens[0])
    hist = torch.stack([o0[0, 3:8], o0[1, 1:6]])  # the last 5 generated frames of each first action
    dt1 = enc(batch["text_1"], batch["text_mask_1"], hist)
    zt1 = dt1.loc + dt1.scale * torch.randn_like(dt1.loc)
    o1 = dec(zt1, lens[1])
    dms, zms, oms = [], [], []
    for i in (0, 1):
        d = model.motionencoder(mot[i], lens[i])
        z = d.loc + d.scale * torch.randn_like(d.loc)
        dms.append(d)
        zms.append(z)
        oms.append(dec(z, lens[i]))

    def per_sample(o, m, n):
        return torch.stack([smooth_l1(o[b, : n[b]] - m[b, : n[b]]).mean() for b in range(len(n))]).mean()

    ref = Normal(torch.zeros_like(dt0.loc), torch.ones_like(dt0.scale))
    dts, zts, ots = [dt0, dt1], [zt0, zt1], [o0, o1]
    expected = {}
    for i in (0, 1):
        expected[f"recons_text2rfeats_{i}"] = per_sample(ots[i], mot[i], lens[i])
        expected[f"recons_rfeats2rfeats_{i}"] = per_sample(oms[i], mot[i], lens[i])
        expected[f"kl_text2motion_{i}"] = 1e-5 * gauss_kl(dts[i], dms[i])
        expected[f"kl_motion2text_{i}"] = 1e-5 * gauss_kl(dms[i], dts[i])
        expected[f"kl_text_{i}"] = 1e-5 * gauss_kl(dts[i], ref)
        expected[f"kl_motion_{i}"] = 1e-5 * gauss_kl(dms[i], ref)
        expected[f"latent_manifold_{i}"] = 1e-5 * smooth_l1(zts[i] - zms[i]).mean()
    assert set(out) == set(expected) | {"loss"}
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-10), key


def test_teach_original_unmasked_motion_encoder_flag():
    torch.manual_seed(0)
    cfg = tiny(TeachConfig)
    model = build_model("teach", cfg, TEXT_DIM).eval()
    batch = pairs_batch([8, 6], [10, 7], [2, 0], seed=4)
    batch["motion_0"][1, 6:] = 3.0  # garbage in the padding
    torch.manual_seed(7)
    fixed = model(batch)
    model.cfg.motion_encoder_masks_padding = False
    torch.manual_seed(7)
    original = model(batch)
    assert fixed["recons_text2rfeats_0"].item() == pytest.approx(original["recons_text2rfeats_0"].item())
    assert fixed["kl_motion_0"].item() != pytest.approx(original["kl_motion_0"].item(), rel=1e-6)


def test_motionclip_terms_by_hand():
    from actiongpt.motion.features import denormalize, features_to_rotations
    from actiongpt.motion.fk import forward_kinematics

    torch.manual_seed(0)
    model = build_model("motionclip", tiny(MotionClipConfig), TEXT_DIM).eval()
    realistic_stats(model)
    batch = single_batch([9, 6, 7], seed=2)
    out = model(batch)
    motion, lengths = batch["motion"], batch["lengths"]
    mask = lengths_to_mask(lengths)
    z = model.encoder.encode(motion, lengths)[0]
    dec = model.decoder(z, lengths)

    def joints(x):
        rot, trans = features_to_rotations(denormalize(x, model.feature_mean, model.feature_std))
        j = forward_kinematics(rot, torch.zeros_like(trans), model.skeleton)
        return j - j[..., :1, :]

    def mse(a, b, m):
        return ((a - b) ** 2)[m].mean()

    t = batch["text_pooled"]
    cos = (t * z).sum(-1) / (t.norm(dim=-1) * z.norm(dim=-1))
    expected = {
        "rc": 100 * mse(dec, motion, mask),
        "rcxyz": 100 * mse(joints(dec), joints(motion), mask),
        "vel": 100 * mse(dec[:, 1:] - dec[:, :-1], motion[:, 1:] - motion[:, :-1], mask[:, 1:]),
        "text_cosine": (1 - cos).mean(),
    }
    assert set(out) == set(expected) | {"loss"}
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value.item(), rel=1e-4), key


def test_motionclip_joint_loss_needs_feature_stats():
    model = build_model("motionclip", MotionClipConfig.tiny(), TEXT_DIM)
    with pytest.raises(RuntimeError, match="set_feature_stats"):
        model(single_batch([5, 4]))
    model.cfg.losses.rcxyz = 0.0
    assert "rcxyz" not in model(single_batch([5, 4]))


@pytest.mark.parametrize(
    "name,cls", [("temos", TemosConfig), ("teach", TeachConfig), ("motionclip", MotionClipConfig)]
)
def test_weights_scale_terms_and_zero_switches_off(name, cls):
    torch.manual_seed(0)
    model = build_model(name, tiny(cls), TEXT_DIM).eval()
    identity_stats(model)
    batch = pairs_batch([8, 6], [9, 7], [1, 0]) if name == "teach" else single_batch([8, 6])
    torch.manual_seed(3)
    base = model(batch)
    first = next(k for k in base if k != "loss")
    field = first[:-2] if name == "teach" else first
    setattr(model.cfg.losses, field, 2 * getattr(model.cfg.losses, field))
    torch.manual_seed(3)
    doubled = model(batch)
    assert doubled[first].item() == pytest.approx(2 * base[first].item(), rel=1e-5)
    setattr(model.cfg.losses, field, 0.0)
    torch.manual_seed(3)
    off = model(batch)
    assert first not in off
    assert off["loss"].item() == pytest.approx(sum(v.item() for k, v in off.items() if k != "loss"), rel=1e-5)
