"""The distributed evaluator in one process: seeds, shares, padding, coverage checks, pairs, variants,
outputs, the real backbones as generators, and ``actiongpt eval`` on real shards and a real checkpoint."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import pytest
import torch

from actiongpt.metrics import MAIN_KEYS, MetricSums, compute_ape_ave
from cluster.eval_report import (
    COLUMNS,
    TableRow,
    format_table,
    metrics_payload,
    read_metrics,
    samplewise_payload,
    write_outputs,
)
from cluster.evaluator import (
    EvalError,
    EvalSettings,
    Evaluator,
    evaluate,
    reference_features,
    sample_seed,
    select_batch,
)
from tests.dist_helpers.eval_toy import (
    SeededToyGenerator,
    build_eval_shards,
    collate,
    export_tiny_model,
    rank_batches,
    toy_dataset,
    toy_stats,
)

N = 29


@pytest.fixture(scope="module")
def data():
    samples = toy_dataset(N)
    mean, std = toy_stats(samples)
    return samples, mean, std


@pytest.fixture
def clean_env():
    """The runtime exports RANK/WORLD_SIZE/MASTER_* into os.environ; keep them out of later tests."""
    keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.pop(k, None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _close(a: dict, b: dict, tol: float = 1e-12) -> None:
    bad = {k: (a[k], b[k]) for k in a if abs(a[k] - b[k]) > tol * max(1.0, abs(a[k]))}
    assert a.keys() == b.keys() and not bad, bad


def _simulated_ranks(data, world: int, batch_size: int, **kw) -> dict[str, float]:
    """Every rank's Evaluator in this process; the sums added as the all-reduce would."""
    samples, mean, std = data
    vec = 0
    for rank in range(world):
        ev = Evaluator(SeededToyGenerator(mean, std), mean, std, **kw)
        ev.run(rank_batches(samples, rank, world, batch_size, mean, std))
        vec = vec + ev.local_vector()
    return MetricSums.from_tensor(vec).compute()


# ------------------------------------------------------------------------------------------- basics


def test_sample_seed_is_a_stable_hash_of_seed_key_and_index():
    s = sample_seed(0, "val-0-00001", 0)
    assert s == sample_seed(0, "val-0-00001", 0) and 0 <= s < 2**63
    assert (
        len(
            {
                s,
                sample_seed(1, "val-0-00001", 0),
                sample_seed(0, "val-0-00002", 0),
                sample_seed(0, "val-0-00001", 1),
            }
        )
        == 4
    )
    # a recorded value: the hash must never change silently (it would change every reported number)
    assert s == 7234561964243269866


def test_pair_reference_is_action0_then_transition_and_action1(data):
    samples, mean, std = data
    single = collate(samples[:5], mean, std)
    pairs = collate(samples[:5], mean, std, pairs=True)
    a, la = reference_features(single, mean, std)
    b, lb = reference_features(pairs, mean, std)
    assert torch.equal(la, lb)
    assert torch.allclose(a, b, atol=1e-5)
    assert pairs["lengths_0"].tolist() != la.tolist()  # a real split


def test_batching_and_world_size_do_not_change_metrics(data):
    samples, mean, std = data
    one = evaluate(
        rank_batches(samples, 0, 1, 1, mean, std), SeededToyGenerator(mean, std), mean, std, expected_count=N
    )
    assert one is not None and one.num_sequences == N and one.world_size == 1
    assert one.metrics["APE_root"] > 0.01 and one.metrics["AVE_mean_joints"] > 1e-4
    for world, bs in ((1, 8), (2, 5), (3, 4), (4, 32)):
        _close(_simulated_ranks(data, world, bs), one.metrics)
    # and they are the metrics of the generated motions: score them directly
    gen = SeededToyGenerator(mean, std)
    batch = collate(samples, mean, std)
    seeds = [sample_seed(0, s["key"], 0) for s in samples]
    ev = Evaluator(gen, mean, std)
    ref_f, n = reference_features(batch, mean, std)
    gj = ev.joints(gen(batch, seeds), n)
    rj = ev.joints(ref_f, n)
    direct = compute_ape_ave([gj[i, : n[i]] for i in range(N)], [rj[i, : n[i]] for i in range(N)])
    _close(direct, one.metrics, tol=1e-9)


def test_invalid_padding_is_excluded_and_unflagged_duplicates_are_refused(data):
    samples, mean, std = data
    gen = SeededToyGenerator(mean, std)
    plain = evaluate(
        rank_batches(samples, 0, 1, 8, mean, std, pad_to_equal=False), gen, mean, std, expected_count=N
    )
    batches = list(rank_batches(samples, 0, 1, 8, mean, std, pad_to_equal=True))
    assert sum(int((~b["valid"]).sum()) for b in batches) == 3  # 29 -> 32: three padding duplicates
    padded = evaluate(iter(batches), gen, mean, std, expected_count=N)
    _close(padded.metrics, plain.metrics)
    for b in batches:
        b.pop("valid")
    with pytest.raises(EvalError, match="more than once"):
        evaluate(iter(batches), gen, mean, std)


def test_missing_samples_are_detected(data):
    samples, mean, std = data
    with pytest.raises(EvalError, match=r"evaluated 25 distinct samples but the split holds 29"):
        evaluate(
            rank_batches(samples[:25], 0, 1, 8, mean, std),
            SeededToyGenerator(mean, std),
            mean,
            std,
            expected_count=N,
        )


def test_select_batch_and_all_invalid_batch(data):
    samples, mean, std = data
    b = collate(samples[:4], mean, std, valid=[False] * 4)
    sub = select_batch(b, [2, 0])
    assert sub["keys"] == [samples[2]["key"], samples[0]["key"]] and sub["motion"].shape[0] == 2
    ev = Evaluator(SeededToyGenerator(mean, std), mean, std)
    assert ev.add_batch(b) == [] and ev.records == []


def test_several_samples_per_text_use_distinct_seeds_and_pool(data):
    samples, mean, std = data
    gen = SeededToyGenerator(mean, std)
    res = evaluate(
        rank_batches(samples, 0, 1, 8, mean, std),
        gen,
        mean,
        std,
        settings=EvalSettings(num_samples=3),
        expected_count=N,
    )
    assert len(res.samples) == 3 * N and len(res.per_variant) == 3
    assert len({round(m["APE_root"], 12) for m in res.per_variant}) == 3
    assert res.metrics["num_sequences"] == 3 * N
    # pooled = all variants' sums together (frame-weighted APE)
    pooled_ape = sum(m["APE_root"] * m["num_frames"] for m in res.per_variant) / res.metrics["num_frames"]
    assert res.metrics["APE_root"] == pytest.approx(pooled_ape, rel=1e-12)
    assert all(v > 0 for v in res.spread().values())
    # variant 0 is what a one-variant run generates
    one = evaluate(rank_batches(samples, 0, 1, 8, mean, std), gen, mean, std)
    _close(one.metrics, res.per_variant[0])


def test_generator_output_is_checked(data):
    samples, mean, std = data
    b = collate(samples[:3], mean, std)

    def short(batch, seeds):
        return torch.zeros(3, 5, 135)

    def nan(batch, seeds):
        out = SeededToyGenerator(mean, std)(batch, seeds)
        out[1, 2, 7] = float("nan")
        return out

    with pytest.raises(EvalError, match=r"expected \(3, >= \d+, 135\)"):
        Evaluator(short, mean, std).add_batch(b)
    with pytest.raises(EvalError, match=f"NaN/inf features for sample '{samples[1]['key']}'"):
        Evaluator(nan, mean, std).add_batch(b)
    with pytest.raises(EvalError, match="feature mean must have shape"):
        Evaluator(short, mean[:10], std)
    with pytest.raises(ValueError, match="num_samples"):
        EvalSettings(num_samples=0)


# ------------------------------------------------------------------------------------------ outputs


def test_outputs_metrics_samplewise_and_table(data, tmp_path):
    samples, mean, std = data
    res = evaluate(
        rank_batches(samples, 0, 1, 8, mean, std),
        SeededToyGenerator(mean, std),
        mean,
        std,
        settings=EvalSettings(num_samples=2),
        keep_renders=3,
    )
    paths = write_outputs(res, tmp_path, {"model": "teach", "model_label": "TEACH", "method": "Action-GPT"})
    m = read_metrics(tmp_path)
    assert m["metrics"] == pytest.approx(res.metrics) and m["num_sequences"] == N
    assert m["num_samples_per_text"] == 2 and len(m["per_variant"]) == 2
    sw = json.loads(paths["samplewise"].read_text())
    assert sorted(sw) == sorted(s["key"] for s in samples)
    entry = sw[samples[0]["key"]]
    assert entry["text"] == samples[0]["label"] and len(entry["per_sample"]) == 2
    assert entry["APE_root"] == pytest.approx(sum(p["APE_root"] for p in entry["per_sample"]) / 2)
    table = paths["table"].read_text().splitlines()
    assert table[0] == (
        "| model | method | APE root | APE global traj | APE mean local | APE mean global | "
        "AVE root | AVE global traj | AVE mean local | AVE mean global |"
    )
    assert table[2].startswith("| TEACH | Action-GPT | ") and f"{res.metrics['APE_root']:.3f}" in table[2]
    assert samplewise_payload(res)[samples[0]["key"]]["num_frames"] == samples[0]["features"].shape[0]
    assert metrics_payload(res)["samples_per_s"] > 0
    assert len(res.renders) == 3 and res.renders[0].generated.shape[1:] == (21, 3)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not an evaluation metrics file"):
        read_metrics(tmp_path / "bad")


def test_table_layout_bold_and_rootless():
    a = dict.fromkeys((k for _, k in COLUMNS), 0.5)
    b = {**a, "APE_root": 0.4, "AVE_mean_pose": 0.6}
    text = format_table(
        [
            TableRow("TEACH", "Default", a),
            TableRow("TEACH", "Action-GPT", b),
            TableRow("MotionCLIP", "Default", a, rootless=True),
        ]
    )
    rows = text.splitlines()[2:]
    assert rows[0].split(" | ")[2] == "0.500" and rows[1].split(" | ")[2] == "**0.400**"
    assert rows[0].split(" | ")[8] == "**0.500**" and rows[1].split(" | ")[8] == "0.600"
    cells = rows[2].strip("| ").split(" | ")
    assert cells[2:4] == ["–", "–"] and cells[6:8] == ["–", "–"] and cells[4] == "0.500"
    assert format_table([TableRow("k", "k = 1", a)], headers=("component", "setting")).startswith(
        "| component | setting | APE root"
    )


def test_renders_are_the_same_samples_for_any_world_size(data):
    samples, mean, std = data
    picked = []
    for world in (1, 3):
        cands = []
        for rank in range(world):
            ev = Evaluator(SeededToyGenerator(mean, std), mean, std, keep_renders=4)
            ev.run(rank_batches(samples, rank, world, 5, mean, std))
            cands += [item[2] for item in ev._render_heap]
        from cluster.evaluator import _key_rank

        picked.append(sorted(r.key for r in sorted(cands, key=lambda r: _key_rank(r.key))[:4]))
    assert picked[0] == picked[1] and len(picked[0]) == 4


# ------------------------------------------------------------------------------ real backbones


@pytest.mark.parametrize("name", ["teach", "temos", "motionclip"])
def test_model_generate_fn_is_seeded_per_sample_and_batch_independent(name, tmp_path):
    from cluster.eval_model import load_model, model_generate_fn
    from shards.loader import LoaderConfig, ShardLoader

    shards = build_eval_shards(tmp_path, n_val=6, n_train=6, pairs=name == "teach")
    loaded = load_model(export_tiny_model(shards, tmp_path / "m.safetensors", name))
    assert loaded.meta["model"] == name and not loaded.model.training
    batch = next(
        iter(
            ShardLoader(
                LoaderConfig(
                    root=str(shards), split="val", batch_size=6, num_workers=0, shuffle=False, drop_last=False
                )
            )
        )
    )
    fn = model_generate_fn(loaded.model)
    seeds = [sample_seed(0, k, 0) for k in batch["keys"]]
    full = fn(batch, seeds)
    assert full.shape[-1] == 135 and bool(full.isfinite().all())
    for i in (0, 4):
        alone = fn(select_batch(batch, [i]), [seeds[i]])
        n = alone.shape[1]
        assert torch.allclose(alone[0], full[i, :n], atol=1e-4), (i, (alone[0] - full[i, :n]).abs().max())
    other = fn(batch, [s + 1 for s in seeds])
    if name == "motionclip":  # deterministic: the text embedding is the latent
        assert torch.equal(other, full)
    else:
        assert (other - full).abs().max() > 1e-3


@pytest.mark.parametrize("align", ["full", "trajectory", "none"])
@pytest.mark.parametrize("yaw", ["original", "heading"])
@pytest.mark.parametrize("window", [8, None])
def test_stitch_batch_equals_the_per_sample_stitch(align, yaw, window):
    from actiongpt.models.sequence import stitch as stitch_batch
    from actiongpt.motion.rotations import axis_angle_to_matrix
    from tests.stitch_reference import stitch_one as stitch

    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([[12, 15, 11], [20, 10, 13], [9, 14, 30]])
    t_max = int(lengths.sum(1).max())
    rot = axis_angle_to_matrix(torch.randn(3, t_max, 22, 3, generator=g))
    trans = torch.cumsum(0.05 * torch.randn(3, t_max, 3, generator=g), dim=1)
    got_r, got_t = stitch_batch(rot, trans, lengths, window, align, yaw)
    for b in range(3):
        n = int(lengths[b].sum())
        ref_r, ref_t = stitch(rot[b, :n], trans[b, :n], lengths[b].tolist(), window, align, yaw)
        assert torch.allclose(got_r[b, :n], ref_r, atol=1e-5), (b, (got_r[b, :n] - ref_r).abs().max())
        assert torch.allclose(got_t[b, :n], ref_t, atol=1e-5), (b, (got_t[b, :n] - ref_t).abs().max())
        assert torch.equal(got_r[b, n:], rot[b, n:])  # padding untouched
    assert not torch.equal(got_t, trans) or align == "none"


def test_batched_sequence_generation_equals_generate_sequences(tmp_path):
    from actiongpt.models.generate import generate_sequences
    from actiongpt.models.inputs import text_from_batch
    from actiongpt.models.sequence import sequence_features
    from cluster.eval_model import load_model
    from shards.loader import LoaderConfig, ShardLoader

    shards = build_eval_shards(tmp_path, n_val=7, n_train=6)
    model = load_model(export_tiny_model(shards, tmp_path / "m.safetensors")).model
    cfg = LoaderConfig(
        root=str(shards), split="val", batch_size=7, num_workers=0, shuffle=False, drop_last=False
    )
    batch = next(iter(ShardLoader(cfg)))
    texts = [text_from_batch(batch, f"_{a}") for a in (0, 1)]
    lengths = torch.stack([batch["lengths_0"], batch["lengths_1"]], dim=1)
    seeds = [sample_seed(5, k, 0) for k in batch["keys"]]
    for kw in ({}, {"align": "trajectory", "yaw": "heading", "slerp_window": None}, {"mean": True}):
        ref = generate_sequences(model, texts, lengths, seeds=seeds, **kw).features
        got = sequence_features(model, texts, lengths, seeds, **kw)
        assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-5), (kw, (got - ref).abs().max())


@pytest.mark.parametrize("name", ["teach", "temos"])
def test_sequence_features_are_exactly_the_stitched_full_rotations(name, tmp_path):
    """The row-wise ``sequence_features`` = features_to_motion -> stitch_batch -> rotations_to_features on the
    full (B, T, 22, 3, 3) rotations, bit for bit on every valid frame (2 and 3 actions, every option)."""
    from actiongpt.models.inputs import lengths_to_mask, text_from_batch
    from actiongpt.models.sampling import derive_seed, per_sample_noise
    from actiongpt.models.sequence import generate_sequence_features, sequence_features
    from actiongpt.models.sequence import stitch as stitch_batch
    from actiongpt.motion.features import rotations_to_features
    from cluster.eval_model import load_model
    from shards.loader import LoaderConfig, ShardLoader

    shards = build_eval_shards(tmp_path, n_val=9, n_train=6)
    model = load_model(export_tiny_model(shards, tmp_path / "m.safetensors", name)).model
    cfg = LoaderConfig(
        root=str(shards), split="val", batch_size=9, num_workers=0, shuffle=False, drop_last=False
    )
    batch = next(iter(ShardLoader(cfg)))
    two = [text_from_batch(batch, f"_{a}") for a in (0, 1)]
    l0, l1 = batch["lengths_0"], batch["lengths_1"]
    seeds = [sample_seed(3, k, 0) for k in batch["keys"]]

    def full_rotations(texts, lengths, mean=False, fact=1.0, slerp_window=8, align="full", yaw="original"):
        noise = None
        if not mean:
            flat = [derive_seed(s, "action", a) for s in seeds for a in range(lengths.shape[1])]
            noise = per_sample_noise(flat, model.latent_dim).view(*lengths.shape, -1)
        feats = generate_sequence_features(
            model, texts, lengths, slerp_window=slerp_window, mean=mean, fact=fact, noise=noise
        )
        rot, trans = model.features_to_motion(feats)
        rot, trans = stitch_batch(rot, trans, lengths, slerp_window, align, yaw)
        mask = lengths_to_mask(lengths.sum(1), rot.shape[1])
        rot = torch.where(mask[..., None, None, None], rot, torch.eye(3))
        return rotations_to_features(rot, trans * mask[..., None], canonicalize="none") * mask[..., None]

    options = (
        {},
        {"mean": True},
        {"yaw": "heading", "fact": 0.5},
        {"align": "trajectory", "slerp_window": None},
        {"align": "none", "slerp_window": 3},
    )
    with torch.no_grad():
        for texts, lengths in (
            (two, torch.stack([l0, l1], 1)),
            ([*two, two[0]], torch.stack([l0, l1, l1], 1)),
        ):
            valid = lengths_to_mask(lengths.sum(1), int(lengths.sum(1).max()))
            for kw in options:
                want = full_rotations(texts, lengths, **kw)
                got = sequence_features(model, texts, lengths, seeds, **kw)
                assert got.shape == want.shape
                assert torch.equal(got[valid].view(torch.int32), want[valid].view(torch.int32)), kw
                assert torch.equal(got[~valid], want[~valid])  # zeros (possibly of either sign)


def test_keep_freed_memory_is_a_harmless_allocator_setting():
    import platform

    from cluster.eval_run import keep_freed_memory

    ok = keep_freed_memory()
    assert ok is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert keep_freed_memory() is ok  # idempotent
    x = torch.randn(1 << 20)  # 4 MB: from the heap now, and still allocatable / freeable
    del x


def test_load_model_errors(tmp_path):
    from cluster.eval_model import load_model

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="not an exported model file, a complete checkpoint"):
        load_model(tmp_path / "run")
    torch.save({"format": "something"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an exported Action-GPT model"):
        load_model(tmp_path / "x.pt")


# --------------------------------------------------------------------------------------- command


def _cli(argv: list[str]) -> int:
    """``actiongpt <argv>`` with only the eval command registered (other stages are not needed here)."""
    import launch.commands.eval as ev
    from actiongpt.config import ConfigError
    from launch.cli import UserError

    parser = argparse.ArgumentParser(prog="actiongpt")
    ev.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UserError, ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2


@pytest.fixture(scope="module")
def shards_and_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evalcli")
    shards = build_eval_shards(tmp, n_val=11, n_train=8)
    return shards, export_tiny_model(shards, tmp / "teach.safetensors")


def test_eval_run_and_table_commands(shards_and_model, tmp_path, capsys, clean_env):
    shards, model = shards_and_model
    out = tmp_path / "ev"
    rc = _cli(
        [
            "eval",
            "run",
            f"checkpoint={model}",
            f"shards_dir={shards}",
            f"out_dir={out}",
            "batch_size=4",
            "renders=1",
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| TEACH | Action-GPT |" in printed and "11 samples" in printed
    files = sorted(p.name for p in out.iterdir())
    assert files == ["config.yaml", "metrics.json", "renders", "samplewise_error_values.json", "table.md"]
    assert sorted(p.suffix for p in (out / "renders").iterdir()) == [".gif", ".png"]
    m = read_metrics(out)
    assert m["meta"]["k"] == 4 and m["meta"]["text_source"] == "descriptions" and m["meta"]["split"] == "val"
    assert all(math.isfinite(m["metrics"][k]) for k in MAIN_KEYS)
    assert _cli(["eval", "table", str(out), str(out), "--out", str(tmp_path / "t.md")]) == 0
    assert (tmp_path / "t.md").read_text().count("| TEACH | Action-GPT |") == 2


def test_eval_compare_default_vs_actiongpt_and_k(shards_and_model, tmp_path, capsys, clean_env):
    import yaml

    shards, model = shards_and_model
    cfg = {
        "out_dir": str(tmp_path / "cmp"),
        "base": {
            "checkpoint": str(model),
            "shards_dir": str(shards),
            "batch_size": 8,
            "renders": 0,
            "progress": False,
        },
        "rows": [
            {"name": "default", "label": "Default", "overrides": {"text_source": "label"}},
            {"name": "agpt", "label": "Action-GPT", "overrides": {"text_source": "descriptions"}},
            {"name": "k1", "group": "number of descriptions", "label": "k = 1", "overrides": {"k": 1}},
        ],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert _cli(["eval", "compare", "-c", str(tmp_path / "c.yaml")]) == 0
    table = capsys.readouterr().out
    lines = [ln for ln in table.splitlines() if ln.startswith("| TEACH") or ln.startswith("| number")]
    assert [ln.split(" | ")[1] for ln in lines] == ["Default", "Action-GPT", "k = 1"]
    vals = [ln.split(" | ")[2].strip("*") for ln in lines]
    assert len(set(vals)) == 3  # different texts give different motions (same seeds, same checkpoint)
    first = {n: (tmp_path / "cmp" / n / "metrics.json").stat().st_mtime_ns for n in ("default", "agpt", "k1")}
    assert _cli(["eval", "compare", "-c", str(tmp_path / "c.yaml")]) == 0  # reused: nothing re-evaluated
    assert first == {n: (tmp_path / "cmp" / n / "metrics.json").stat().st_mtime_ns for n in first}
    assert (tmp_path / "cmp" / "table.md").read_text().strip() == "\n".join(
        ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("|")
    )


def test_eval_errors_are_user_errors(shards_and_model, tmp_path, capsys, clean_env):
    shards, model = shards_and_model
    assert _cli(["eval", "run", f"shards_dir={shards}", "--no-progress"]) == 2
    assert "checkpoint: not set" in capsys.readouterr().out
    assert (
        _cli(
            [
                "eval",
                "run",
                f"checkpoint={model}",
                f"shards_dir={shards}",
                "k=9",
                f"out_dir={tmp_path}",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "k = 9 requested, the shards hold 4" in capsys.readouterr().out
    assert (
        _cli(
            [
                "eval",
                "run",
                f"checkpoint={model}",
                f"shards_dir={shards}",
                "split=zeroshot",
                f"out_dir={tmp_path}",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "split 'zeroshot' was not built" in capsys.readouterr().out


def test_text_source_defaults_to_the_checkpoints_and_backbone_must_fit_the_shards(
    shards_and_model, tmp_path, capsys, clean_env, no_unpickling
):
    shards, _ = shards_and_model
    baseline = export_tiny_model(shards, tmp_path / "base.safetensors", extra_meta={"text_source": "label"})
    assert _cli(["eval", "run", f"checkpoint={baseline}", f"shards_dir={shards}", "renders=0",
                 "--no-progress"]) == 0  # fmt: skip
    assert "| TEACH | Default |" in capsys.readouterr().out
    meta = read_metrics(tmp_path / "eval" / "val-label")["meta"]  # default: next to the checkpoint
    assert meta["text_source"] == "label" and meta["k"] is None
    clip = export_tiny_model(shards, tmp_path / "clip.safetensors", "motionclip")
    assert _cli(["eval", "run", f"checkpoint={clip}", f"shards_dir={shards}", "--no-progress"]) == 2
    assert "MotionCLIP generates single actions" in capsys.readouterr().out


def test_k_and_aggregator_default_to_the_checkpoints(shards_and_model, tmp_path, capsys, clean_env):
    """A model trained on one sentence-level token must be evaluated on that text, not on the default
    position-wise aggregate of every stored description; the config still overrides."""
    shards, _ = shards_and_model
    meta = {"text_source": "descriptions", "k": 2, "aggregator": "sentence_mean"}
    compact = export_tiny_model(shards, tmp_path / "compact.safetensors", extra_meta=meta)
    base = [f"checkpoint={compact}", f"shards_dir={shards}", "renders=0", "progress=false"]
    assert _cli(["eval", "run", *base, f"out_dir={tmp_path / 'a'}"]) == 0
    assert {k: read_metrics(tmp_path / "a")["meta"][k] for k in meta} == meta
    assert _cli(["eval", "run", *base, "k=3", "aggregator=original", f"out_dir={tmp_path / 'b'}"]) == 0
    got = read_metrics(tmp_path / "b")["meta"]
    assert (got["k"], got["aggregator"]) == (3, "original")
    # a baseline checkpoint evaluated on descriptions gets the loader's defaults, not its own (absent) k
    label = export_tiny_model(shards, tmp_path / "l.safetensors", extra_meta={"text_source": "label", "k": 1})
    extra = ["text_source=descriptions", f"out_dir={tmp_path / 'c'}"]
    assert _cli(["eval", "run", f"checkpoint={label}", *base[1:], *extra]) == 0
    got = read_metrics(tmp_path / "c")["meta"]
    assert (got["k"], got["aggregator"]) == (4, "original")
    # without out_dir, an explicit aggregator gets its own folder next to the checkpoint
    assert _cli(["eval", "run", *base, "aggregator=sentences"]) == 0
    assert read_metrics(tmp_path / "eval" / "val-descriptions-sentences")["meta"]["aggregator"] == "sentences"
    capsys.readouterr()


def test_smplh_body_option(shards_and_model, tmp_path, clean_env, monkeypatch):
    """body=smplh: joints from an SMPL-H model file (here a synthetic one in the real file format)."""
    import actiongpt.motion.smplh as smplh_mod
    from actiongpt.config import from_dict
    from cluster.eval_config import EvalConfig
    from cluster.eval_run import run_eval
    from tests.synthetic_smplh import write_synthetic_smplh

    shards, model = shards_and_model
    synthetic = write_synthetic_smplh(tmp_path / "SMPLH_MALE.npz", seed=1)
    body = synthetic.path
    # the synthetic mesh has 125 vertices: its heel/toe vertex ids replace the real mesh's defaults
    calls, real_loader = [], smplh_mod.load_smplh_skeleton

    def loader(path, gender):
        calls.append((Path(path), gender))
        return real_loader(path, gender, vertex_ids=synthetic.vertex_ids)

    monkeypatch.setattr(smplh_mod, "load_smplh_skeleton", loader)
    base = {"checkpoint": str(model), "shards_dir": str(shards), "renders": 0, "progress": False}
    smplh = run_eval(from_dict(EvalConfig, {**base, "body": "smplh", "smplh_path": str(body),
                                            "out_dir": str(tmp_path / "s")}))  # fmt: skip
    bundled = run_eval(from_dict(EvalConfig, {**base, "out_dir": str(tmp_path / "b")}))
    assert smplh.num_sequences == bundled.num_sequences == 11
    assert all(math.isfinite(smplh.metrics[k]) for k in MAIN_KEYS)
    assert calls == [(body, "male")]
    # the synthetic SMPL-H body is the bundled skeleton (shifted, which the metrics remove): same numbers
    for k in MAIN_KEYS:
        assert smplh.metrics[k] == pytest.approx(bundled.metrics[k], rel=1e-5), k
    with pytest.raises(Exception, match="smplh_path"):
        from_dict(EvalConfig, {**base, "body": "smplh"})
