"""Delivering events to webhooks, from the event log, in the background.

A webhook's deliveries go out one at a time in the order the events happened; different webhooks proceed in
parallel. A delivery is claimed with a lease inside a write transaction, so several server processes can run
workers on one database without sending an event twice at once; a worker that dies mid-delivery leaves a lease
that expires, and the delivery is tried again (at-least-once, as webhooks are everywhere). Failures are retried
with exponential backoff until `max_attempts`; every attempt is recorded for `listEvents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from cargohold.db.engine import write_transaction
from cargohold.events.tables import deliveries, delivery_attempts, events
from cargohold.management.tables import webhooks
from cargohold.registry.context import RegistryContext, utcnow
from cargohold.security.master_key import Sealer

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
EXCERPT = 4096
USER_AGENT = "cargohold-webhook/1.0"


@dataclass(frozen=True)
class DeliverySettings:
    timeout: float = 10.0
    max_attempts: int = 10
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    concurrency: int = 16
    poll_interval: float = 0.1
    retention_days: int = 30

    @classmethod
    def from_env(cls) -> DeliverySettings:
        def number(name: str, default: float) -> float:
            return float(os.environ.get(f"CARGOHOLD_WEBHOOK_{name}", default))
        return cls(timeout=number("TIMEOUT_SECONDS", cls.timeout),
                   max_attempts=int(number("MAX_ATTEMPTS", cls.max_attempts)),
                   backoff_base=number("RETRY_BASE_SECONDS", cls.backoff_base),
                   backoff_cap=number("RETRY_CAP_SECONDS", cls.backoff_cap),
                   retention_days=int(number("RETENTION_DAYS", cls.retention_days)))

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    webhook_id: int
    attempt: int
    service_uri: str
    headers: dict[str, str]
    body: str


class DeliveryWorker:
    def __init__(self, ctx: RegistryContext, sealer: Sealer, settings: DeliverySettings) -> None:
        self.ctx = ctx
        self.sealer = sealer
        self.settings = settings
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._last_prune = 0.0

    def wake(self) -> None:
        """Look for work now rather than at the next poll (called after a change recorded an event)."""
        self._wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=False) as client:
            while not self._stopping:
                try:
                    await self._round(client)
                except Exception:
                    log.exception("webhook delivery round failed")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            if self._running:
                await asyncio.wait(self._running, timeout=self.settings.timeout)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _round(self, client: httpx.AsyncClient) -> None:
        room = self.settings.concurrency - len(self._running)
        if room <= 0 or not await self.ctx.read(_work_is_due, utcnow()):
            await self._maybe_prune()
            return
        for claimed in await self.ctx.run(self._claim, room):
            task = asyncio.create_task(self._deliver(client, claimed))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _claim(self, limit: int) -> list[Claimed]:
        now = utcnow()
        busy = {task.get_name() for task in self._running}
        with write_transaction(self.ctx.engine) as conn:
            heads = conn.execute(_due_heads(now).limit(limit + len(busy))).all()
            claimed = []
            for head in heads:
                if str(head.id) in busy or len(claimed) >= limit:
                    continue
                leased = conn.execute(update(deliveries).where(
                    deliveries.c.id == head.id, deliveries.c.status == PENDING,
                    or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until < now),
                ).values(leased_until=now + timedelta(seconds=self.settings.timeout * 2 + 5))).rowcount
                if not leased:
                    continue
                callback = json.loads(self.sealer.unseal(head.callback_sealed))
                claimed.append(Claimed(head.id, head.webhook_id, head.attempts + 1, callback["serviceUri"],
                                       callback["customHeaders"], head.payload))
            return claimed

    async def _deliver(self, client: httpx.AsyncClient, claimed: Claimed) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name(str(claimed.delivery_id))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **claimed.headers}
        started = time.perf_counter()
        response: httpx.Response | None = None
        error: str | None = None
        try:
            response = await client.post(claimed.service_uri, content=claimed.body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        duration_ms = int((time.perf_counter() - started) * 1000)
        await self.ctx.run(self._finish, claimed, headers, response, error, duration_ms)

    def _finish(self, claimed: Claimed, headers: dict[str, str], response: httpx.Response | None,
                error: str | None, duration_ms: int) -> None:
        now = utcnow()
        succeeded = response is not None and 200 <= response.status_code < 300
        with write_transaction(self.ctx.engine) as conn:
            conn.execute(insert(delivery_attempts).values(
                delivery_id=claimed.delivery_id, webhook_id=claimed.webhook_id, attempt=claimed.attempt,
                request_uri=claimed.service_uri, request_headers=json.dumps(headers), request_body=claimed.body,
                response_status=response.status_code if response is not None else None,
                response_reason=response.reason_phrase[:200] if response is not None else None,
                response_headers=json.dumps(dict(response.headers)) if response is not None else None,
                response_body=response.text[:EXCERPT] if response is not None else None,
                error=error, duration_ms=duration_ms, at=now))
            if succeeded:
                values: dict[str, Any] = {"status": DELIVERED, "finished_at": now}
            elif claimed.attempt >= self.settings.max_attempts:
                values = {"status": FAILED, "finished_at": now}
            else:
                values = {"next_attempt_at": now + self.settings.backoff(claimed.attempt)}
            conn.execute(update(deliveries).where(deliveries.c.id == claimed.delivery_id)
                         .values(attempts=claimed.attempt, leased_until=None, **values))
        self._wake.set()

    async def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < 3600:
            return
        self._last_prune = time.monotonic()
        await self.ctx.run(self._prune)

    def _prune(self) -> None:
        """Events older than the retention period go, with their history, unless still owed to a webhook."""
        cutoff = utcnow() - timedelta(days=self.settings.retention_days)
        with write_transaction(self.ctx.engine) as conn:
            owed = select(deliveries.c.event_id).where(deliveries.c.status == PENDING)
            conn.execute(delete(events).where(events.c.created_at < cutoff, events.c.id.not_in(owed)))


def _due_heads(now: datetime) -> Any:
    """The oldest pending delivery of each webhook, when it is due and not leased by a live worker."""
    first = (select(func.min(deliveries.c.id)).where(deliveries.c.status == PENDING)
             .group_by(deliveries.c.webhook_id))
    return (select(deliveries.c.id, deliveries.c.webhook_id, deliveries.c.attempts, webhooks.c.callback_sealed,
                   events.c.payload)
            .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.id.in_(first), deliveries.c.next_attempt_at <= now,
                   or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until < now))
            .order_by(deliveries.c.id))


def _work_is_due(conn: Connection, now: datetime) -> bool:
    return conn.execute(select(deliveries.c.id).where(
        deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now,
        or_(deliveries.c.leased_until.is_(None), and_(deliveries.c.leased_until < now))).limit(1)).first() is not None
