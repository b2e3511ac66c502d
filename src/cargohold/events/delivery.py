"""Delivering an event to a webhook: the handler of `webhook` jobs.

Each job is one event owed to one webhook; jobs of a webhook share an ordering key, so its events go out one
at a time in the order the changes were committed, while different webhooks proceed in parallel. Every
attempt is recorded (request, response or error, duration) for `listEvents`; a non-2xx answer or an error
fails the run and the queue retries it with backoff until the attempts are spent.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete, insert, select

from cargohold.db.engine import write_transaction
from cargohold.events.record import WEBHOOK_JOB
from cargohold.events.tables import delivery_attempts, events
from cargohold.jobs.queue import Job, pending_payloads
from cargohold.jobs.worker import JobFailed
from cargohold.management.tables import webhooks
from cargohold.management.webhooks import forbidden_header
from cargohold.kernel.context import RegistryContext, utcnow
from cargohold.kernel.egress import EgressRefused
from cargohold.observability import metrics
from cargohold.security.master_key import Sealer

EXCERPT = 4096
"""How much of a receiver's answer is read and kept for listEvents."""
USER_AGENT = "cargohold-webhook/1.0"


@dataclass(frozen=True)
class DeliverySettings:
    timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    retention_days: int = 30

    @classmethod
    def from_env(cls) -> DeliverySettings:
        def number(name: str, default: float) -> float:
            return float(os.environ.get(f"CARGOHOLD_WEBHOOK_{name}", default))
        return cls(timeout=number("TIMEOUT_SECONDS", cls.timeout),
                   backoff_base=number("RETRY_BASE_SECONDS", cls.backoff_base),
                   backoff_cap=number("RETRY_CAP_SECONDS", cls.backoff_cap),
                   retention_days=int(number("RETENTION_DAYS", cls.retention_days)))

    def backoff(self, attempt: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: str
    """At most EXCERPT bytes of the receiver's answer, decoded: the rest is never read."""


async def _excerpt(response: httpx.Response) -> str:
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        kept += chunk[:EXCERPT - len(kept)]
        if len(kept) >= EXCERPT:
            break
    return kept.decode(response.encoding or "utf-8", errors="replace")


@dataclass(frozen=True)
class _Owed:
    service_uri: str
    headers: dict[str, str]
    body: str
    created_at: datetime | None = None


class WebhookDelivery:
    def __init__(self, ctx: RegistryContext, sealer: Sealer, settings: DeliverySettings) -> None:
        self.ctx = ctx
        self.sealer = sealer
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, job: Job) -> None:
        event_id, webhook_id = int(job.payload["event"]), int(job.payload["webhook"])
        owed = await self.ctx.run(self._load, event_id, webhook_id)
        if owed is None:
            return
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                   **{name: value for name, value in owed.headers.items() if not forbidden_header(name)}}
        started = time.perf_counter()
        answer: _Answer | None = None
        error: str | None = None
        try:
            async with self._http().stream("POST", owed.service_uri, content=owed.body.encode(),
                                           headers=headers) as response:
                answer = _Answer(response.status_code, response.reason_phrase[:200], dict(response.headers),
                                 await _excerpt(response))
        except EgressRefused as exc:
            error = f"refused by the outbound policy: {exc}"[:500]
        except Exception as exc:  # noqa: BLE001 - any failure is an attempt to record, never a traceback
            error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:500]
        duration_ms = int((time.perf_counter() - started) * 1000)
        await self.ctx.run(self._record, job, event_id, webhook_id, owed, headers, answer, error, duration_ms)
        if answer is not None and 200 <= answer.status < 300 and owed.created_at is not None:
            created = owed.created_at if owed.created_at.tzinfo else owed.created_at.replace(tzinfo=UTC)
            metrics.webhook_delivered((utcnow() - created).total_seconds())
        if answer is None or not 200 <= answer.status < 300:
            raise JobFailed(error or f"the webhook answered {answer.status if answer else '?'}",
                            retry_after=self.settings.backoff(job.attempt))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=False,
                                             transport=self.ctx.egress.async_transport())
        return self._client

    def _load(self, event_id: int, webhook_id: int) -> _Owed | None:
        """What to send; None when the webhook or the event is gone (deleted, or pruned), which ends the job."""
        with self.ctx.engine.connect() as conn:
            hook = conn.execute(select(webhooks.c.callback_sealed, webhooks.c.registry_id)
                                .where(webhooks.c.id == webhook_id)).first()
            event = conn.execute(select(events.c.payload, events.c.registry_id, events.c.created_at)
                                 .where(events.c.id == event_id)).first()
        if hook is None or event is None or hook.registry_id != event.registry_id:
            return None
        sealed, body = hook.callback_sealed, event.payload
        callback = json.loads(self.sealer.unseal(sealed))
        return _Owed(callback["serviceUri"], callback["customHeaders"], body, event.created_at)

    def _record(self, job: Job, event_id: int, webhook_id: int, owed: _Owed, headers: dict[str, str],
                answer: _Answer | None, error: str | None, duration_ms: int) -> None:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            conn.execute(insert(delivery_attempts).values(
                event_id=event_id, job_id=job.id, webhook_id=webhook_id, attempt=job.attempt,
                request_uri=owed.service_uri, request_headers=json.dumps(headers), request_body=owed.body,
                response_status=answer.status if answer is not None else None,
                response_reason=answer.reason if answer is not None else None,
                response_headers=json.dumps(answer.headers) if answer is not None else None,
                response_body=answer.body if answer is not None else None,
                error=error, duration_ms=duration_ms, at=utcnow()))

    def prune(self) -> None:
        """Events older than the retention period go, with their delivery history, unless still owed."""
        cutoff = utcnow() - timedelta(days=self.settings.retention_days)
        with write_transaction(self.ctx.engine) as conn:
            owed = {int(payload["event"]) for payload in pending_payloads(conn, WEBHOOK_JOB)}
            conn.execute(delete(events).where(events.c.created_at < cutoff, events.c.id.not_in(owed)))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
