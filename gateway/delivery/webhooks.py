"""The webhook sender: claims due notifications from the store and POSTs each, signed, to its callback URL.

Delivery is at least once and durable: a claim leases the row (its ``next_attempt_at`` moves past the
lease), a 2xx marks it ``delivered``, anything else (non-2xx, timeout, connection error) schedules the
next attempt with capped exponential backoff and full jitter; after ``max_attempts`` attempts, or once the
event is older than ``max_age_s``, it is marked ``failed`` (visible in ``GET /v1/webhooks``).  A sender
that dies mid-send leaves the row leased; it is retried when the lease runs out, by this process after a
restart or by another instance.  Receivers de-duplicate on ``webhook-id`` (the event id).

Redirects are not followed and the response body is not read beyond a small bound; logs name the
subscription, the event and the status, never the URL or the body.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import KW_ONLY, dataclass

import aiohttp
import structlog

from gateway.clock import Clock, iso, utcnow
from gateway.store.base import WebhookDelivery, WebhookStore
from gateway.webhooks import signature

log = structlog.get_logger("gateway.webhooks")


@dataclass(eq=False, repr=False)
class WebhookSender:
    store: WebhookStore
    _: KW_ONLY
    clock: Clock = utcnow
    max_attempts: int = 8
    max_age_s: float = 3 * 86_400.0
    backoff_base_s: float = 5.0
    backoff_max_s: float = 3_600.0
    timeout_s: float = 10.0
    lease_s: float = 60.0
    batch: int = 16

    def backoff(self, attempts: int) -> float:
        """Full jitter under a cap that doubles per attempt (not for security)."""
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** max(0, attempts - 1)))
        return random.uniform(0, cap)

    async def run_once(self, session: aiohttp.ClientSession) -> int:
        now = self.clock()
        lease = max(self.lease_s, 2 * self.timeout_s)
        items = await self.store.claim_webhook_events(iso(now), iso(now + dt.timedelta(seconds=lease)), self.batch)
        await asyncio.gather(*(self._send(session, item) for item in items))
        return len(items)

    async def run(self, stop: asyncio.Event, poll_s: float) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                try:
                    n = await self.run_once(session)
                except Exception as exc:  # the loop must survive; log the type, never a message
                    log.error("webhooks.loop_error", error_type=type(exc).__name__)
                    n = 0
                if n == 0:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=poll_s)
                    except TimeoutError:
                        pass

    async def _send(self, session: aiohttp.ClientSession, item: WebhookDelivery) -> None:
        body = item.body.encode()
        sent_at = self.clock()
        headers = signature.headers(item.secret, item.event_id, int(sent_at.timestamp()), body)
        try:
            async with session.post(item.url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(4096)
                status = str(resp.status)
                ok = 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status, ok = type(exc).__name__, False
        await self.record(item, ok=ok, status=status)

    async def record(self, item: WebhookDelivery, *, ok: bool, status: str) -> None:
        now = self.clock()
        if ok:
            await self.store.webhook_event_result(item.id, state="delivered", next_attempt_at=None,
                                                  last_status=status, now=iso(now))
            log.info("webhooks.delivered", webhook=item.webhook_id, event=item.event_id, status=status)
            return
        created = dt.datetime.fromisoformat(item.created_at.replace("Z", "+00:00"))
        next_at = now + dt.timedelta(seconds=self.backoff(item.attempts))
        expired = (next_at - created).total_seconds() > self.max_age_s
        if item.attempts >= self.max_attempts or expired:
            await self.store.webhook_event_result(item.id, state="failed", next_attempt_at=None,
                                                  last_status=status, now=iso(now))
            log.warning("webhooks.gave_up", webhook=item.webhook_id, event=item.event_id, status=status,
                        attempts=item.attempts)
            return
        await self.store.webhook_event_result(item.id, state="pending", next_attempt_at=iso(next_at),
                                              last_status=status, now=iso(now))
        log.info("webhooks.retry", webhook=item.webhook_id, event=item.event_id, status=status,
                 attempt=item.attempts)
