"""Crash safety and distribution: kill -9 in the middle of a run, then a rerun; two ranks merged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from actiongpt.text.cache import load_descriptions, read_records
from actiongpt.text.keys import SamplingConfig, plan_requests
from actiongpt.text.prompt import TEMPLATES
from tests.mock_openai_server import Faults, MockOpenAIServer, request_identity

ROOT = Path(__file__).resolve().parents[1]
LABELS = [f"action number {j}" for j in range(30)]
KEY = "sk-test-resume-000000"


def _args(srv: MockOpenAIServer, labels_file: Path, out_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.describe_cli",
        "describe",
        "run",
        "-c",
        "configs/describe/openai.yaml",
        f"labels=[{labels_file}]",
        f"out_dir={out_dir}",
        f"openai.base_url={srv.base_url}",
        "openai.endpoint=chat",
        "openai.model=mock-model",
        "run.backoff_base=0.01",
        *extra,
        "--no-progress",
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID")}
    env.update(OPENAI_API_KEY=KEY, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    return env


def _identities() -> dict[str, str]:
    reqs = plan_requests(
        sorted(LABELS),
        4,
        endpoint="chat",
        model="mock-model",
        template=TEMPLATES["paper"],
        sampling=SamplingConfig(),
        global_seed=0,
    )
    return {r.key: request_identity({"model": r.model, "messages": r.input, "seed": r.seed}) for r in reqs}


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_kill_9_mid_run_then_rerun_completes_without_asking_twice(tmp_path) -> None:
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    out = tmp_path / "run"
    part = out / "parts" / "part-00000-of-00001.jsonl"
    ident = _identities()
    with MockOpenAIServer(latency=0.03, faults=Faults(rate_500=0.1, seed=5)) as srv:
        proc = subprocess.Popen(
            _args(srv, labels_file, out, "run.concurrency=4"),
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while _lines(part) < 40 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(0.3)  # let requests that were in flight at the kill reach the server log
        finished = {r["key"] for r in read_records(part).records}
        assert 40 <= len(finished) < len(ident)
        # make sure the rerun meets a torn last line, as a kill during a write leaves it
        with open(part, "ab") as fh:
            fh.write(b'{"key": "torn-line-from-a-kill", "label": "act')
        asked_before = len(srv.log.events)
        rerun = subprocess.run(
            _args(srv, labels_file, out, "run.concurrency=4"),
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        rerun_ids = [e["id"] for e in srv.log.events[asked_before:] if e["outcome"] == "ok"]
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not {ident[k] for k in finished} & set(rerun_ids)  # no finished key was asked again
    assert len(rerun_ids) == len(ident) - len(finished) == len(set(rerun_ids))
    records = read_records(part).records
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == len(ident) and set(keys) == set(ident)
    assert "torn-line-from-a-kill" not in part.read_text()
    assert f"cached {len(finished)}" in rerun.stderr


def test_two_ranks_merge_to_the_same_result_as_one_process(tmp_path) -> None:
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    faults = Faults(rate_429=0.1, retry_after=0.05, rate_empty=0.1)
    # One server per setup, same faults: fault decisions depend on how often a request was seen.
    with (
        MockOpenAIServer(latency=0.01, faults=faults) as srv,
        MockOpenAIServer(latency=0.01, faults=faults) as srv1,
    ):
        two = tmp_path / "two"
        procs = [
            subprocess.Popen(
                _args(srv, labels_file, two, "--part", "0/2"),
                cwd=ROOT,
                env=_env(),
                stderr=subprocess.PIPE,
                text=True,
            ),
            subprocess.Popen(
                _args(srv, labels_file, two),
                cwd=ROOT,
                env=_env(RANK="1", WORLD_SIZE="2"),
                stderr=subprocess.PIPE,
                text=True,
            ),
        ]
        one = tmp_path / "one"
        single = subprocess.run(
            _args(srv1, labels_file, one), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120
        )
        for p in procs:
            assert p.wait(timeout=120) == 0, p.stderr.read()[-2000:]
        assert single.returncode == 0, single.stderr[-2000:]
        assert srv.log.attempts == srv1.log.attempts  # the same requests, the same number of times
    parts = sorted((two / "parts").glob("*.jsonl"))
    assert [p.name for p in parts] == ["part-00000-of-00002.jsonl", "part-00001-of-00002.jsonl"]
    part_labels = [{r["label"] for r in read_records(p).records} for p in parts]
    assert part_labels[0] and part_labels[1] and not part_labels[0] & part_labels[1]
    merge = [sys.executable, "-m", "tests.describe_cli", "describe", "merge"]
    for d in (two, one):
        res = subprocess.run(
            [*merge, str(d)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 0 and "0 conflicts" in res.stderr, res.stderr
    merged_two = read_records(two / "descriptions.jsonl").records
    merged_one = read_records(one / "descriptions.jsonl").records

    def stable(recs):
        return [(r["key"], r["label"], r["i"], r["text"], r["seed_used"]) for r in recs]

    assert stable(merged_two) == stable(merged_one) and len(merged_one) == 4 * len(LABELS)
    assert load_descriptions(two / "descriptions.jsonl", k=4) == load_descriptions(
        one / "descriptions.jsonl", k=4
    )
