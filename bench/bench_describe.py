"""Throughput of the describe runner against an OpenAI-compatible server with a fixed latency.

The mock server (tests/mock_openai_server.py) runs in its own process and answers every request after
exactly ``--latency`` seconds, so the ideal throughput at concurrency c is c / latency requests per
second. For each concurrency the full runner (real openai client, rate limiter, post-processing and
the append-only cache with a flush per line) describes ``rounds * c`` fresh requests; the result is
the measured throughput as a ratio to that ideal, median over ``--repeats``.

    python bench/bench_describe.py                     # writes bench/results/describe.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actiongpt.text.cache import DescriptionCache  # noqa: E402
from actiongpt.text.describe import RunOptions, run_requests  # noqa: E402
from actiongpt.text.keys import SamplingConfig, plan_requests  # noqa: E402
from actiongpt.text.openai_backend import OpenAIBackend  # noqa: E402
from actiongpt.text.prompt import TEMPLATES  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.mock_openai_server",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--seconds",
            "3600",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"mock server did not start (printed {url!r})")
    return proc, url


def measure(url: str, concurrency: int, n: int, tag: str, workdir: Path) -> float:
    """Seconds to describe ``n`` fresh requests at ``concurrency``."""
    labels = [f"{tag} action {j}" for j in range(n)]
    reqs = plan_requests(
        labels,
        1,
        endpoint="chat",
        model="mock-model",
        template=TEMPLATES["paper"],
        sampling=SamplingConfig(),
        global_seed=0,
    )
    backend = OpenAIBackend(model="mock-model", endpoint="chat", base_url=url, api_key="bench", timeout=30)
    cache = DescriptionCache(workdir / f"{tag}.jsonl")
    t0 = time.perf_counter()
    summary = run_requests(reqs, backend, cache, None, RunOptions(concurrency=concurrency, progress=False))
    elapsed = time.perf_counter() - t0
    cache.close()
    if summary.done != n:
        raise RuntimeError(f"only {summary.done}/{n} requests succeeded: {summary.failure_reasons}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.5, help="server latency per request (s)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    ap.add_argument("--rounds", type=int, default=8, help="requests per run = rounds * concurrency")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "describe.json"))
    args = ap.parse_args()

    proc, url = start_server(args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            measure(url, 4, 8, "warmup", Path(tmp))  # imports, first connections
            for c in args.concurrency:
                n = args.rounds * c
                times = [measure(url, c, n, f"c{c}r{r}", Path(tmp)) for r in range(args.repeats)]
                t = statistics.median(times)
                ideal = c / args.latency
                rows.append(
                    {
                        "concurrency": c,
                        "requests": n,
                        "seconds_median": round(t, 3),
                        "seconds_all": [round(x, 3) for x in times],
                        "throughput_rps": round(n / t, 2),
                        "ideal_rps": round(ideal, 2),
                        "ratio_to_ideal": round(n / t / ideal, 3),
                    }
                )
                print(
                    f"  c={c:3d}: {n / t:7.1f} req/s, ideal {ideal:6.1f}, ratio {n / t / ideal:.3f}",
                    file=sys.stderr,
                )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result = {
        "benchmark": "describe_throughput",
        "latency_s": args.latency,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "rows": rows,
        "target": {"concurrency": 32, "min_ratio": 0.8},
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python bench/bench_describe.py " + " ".join(sys.argv[1:]),
    }
    at32 = next((r for r in rows if r["concurrency"] == 32), None)
    result["target_met"] = bool(at32 and at32["ratio_to_ideal"] >= 0.8)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = ", ".join(f"c={r['concurrency']}: {r['ratio_to_ideal']:.2f}" for r in rows)
    print(
        f"bench_describe: throughput/ideal at latency {args.latency}s: {summary} "
        f"(target >= 0.8 at c=32: {'met' if result['target_met'] else 'NOT met'}) -> {out}"
    )


if __name__ == "__main__":
    main()
