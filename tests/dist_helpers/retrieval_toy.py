"""Spawn target for the distributed evaluator-metrics tests: the toy split of ``eval_toy`` on real gloo ranks,
a tiny randomly initialised text-motion evaluator (the same weights on every rank: seeded), the per-sample
seeded toy generator, the generation pass with ``ExtraMetrics.observe`` and the reference pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tests.dist_helpers.eval_toy import (
    TEXT_DIM,
    SeededToyGenerator,
    join_local_job,
    rank_batches,
    toy_dataset,
    toy_stats,
)


def tiny_evaluator(mean: torch.Tensor, std: torch.Tensor, seed: int = 0) -> Any:
    from actiongpt.models.evaluator_config import EvaluatorConfig
    from actiongpt.models.registry import build_model

    torch.manual_seed(seed)
    model = build_model("evaluator", EvaluatorConfig.tiny(), TEXT_DIM)
    model.set_feature_stats(mean, std)
    with (
        torch.no_grad()
    ):  # spread the random embeddings like a trained model's (at init they nearly coincide:
        # every ranking would be a near-tie that the last bits of a batch's padding decide)
        model.motionencoder.skel_embedding.weight.mul_(10.0)
        model.textencoder.projection[1].weight.mul_(10.0)
    return model.eval()


def retrieval_worker(rank: int, world: int, port: int, out_dir: str, options: dict[str, Any]) -> None:
    join_local_job(rank, world, port)
    from cluster.eval_embeddings import combine, score
    from cluster.eval_metrics_config import RetrievalSettings
    from cluster.eval_retrieval import ExtraMetrics
    from cluster.evaluator import EvalSettings, eval_runtime, evaluate

    n, bs, variants = options["n"], options["batch_size"], options["num_samples"]
    samples = toy_dataset(n)
    mean, std = toy_stats(samples)
    settings = RetrievalSettings(batch=32, diversity_pairs=200)
    with eval_runtime(backend="gloo", timeout_s=120.0):
        for mode in ("single", "pairs"):  # one process group for both: spawning ranks is the slow part
            pairs = mode == "pairs"
            extra = ExtraMetrics(
                ("ape", "retrieval", "physics"),
                settings,
                feature_mean=mean,
                feature_std=std,
                evaluator=tiny_evaluator(mean, std),
                evaluator_meta={"checkpoint": "toy"},
                seed=3,
            )
            result = evaluate(
                rank_batches(samples, rank, world, bs, mean, std, pairs=pairs),
                SeededToyGenerator(mean, std, scale=0.3),
                mean,
                std,
                settings=EvalSettings(num_samples=variants),
                expected_count=n,
                observers=[extra.observe],
            )
            # the reference pass batched differently: which rank reads what in which batch must not matter
            extra.reference_pass(rank_batches(samples, rank, world, bs + 1, mean, std, pairs=pairs))
            # negative control: the same scores from this rank's own embeddings only (the mistake)
            local = score(combine([extra.part.packed()], variants), batch=32, seed=3, diversity_pairs=200)
            scores = extra.finish(variants)
            if rank == 0:
                assert result is not None and scores is not None
                scores.pop("seconds")
                out = {"scores": scores, "local_rank0": local}
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                Path(out_dir, f"scores_{mode}.json").write_text(json.dumps(out))
            else:
                assert scores is None
