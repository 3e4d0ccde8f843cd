"""The async description runner: requests in, cache lines out.

For every request not yet in the cache: wait for the rate limiter, call the backend, post-process,
re-ask on a degenerate answer (with a fresh seed), retry transient errors with jittered exponential
backoff (honouring Retry-After), and append the answer to the cache the moment it arrives. Requests
that still fail go to the failure log with their reason; a rerun asks again for exactly those.

Two modes, chosen by the backend: concurrent single requests (HTTP APIs; ``concurrency`` in flight)
and batches (the in-process model generates ``batch_size`` rows per call).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actiongpt.text.backends import Backend, Completion, FatalError, PermanentError, TransientError
from actiongpt.text.cache import DescriptionCache, FailureLog, make_record, utc_now
from actiongpt.text.keys import Request, retry_seed
from actiongpt.text.quality import NewlineMode, degenerate_reason, postprocess
from actiongpt.text.ratelimit import Backoff, RateLimiter

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """Throughput and fault handling."""

    concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_attempts: int = 8  # HTTP attempts per request before it is recorded as failed
    degenerate_retries: int = 2  # re-asks after an empty/degenerate answer
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    newlines: NewlineMode = "space"
    min_words: int = 5
    fsync: bool = False  # fsync every cache line (survives power loss, not only kill -9)
    # Estimated cost in the summary; None = unknown (local servers).
    price_prompt_per_1m: float | None = None
    price_completion_per_1m: float | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")


@dataclass
class RunSummary:
    planned: int = 0
    cached: int = 0  # already in the cache before this run
    done: int = 0  # answered and written by this run
    failed: int = 0
    requests: int = 0  # calls made to the backend (every attempt)
    retries: int = 0
    rate_limited: int = 0
    degenerate: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost: float | None = None
    elapsed_s: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    fatal: str | None = None

    @property
    def remaining(self) -> int:
        return self.planned - self.cached - self.done

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["remaining"] = self.remaining
        d["elapsed_s"] = round(self.elapsed_s, 3)
        return d

    def line(self) -> str:
        cost = "unknown" if self.estimated_cost is None else f"${self.estimated_cost:.4f}"
        rate = self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return (
            f"planned {self.planned}, cached {self.cached}, done {self.done}, failed {self.failed}; "
            f"requests {self.requests} (retries {self.retries}, 429s {self.rate_limited}, "
            f"degenerate {self.degenerate}); tokens {self.prompt_tokens} prompt + {self.completion_tokens} "
            f"completion; est. cost {cost}; {self.elapsed_s:.1f} s ({rate:.2f} descriptions/s)"
        )


def _estimate_tokens(request: Request) -> float:
    # ~4 characters per token for the prompt, plus the full generation budget.
    text = request.input if isinstance(request.input, str) else " ".join(m["content"] for m in request.input)
    return len(text) / 4.0 + float(request.params.get("max_tokens", 0))


class _Progress:
    def __init__(self, total: int, summary: RunSummary, enabled: bool) -> None:
        self.summary = summary
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="describe", unit="desc", file=sys.stderr, dynamic_ncols=True)
            self._postfix()

    def _postfix(self) -> None:
        s = self.summary
        self.bar.set_postfix_str(
            f"done={s.done} cached={s.cached} failed={s.failed} tok={s.prompt_tokens + s.completion_tokens}",
            refresh=False,
        )

    def step(self) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.close()


class Runner:
    """Runs ``requests`` against ``backend``, writing to ``cache`` and ``failures``."""

    def __init__(
        self,
        backend: Backend,
        cache: DescriptionCache,
        failures: FailureLog | None,
        options: RunOptions,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.failures = failures
        self.opt = options
        self.limiter = RateLimiter(options.requests_per_minute, options.tokens_per_minute)
        self.backoff = backoff or Backoff(options.backoff_base, options.backoff_max)
        self.summary = RunSummary()
        self._progress: _Progress | None = None
        self._fatal: FatalError | None = None

    # -- bookkeeping ------------------------------------------------------------------------------

    def _record(
        self, req: Request, c: Completion, text: str, seed: int, attempts: int, latency: float
    ) -> None:
        self.cache.append(make_record(req, c, text, seed_used=seed, attempts=attempts, latency_s=latency))
        self.summary.done += 1
        if self._progress:
            self._progress.step()

    def _fail(self, req: Request, reason: str, attempts: int) -> None:
        self.summary.failed += 1
        bucket = reason.split(":")[0][:60]
        self.summary.failure_reasons[bucket] = self.summary.failure_reasons.get(bucket, 0) + 1
        if self.failures is not None:
            self.failures.record(
                {
                    "key": req.key,
                    "label": req.label,
                    "i": req.i,
                    "reason": reason,
                    "attempts": attempts,
                    "time": utc_now(),
                }
            )
        log.debug("failed %r i=%d after %d attempts: %s", req.label, req.i, attempts, reason)
        if self._progress:
            self._progress.step()

    def _usage(self, c: Completion) -> None:
        self.summary.prompt_tokens += c.prompt_tokens
        self.summary.completion_tokens += c.completion_tokens

    def _check(self, req: Request, c: Completion) -> tuple[str, str | None]:
        text = postprocess(c.text, self.opt.newlines)
        if req.endpoint == "raw":  # the baseline's "description" is the short phrase itself
            return text, None if text else "empty"
        return text, degenerate_reason(text, min_words=self.opt.min_words)

    # -- single-request mode ----------------------------------------------------------------------

    async def _one(self, req: Request) -> None:
        attempts = 0
        degenerate = 0
        errors = 0
        seed = req.seed
        while True:
            est = _estimate_tokens(req)
            await self.limiter.acquire(est)
            if self._fatal is not None:
                return
            attempts += 1
            self.summary.requests += 1
            t0 = time.monotonic()
            try:
                c = await self.backend.complete(req, seed)
            except TransientError as exc:
                self.limiter.settle(est, 0)
                errors += 1
                if exc.rate_limited:
                    self.summary.rate_limited += 1
                    if exc.retry_after:
                        self.limiter.pause(exc.retry_after)
                if errors >= self.opt.max_attempts:
                    self._fail(req, f"{exc.reason} (after {attempts} attempts)", attempts)
                    return
                self.summary.retries += 1
                await asyncio.sleep(self.backoff.delay(errors - 1, exc.retry_after))
                continue
            except PermanentError as exc:
                self.limiter.settle(est, 0)
                self._fail(req, exc.reason, attempts)
                return
            latency = time.monotonic() - t0
            self.limiter.settle(est, c.prompt_tokens + c.completion_tokens)
            self._usage(c)
            text, bad = self._check(req, c)
            if bad is None:
                self._record(req, c, text, seed, attempts, latency)
                return
            self.summary.degenerate += 1
            degenerate += 1
            if degenerate > self.opt.degenerate_retries:
                self._fail(req, f"degenerate answer: {bad}", attempts)
                return
            self.summary.retries += 1
            seed = retry_seed(req.seed, degenerate)

    async def _worker(self, queue: asyncio.Queue[Request]) -> None:
        while self._fatal is None:
            try:
                req = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await self._one(req)
            except FatalError as exc:
                self._fatal = exc

    async def _run_single(self, todo: Sequence[Request]) -> None:
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for req in todo:
            queue.put_nowait(req)
        workers = [
            asyncio.create_task(self._worker(queue)) for _ in range(min(self.opt.concurrency, len(todo)))
        ]
        await asyncio.gather(*workers)

    # -- batch mode -------------------------------------------------------------------------------

    async def _run_batched(self, todo: Sequence[Request]) -> None:
        # (request, degenerate re-asks so far); re-asks go to the back of the queue.
        pending: list[tuple[Request, int]] = [(r, 0) for r in todo]
        size = max(1, self.backend.batch_size)
        while pending:
            head = pending[0][0].params
            batch = [p for p in pending[: size * 4] if p[0].params == head][:size]
            taken = {id(p) for p in batch}
            pending = [p for p in pending if id(p) not in taken]
            seeds = [retry_seed(r.seed, n) for r, n in batch]
            self.summary.requests += len(batch)
            t0 = time.monotonic()
            try:
                results = await self.backend.complete_batch([r for r, _ in batch], seeds)
            except PermanentError as exc:
                for r, n in batch:
                    self._fail(r, exc.reason, n + 1)
                continue
            latency = (time.monotonic() - t0) / len(batch)
            for (req, n), seed, c in zip(batch, seeds, results):
                self._usage(c)
                text, bad = self._check(req, c)
                if bad is None:
                    self._record(req, c, text, seed, n + 1, latency)
                    continue
                self.summary.degenerate += 1
                if n + 1 > self.opt.degenerate_retries:
                    self._fail(req, f"degenerate answer: {bad}", n + 1)
                else:
                    self.summary.retries += 1
                    pending.append((req, n + 1))

    # -- entry point ------------------------------------------------------------------------------

    async def run(self, requests: Sequence[Request]) -> RunSummary:
        """Answer every request that is not cached yet; return the summary (also on a fatal error)."""
        s = self.summary
        s.planned = len(requests)
        seen: set[str] = set()
        todo = []
        for r in requests:
            if r.key in seen:
                continue
            seen.add(r.key)
            if r.key in self.cache:
                s.cached += 1
            else:
                todo.append(r)
        s.planned = len(seen)
        t0 = time.monotonic()
        self._progress = _Progress(len(todo), s, self.opt.progress and bool(todo))
        try:
            if todo:
                if self.backend.batch_size > 1:
                    try:
                        await self._run_batched(todo)
                    except FatalError as exc:
                        self._fatal = exc
                else:
                    await self._run_single(todo)
        finally:
            self._progress.close()
            s.elapsed_s = time.monotonic() - t0
            if self.opt.price_prompt_per_1m is not None or self.opt.price_completion_per_1m is not None:
                s.estimated_cost = (
                    s.prompt_tokens * (self.opt.price_prompt_per_1m or 0.0)
                    + s.completion_tokens * (self.opt.price_completion_per_1m or 0.0)
                ) / 1e6
        if self._fatal is not None:
            s.fatal = self._fatal.reason
        return s


def run_requests(
    requests: Sequence[Request],
    backend: Backend,
    cache: DescriptionCache,
    failures: FailureLog | None = None,
    options: RunOptions | None = None,
    *,
    backoff: Backoff | None = None,
) -> RunSummary:
    """Synchronous wrapper: run, close the backend, and return the summary."""

    async def main() -> RunSummary:
        runner = Runner(backend, cache, failures, options or RunOptions(), backoff=backoff)
        try:
            return await runner.run(requests)
        finally:
            await backend.aclose()

    return asyncio.run(main())
