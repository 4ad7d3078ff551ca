"""A token bucket for per-registry command rate limits.

Registries cap commands per second per registrar (and disconnect or answer 2502 beyond it); all
sessions of one pool share one bucket, so the cap holds for the registrar as a whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``rate_per_s`` tokens per second, at most ``burst`` saved up; ``acquire`` waits for one.

    Waiters are served in arrival order (the lock is held while sleeping), so a busy pool cannot
    starve one session.
    """

    def __init__(self, rate_per_s: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0  # total time callers spent waiting (for metrics)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            if self._tokens < 1.0:
                delay = (1.0 - self._tokens) / self.rate_per_s
                self.waited_s += delay
                await asyncio.sleep(delay)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1.0)
