"""Seed-paired comparisons of the experiment's runs: each run's metrics, mean and spread over seeds, and a
paired t-test of one method against another (used by the APE/AVE tables and the evaluator-metric tables)."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Sequence

from launch.results.config import ExperimentConfig, RunSpec, eval_dir


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def read_metrics(cfg: ExperimentConfig, spec: RunSpec, split: str) -> dict[str, float] | None:
    path = eval_dir(cfg, spec, split) / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["metrics"]


def paired_verdict(diffs: Sequence[float], name: str = "Action-GPT") -> str:
    """A two-sided paired t-test of ``name`` minus its reference over seeds (5 % level), with the sign
    count."""
    from scipy import stats

    n = len(diffs)
    if n < 2:
        return "one seed: no test"
    lower = sum(1 for d in diffs if d < 0)
    m, sd = mean_std(diffs)
    if sd == 0.0:
        return "identical in every seed" if m == 0.0 else ("lower" if m < 0 else "higher") + " in every seed"
    t = m / (sd / math.sqrt(n))
    p = 2.0 * float(stats.t.sf(abs(t), n - 1))
    head = "not significant at 5 %" if p >= 0.05 else f"{name} {'lower' if t < 0 else 'higher'}, p < 0.05"
    return f"{head} (paired t = {t:+.2f}, p = {p:.2f}, n = {n}; {name} lower in {lower} of {n} seeds)"


def paired_diffs(cfg: ExperimentConfig, a: RunSpec, b: RunSpec, split: str, key: str) -> list[float]:
    """a - b of one metric for each of ``cfg.seeds`` that both have (the specs' own seed is ignored)."""
    out = []
    for seed in cfg.seeds:
        ma = read_metrics(cfg, dataclasses.replace(a, seed=seed), split)
        mb = read_metrics(cfg, dataclasses.replace(b, seed=seed), split)
        if ma is not None and mb is not None:
            out.append(ma[key] - mb[key])
    return out


def vs_default(cfg: ExperimentConfig, backbone: str, split: str, key: str) -> list[float]:
    """Action-GPT (Table 1's k) minus Default, seed by seed."""
    agpt, default = RunSpec(backbone, "actiongpt", 0, cfg.k), RunSpec(backbone, "default", 0)
    return paired_diffs(cfg, agpt, default, split, key)
