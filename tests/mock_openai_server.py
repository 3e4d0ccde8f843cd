"""A small OpenAI-compatible HTTP server for tests and benchmarks (standard library only).

Serves ``POST /v1/chat/completions``, ``POST /v1/completions`` and ``GET /v1/models`` on 127.0.0.1.
Answers are deterministic functions of (prompt, seed), so a test can check that every description
belongs to its request. Faults are injected deterministically per (request, attempt): 429 with
Retry-After, 500, responses slower than the client's timeout, malformed bodies and empty completions;
after ``max_faults_per_request`` faults a request is always answered, so every run can complete.

Run alone: ``python -m tests.mock_openai_server --port 8011 --latency 0.5``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Faults:
    """Probabilities of each fault for one attempt (checked in this order)."""

    rate_429: float = 0.0
    retry_after: float = 0.2  # seconds, sent as Retry-After
    rate_500: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 3.0
    rate_malformed: float = 0.0
    rate_empty: float = 0.0
    max_faults_per_request: int = 2
    seed: int = 0


def answer_text(prompt: str, seed: int | None) -> str:
    """The deterministic description the server writes for (prompt, seed)."""
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).hexdigest()[:12]
    return (
        f"The person bends the knees and swings both arms.\n\nThe torso turns while the head stays level. "
        f"[{digest}] for: {prompt[-80:]}"
    )


def request_identity(body: dict[str, Any]) -> str:
    """What identifies one logical request across retries: the prompt and the seed."""
    prompt = body.get("prompt")
    if prompt is None:
        prompt = json.dumps(body.get("messages"), sort_keys=True)
    return hashlib.sha256(f"{body.get('model')}|{prompt}|{body.get('seed')}".encode()).hexdigest()


@dataclass
class ServerLog:
    """Everything the server saw; ``successes`` counts non-empty 200 answers per request identity."""

    events: list[dict[str, Any]] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)
    successes: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    auth_headers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the client's delayed
        # ACK add ~40 ms to every response, which would swamp the configured latency.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access log
        return

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to do

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            body = {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]}
            self._send(200, json.dumps(body).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        srv = self.server
        with srv.log.lock:
            srv.log.auth_headers.append(self.headers.get("Authorization", ""))
        if srv.api_key is not None and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            self._send(
                401, b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
            )
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send(400, b'{"error": {"message": "body is not JSON"}}')
            return
        chat = self.path.rstrip("/").endswith("/chat/completions")
        if not chat and not self.path.rstrip("/").endswith("/completions"):
            self._send(404, b'{"error": {"message": "no such endpoint"}}')
            return
        ident = request_identity(body)
        with srv.log.lock:
            attempt = srv.log.attempts[ident]
            srv.log.attempts[ident] += 1
            outcome = srv.pick_fault(ident, attempt, srv.log.faults[ident])
            if outcome != "ok":
                srv.log.faults[ident] += 1
        if srv.latency:
            time.sleep(srv.latency)
        if chat:
            prompt = body["messages"][-1]["content"]
        else:
            prompt = body["prompt"]
        text = "" if outcome == "empty" else answer_text(prompt, body.get("seed"))
        if outcome == "ok":
            with srv.log.lock:
                srv.log.successes[ident] += 1
        with srv.log.lock:
            srv.log.events.append(
                {"id": ident, "seed": body.get("seed"), "outcome": outcome, "t": time.time()}
            )
        f = srv.faults
        if outcome == "429":
            self._send(
                429,
                b'{"error": {"message": "Rate limit reached", "type": "requests"}}',
                {"Retry-After": f"{f.retry_after:g}"},
            )
        elif outcome == "500":
            self._send(500, b'{"error": {"message": "The server had an error", "type": "server_error"}}')
        elif outcome == "malformed":
            self._send(200, b'{"id": "cmpl-broken", "object": "chat.completion", "choices": [{"mess')
        else:
            if outcome == "slow":
                time.sleep(f.slow_seconds)
            words = len(text.split())
            usage = {
                "prompt_tokens": len(str(prompt).split()),
                "completion_tokens": words,
                "total_tokens": len(str(prompt).split()) + words,
            }
            if chat:
                choice = {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": text},
                }
                obj = "chat.completion"
            else:
                choice = {"index": 0, "finish_reason": "stop", "logprobs": None, "text": text}
                obj = "text_completion"
            resp = {
                "id": f"cmpl-{ident[:8]}-{attempt}",
                "object": obj,
                "created": int(time.time()),
                "model": body.get("model"),
                "system_fingerprint": "fp_mock",
                "choices": [choice],
                "usage": usage,
            }
            self._send(200, json.dumps(resp).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the default (5) drops connections when 32+ clients connect at once

    def __init__(self, addr, latency: float, faults: Faults, api_key: str | None, model_name: str) -> None:
        super().__init__(addr, _Handler)
        self.latency = latency
        self.faults = faults
        self.api_key = api_key
        self.model_name = model_name
        self.log = ServerLog()

    def pick_fault(self, ident: str, attempt: int, faults_so_far: int) -> str:
        f = self.faults
        if faults_so_far >= f.max_faults_per_request:
            return "ok"
        rng = random.Random(f"{f.seed}|{ident}|{attempt}")
        for name, p in (
            ("429", f.rate_429),
            ("500", f.rate_500),
            ("slow", f.rate_slow),
            ("malformed", f.rate_malformed),
            ("empty", f.rate_empty),
        ):
            if p and rng.random() < p:
                return name
        return "ok"


class MockOpenAIServer:
    """Context manager running the server in a background thread on ``host`` (127.0.0.1), free port."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: Faults | None = None,
        api_key: str | None = None,
        model_name: str = "mock-model",
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self._server = _Server((host, port), latency, faults or Faults(), api_key, model_name)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def log(self) -> ServerLog:
        return self._server.log

    def start(self) -> MockOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MockOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8011, help="0 = a free port (printed)")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    args = ap.parse_args()
    with MockOpenAIServer(latency=args.latency, port=args.port) as srv:
        print(srv.base_url, flush=True)
        time.sleep(args.seconds)


if __name__ == "__main__":
    main()
