"""Model configs, YAML presets, the registry and the parameter counts of the paper configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from actiongpt import config as cfglib
from actiongpt.config import ConfigError
from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.registry import MODEL_NAMES, build_model, config_class

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("preset", ["paper", "tiny"])
def test_yaml_files_are_the_presets(name, preset):
    cls = config_class(name)
    suffix = "" if preset == "paper" else "_tiny"
    loaded = cfglib.load(cls, [CONFIGS / f"{name}{suffix}.yaml"])
    assert loaded == getattr(cls, preset)()


def test_paper_defaults_are_the_effective_original_values():
    for cfg in (TemosConfig.paper(), TeachConfig.paper()):
        assert (cfg.latent_dim, cfg.ff_size, cfg.num_layers, cfg.num_heads) == (256, 1024, 6, 4)
        assert (cfg.dropout, cfg.activation, cfg.nfeats, cfg.lr) == (0.1, "gelu", 135, 7e-5)
    assert TemosConfig().losses.kl_text == 32e-5 and TemosConfig().losses.latent_manifold == 1e-5
    assert TeachConfig().losses.kl_text == 1e-5 and TeachConfig().hist_frames == 5
    mc = MotionClipConfig.paper()
    assert (mc.latent_dim, mc.num_layers, mc.ff_size, mc.num_heads, mc.lr) == (512, 8, 1024, 4, 1e-4)
    assert (mc.losses.rc, mc.losses.rcxyz, mc.losses.vel, mc.losses.text_cosine) == (100, 100, 100, 1)


def test_temos_paper_parameter_count():
    model = build_model("temos", TemosConfig.paper(), text_dim=768)
    count = model.count_parameters()
    assert count.trainable == 16_065_159
    assert count.frozen == 0  # the frozen text encoder is outside the model (precomputed embeddings)
    parts = {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_children()}
    assert parts == {"textencoder": 4_935_936, "motionencoder": 4_773_888, "motiondecoder": 6_355_335}


def test_teach_paper_parameter_count_with_and_without_dead_stack():
    assert build_model("teach", TeachConfig.paper(), 768).count_parameters().trainable == 16_100_231
    orig = build_model("teach", TeachConfig(unused_motion_stack=True), 768)
    assert orig.count_parameters().trainable == 20_838_791
    assert sum(p.numel() for p in orig.textencoder.parameters()) == 9_709_568


def test_parameter_names_follow_the_original():
    names = {n for n, _ in build_model("teach", TeachConfig.tiny(), 16).named_parameters()}
    for expected in (
        "textencoder.projection.1.weight",
        "textencoder.mu_token",
        "textencoder.seperation_token",
        "textencoder.skel_embedding.weight",
        "motionencoder.logvar_token",
        "motiondecoder.final_layer.bias",
        "motiondecoder.seqTransDecoder.layers.0.multihead_attn.in_proj_weight",
    ):
        assert expected in names


def test_motionclip_latent_is_the_pooled_width():
    model = build_model("motionclip", MotionClipConfig.tiny(), text_dim=24)
    assert model.latent_dim == 24
    assert model.encoder.skel_embedding.out_features == 24
    with pytest.raises(ValueError, match="must equal the text embedder's pooled width"):
        build_model("motionclip", MotionClipConfig(latent_dim=512), text_dim=384)
    assert build_model("motionclip", MotionClipConfig.paper(), 512).count_parameters().trainable > 0


def test_text_dim_sets_the_first_projection():
    for dim in (384, 768):
        model = build_model("temos", TemosConfig.tiny(), text_dim=dim)
        assert model.textencoder.projection[1].in_features == dim


def test_registry_accepts_mappings_and_rejects_bad_input():
    model = build_model("TEMOS", {"latent_dim": 32, "ff_size": 64, "num_layers": 1, "num_heads": 2}, 16)
    assert model.cfg.latent_dim == 32
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("actor", None, 16)
    with pytest.raises(ConfigError, match="num_head"):
        build_model("temos", {"num_head": 6}, 16)  # the original's misspelling is caught, not swallowed
    with pytest.raises(ConfigError, match="divisible"):
        build_model("teach", {"latent_dim": 30, "num_heads": 4}, 16)
    with pytest.raises(ConfigError, match="TeachConfig"):
        build_model("teach", TemosConfig.tiny(), 16)


def test_feature_stats_are_checked_and_saved():
    model = build_model("temos", TemosConfig.tiny(), 16)
    with pytest.raises(ValueError, match=r"\(135,\)"):
        model.set_feature_stats(torch.zeros(10), torch.ones(10))
    with pytest.raises(RuntimeError, match="set_feature_stats"):
        model.denormalize(torch.zeros(2, 135))
    model.set_feature_stats(torch.full((135,), 2.0), torch.full((135,), 3.0))
    state = model.state_dict()
    assert bool(state["feature_stats_set"]) and float(state["feature_mean"][0]) == 2.0
    fresh = build_model("temos", TemosConfig.tiny(), 16)
    fresh.load_state_dict(state)
    assert torch.allclose(fresh.denormalize(torch.ones(135)), torch.full((135,), 5.0))


def test_params_command_reports_the_paper_counts(capsys):
    from actiongpt.models.params import main

    main(["--clip-dim", "64"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line]
    assert '"model": "temos", "text_dim": 768, "trainable": 16065159, "frozen": 0' in rows[0]
    assert '"trainable": 16100231' in rows[1] and '"trainable": 20838791' in rows[2]
    assert '"model": "motionclip", "text_dim": 64' in rows[3]


def test_temos_without_motion_branch_builds_no_dead_weights():
    model = build_model(
        "temos",
        {"motion_branch": False, "latent_dim": 32, "ff_size": 64, "num_layers": 1, "num_heads": 2},
        16,
    )
    assert not hasattr(model, "motionencoder")
    from tests.models_batches import single_batch

    out = model(single_batch([6, 5]))
    assert set(out) == {"loss", "recons_text2rfeats", "kl_text"}
