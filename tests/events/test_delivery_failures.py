"""A delivery that fails in any way, not only with an HTTP error, is recorded as an attempt with the error and
retried, never left as a traceback with nothing in `listEvents` (stored webhooks from before the stricter
validation may still hold a URI the HTTP client refuses)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from cargohold.events import delivery
from cargohold.jobs.queue import Job
from cargohold.jobs.worker import JobFailed

pytestmark = pytest.mark.backend_independent


class _InlineContext:
    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


@pytest.mark.parametrize(("uri", "headers"), [
    ("http://127.0.0.1:9/a\r\nX-Injected: 1", {}),
    ("http://exa mple.com:99999/", {}),
    ("http://127.0.0.1:9/hook", {"X-Bad": "caf\u00e9"}),
])
def test_a_delivery_the_client_refuses_is_an_attempt_with_its_error(uri: str, headers: dict[str, str]) -> None:
    settings = delivery.DeliverySettings(timeout=1)
    sender = delivery.WebhookDelivery(_InlineContext(), None, settings)  # type: ignore[arg-type]
    recorded: list[tuple[Any, ...]] = []
    sender._load = lambda event_id, webhook_id: delivery._Owed(uri, headers, "{}")  # type: ignore[method-assign]
    sender._record = lambda *args: recorded.append(args)  # type: ignore[method-assign]

    async def attempt() -> None:
        try:
            await sender(Job(1, "webhook", "webhook:1", {"event": 1, "webhook": 1}, 1, 5))
        finally:
            await sender.close()

    with pytest.raises(JobFailed) as failed:
        asyncio.run(attempt())
    [(job, event_id, webhook_id, owed, sent_headers, response, error, duration_ms)] = recorded
    assert response is None and error and str(failed.value) == error
    assert owed.service_uri == uri and isinstance(duration_ms, int)
