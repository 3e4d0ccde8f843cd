"""Client-side rate limits and retry backoff for the async request runner."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass


class TokenBucket:
    """A bucket refilled at ``rate_per_minute`` holding at most ``burst`` units.

    ``acquire(n)`` may take more than ``burst`` units: it then waits until the bucket is full and goes
    into debt, so a single oversized request is delayed but never refused.
    """

    def __init__(self, rate_per_minute: float, burst: float | None = None, clock=time.monotonic) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be > 0, got {rate_per_minute}")
        self.rate = rate_per_minute / 60.0
        # A one-second burst by default: servers enforce per-minute limits at sub-minute granularity.
        self.capacity = float(burst) if burst is not None else max(1.0, self.rate)
        self.level = self.capacity
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now

    def delay_for(self, n: float) -> float:
        """Seconds to wait before ``n`` units can be taken (0 if available now)."""
        self._refill()
        need = min(n, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, n: float) -> None:
        self._refill()
        self.level -= n

    def give(self, n: float) -> None:
        """Return units (an over-estimate corrected after the answer arrived)."""
        self._refill()
        self.level = min(self.capacity, self.level + n)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits plus a shared pause after a 429."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock=time.monotonic,
    ) -> None:
        self.requests = TokenBucket(requests_per_minute, clock=clock) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, clock=clock) if tokens_per_minute else None
        self._clock = clock
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold back every request for ``seconds`` (the server said Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self, tokens: float = 0.0) -> None:
        # The lock serialises waiters, so requests leave in arrival order and none starves.
        async with self._lock:
            while True:
                delay = max(0.0, self._paused_until - self._clock())
                if self.requests is not None:
                    delay = max(delay, self.requests.delay_for(1))
                if self.tokens is not None and tokens:
                    delay = max(delay, self.tokens.delay_for(tokens))
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None and tokens:
                self.tokens.take(tokens)

    def settle(self, estimated: float, actual: float) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tokens is None:
            return
        if actual < estimated:
            self.tokens.give(estimated - actual)
        else:
            self.tokens.take(actual - estimated)


@dataclass
class Backoff:
    """Jittered exponential backoff; a server's Retry-After wins when given."""

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random | None = None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        rng = self.rng or random
        if retry_after is not None and retry_after >= 0:
            # Small jitter so that all waiting workers do not return in the same millisecond.
            return min(retry_after, self.cap * 10) + rng.uniform(0, min(1.0, self.base) * 0.1)
        # "Equal jitter": half fixed (the wait always grows), half random (workers spread out).
        d = min(self.cap, self.base * 2**attempt)
        return d / 2 + rng.uniform(0, d / 2)
