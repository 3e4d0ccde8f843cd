"""The describe runner against a real HTTP server (tests/mock_openai_server.py) through the real
openai client: injected 429/500/timeouts/malformed/empty answers, failures and reruns, secrets."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import pytest

from actiongpt.text.cache import DescriptionCache, FailureLog, read_records
from actiongpt.text.describe import RunOptions, run_requests
from actiongpt.text.keys import Request, SamplingConfig, plan_requests
from actiongpt.text.openai_backend import OpenAIBackend, parse_retry_after
from actiongpt.text.prompt import TEMPLATES
from actiongpt.text.quality import postprocess
from actiongpt.text.ratelimit import Backoff, TokenBucket
from actiongpt.text.secrets import redact
from tests.describe_cli import cli
from tests.mock_openai_server import Faults, MockOpenAIServer, answer_text, request_identity

LABELS = ["walk forward", "jump", "throw a ball", "sit down", "wave", "kick", "turn around", "crouch"]


def _plan(endpoint: str = "chat", labels=LABELS, k: int = 4) -> list[Request]:
    return plan_requests(
        labels,
        k,
        endpoint=endpoint,
        model="mock-model",
        template=TEMPLATES["paper"],
        sampling=SamplingConfig(),
        global_seed=0,
    )


def _backend(
    srv: MockOpenAIServer, endpoint: str = "chat", timeout: float = 5.0, key: str = "sk-test-abcdef"
):
    return OpenAIBackend(
        model="mock-model", endpoint=endpoint, base_url=srv.base_url, api_key=key, timeout=timeout
    )


def _identity(req: Request, seed: int) -> str:
    field = "messages" if req.endpoint == "chat" else "prompt"
    return request_identity({"model": req.model, field: req.input, "seed": seed})


def _prompt(req: Request) -> str:
    return req.input[-1]["content"] if req.endpoint == "chat" else req.input


FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "progress": False}


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_every_description_arrives_exactly_once_despite_faults(tmp_path, endpoint) -> None:
    faults = Faults(
        rate_429=0.15,
        retry_after=0.05,
        rate_500=0.15,
        rate_slow=0.1,
        slow_seconds=2.0,
        rate_malformed=0.1,
        rate_empty=0.1,
        max_faults_per_request=3,
        seed=1,
    )
    reqs = _plan(endpoint)
    with MockOpenAIServer(faults=faults) as srv:
        cache = DescriptionCache(tmp_path / "c.jsonl")
        failures = FailureLog(tmp_path / "f.failures.jsonl")
        summary = run_requests(
            reqs,
            _backend(srv, endpoint, timeout=1.0),
            cache,
            failures,
            RunOptions(concurrency=8, max_attempts=10, degenerate_retries=3, **FAST),
        )
        cache.close()
        outcomes = Counter(e["outcome"] for e in srv.log.events)
        successes = srv.log.successes
    assert failures.finalize() == 0
    assert summary.done == len(reqs) and summary.failed == 0 and summary.cached == 0
    # every kind of fault was exercised
    assert {"429", "500", "slow", "malformed", "empty", "ok"} <= set(outcomes)
    assert summary.rate_limited == outcomes["429"] and summary.degenerate == outcomes["empty"]
    assert summary.requests == sum(outcomes.values())
    records = read_records(tmp_path / "c.jsonl").records
    assert sorted(r["key"] for r in records) == sorted(r.key for r in reqs)  # each exactly once
    by_key = {r.key: r for r in reqs}
    for rec in records:
        req = by_key[rec["key"]]
        assert (rec["label"], rec["i"]) == (req.label, req.i)
        assert rec["text"] == postprocess(answer_text(_prompt(req), rec["seed_used"]))
        assert "\n" not in rec["text"]
        assert successes[_identity(req, rec["seed_used"])] == 1  # the answer was paid for once
        assert rec["fingerprint"] == "fp_mock" and rec["usage"]["completion_tokens"] > 0
    assert sum(successes.values()) == len(reqs)
    assert summary.completion_tokens > 0 and summary.prompt_tokens > 0


def test_retry_after_is_honoured(tmp_path) -> None:
    reqs = _plan(labels=["walk"], k=4)
    with MockOpenAIServer(faults=Faults(rate_429=1.0, retry_after=0.4, max_faults_per_request=1)) as srv:
        cache = DescriptionCache(tmp_path / "c.jsonl")
        t0 = time.monotonic()
        summary = run_requests(reqs, _backend(srv), cache, None, RunOptions(concurrency=4, **FAST))
        elapsed = time.monotonic() - t0
        events = list(srv.log.events)
    assert summary.done == 4 and summary.rate_limited == 4
    assert elapsed >= 0.4
    for ident in {e["id"] for e in events}:
        times = [e["t"] for e in events if e["id"] == ident]
        assert (
            len(times) == 2 and times[1] - times[0] >= 0.38
        )  # waited Retry-After (server logs after latency)


def test_degenerate_answers_are_retried_with_new_seeds_then_recorded(tmp_path) -> None:
    reqs = _plan(labels=["walk"], k=2)
    with MockOpenAIServer(faults=Faults(rate_empty=1.0, max_faults_per_request=100)) as srv:
        cache = DescriptionCache(tmp_path / "c.jsonl")
        failures = FailureLog(tmp_path / "f.failures.jsonl")
        summary = run_requests(reqs, _backend(srv), cache, failures, RunOptions(degenerate_retries=2, **FAST))
        seeds = [e["seed"] for e in srv.log.events]
    assert summary.failed == 2 and summary.requests == 6 and summary.done == 0
    assert len(set(seeds)) == 6  # each re-ask used a fresh seed
    assert {f["reason"] for f in failures.current.values()} == {"degenerate answer: empty"}


def _run_cli(tmp_path, srv, labels_file, *extra) -> int:
    return cli(
        [
            "describe",
            "run",
            "-c",
            "configs/describe/openai.yaml",
            f"labels=[{labels_file}]",
            f"out_dir={tmp_path / 'run'}",
            f"openai.base_url={srv.base_url}",
            "openai.endpoint=chat",
            "openai.model=mock-model",
            "openai.timeout=2",
            "run.backoff_base=0.01",
            "run.backoff_max=0.05",
            *extra,
            "--no-progress",
        ]
    )


def test_persistent_failures_exit_nonzero_and_a_rerun_retries_only_them(tmp_path, monkeypatch) -> None:
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef")
    with MockOpenAIServer(faults=Faults(rate_500=0.35, max_faults_per_request=100, seed=3)) as srv:
        rc = _run_cli(tmp_path, srv, labels_file, "run.max_attempts=2", "k=2")
        fail_path = tmp_path / "run" / "failures" / "part-00000-of-00001.failures.jsonl"
        failed = {r["key"]: r for r in read_records(fail_path, validate=False).records}
        assert rc == 1 and failed
        assert all(r["reason"].startswith("HTTP 500") and r["attempts"] == 2 for r in failed.values())
        done_before = {
            r["key"] for r in read_records(tmp_path / "run" / "parts" / "part-00000-of-00001.jsonl").records
        }
        assert len(done_before) + len(failed) == 2 * len(LABELS)
        ok_before = sum(srv.log.successes.values())
        n_events = len(srv.log.events)
        srv._server.faults = Faults()  # the server recovers
        rc2 = _run_cli(tmp_path, srv, labels_file, "run.max_attempts=2", "k=2")
        rerun_seeds = {e["seed"] for e in srv.log.events[n_events:]}
    assert rc2 == 0 and not fail_path.exists()
    assert len(srv.log.events) - n_events == len(failed)  # nothing else was asked again
    reqs = {r.key: r for r in _plan(k=2)}
    assert rerun_seeds == {reqs[k].seed for k in failed}
    assert sum(srv.log.successes.values()) == ok_before + len(failed)
    info = json.loads((tmp_path / "run" / "run_info-part-00000-of-00001.json").read_text())
    assert info["summary"]["cached"] == len(done_before) and info["summary"]["done"] == len(failed)
    assert info["quality"]["descriptions"] == 2 * len(LABELS)


def test_bad_key_stops_the_run_and_the_key_never_leaks(tmp_path, monkeypatch, capsys, caplog) -> None:
    secret = "sk-very-secret-key-0123456789"
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("walk\n")
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with MockOpenAIServer(api_key="the-right-key") as srv:
        rc = _run_cli(tmp_path, srv, labels_file, "run.concurrency=2")
        assert f"Bearer {secret}" in srv.log.auth_headers  # it was really sent
    out = capsys.readouterr()
    assert rc == 2 and "401" in out.err
    monkeypatch.setenv("OPENAI_API_KEY", "the-right-key")
    with MockOpenAIServer(api_key="the-right-key") as srv:
        assert _run_cli(tmp_path, srv, labels_file) == 0
    out2 = capsys.readouterr()
    texts = [out.out, out.err, out2.out, out2.err, caplog.text]
    texts += [p.read_text() for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert all(secret not in t and "the-right-key" not in t for t in texts)


def test_missing_key_for_openai_is_a_user_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("walk\n")
    rc = cli(["describe", "run", f"labels=[{labels_file}]", f"out_dir={tmp_path}", "--no-progress"])
    assert rc == 2 and "OPENAI_API_KEY" in capsys.readouterr().err


def test_request_rate_limit_spaces_requests(tmp_path) -> None:
    reqs = _plan(labels=["walk", "run", "jump", "sit", "wave"], k=4)  # 20 requests
    with MockOpenAIServer() as srv:
        cache = DescriptionCache(tmp_path / "c.jsonl")
        t0 = time.monotonic()
        summary = run_requests(
            reqs, _backend(srv), cache, None, RunOptions(concurrency=16, requests_per_minute=600, **FAST)
        )
        elapsed = time.monotonic() - t0
    assert summary.done == 20
    assert elapsed >= 0.9  # 10 at once (one-second burst), then 10 per second


def test_token_bucket_and_backoff() -> None:
    now = [0.0]
    bucket = TokenBucket(6000, clock=lambda: now[0])  # 100 tokens/s, burst 100
    assert bucket.delay_for(100) == 0
    bucket.take(100)
    assert bucket.delay_for(50) == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.delay_for(50) == pytest.approx(0.0)
    assert bucket.delay_for(500) == pytest.approx(0.5)  # oversized: waits for a full bucket, never refused
    b = Backoff(base=1.0, cap=8.0)
    delays = [b.delay(a) for a in range(6)]
    assert all(0.5 * min(8, 2**a) <= d <= min(8, 2**a) for a, d in enumerate(delays))
    assert 3.0 <= b.delay(0, retry_after=3.0) <= 3.2
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({}) is None


def test_redact() -> None:
    assert redact("key sk-abc123def456 and mysecret", "mysecret") == "key *** and ***"
    assert "tok" not in redact("Authorization: Bearer tok_1234567", None)
