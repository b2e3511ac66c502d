"""Deliveries to webhooks stored before their URI and headers were validated: one that fails in any way, not
only with an HTTP error, is recorded as an attempt with the error and retried, never left as a traceback with
nothing in `listEvents`; framing and hop-by-hop headers are left out of what is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from cargohold.events import delivery
from cargohold.jobs.queue import Job
from cargohold.jobs.worker import JobFailed
from cargohold.kernel.egress import LOOPBACK_ALLOW, EgressPolicy
from tests.support.receiver import Receiver

pytestmark = pytest.mark.backend_independent


class _InlineContext:
    egress = EgressPolicy.from_allow_list(LOOPBACK_ALLOW)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


def _sender(uri: str, headers: dict[str, str]) -> tuple[delivery.WebhookDelivery, list[tuple[Any, ...]]]:
    settings = delivery.DeliverySettings(timeout=2)
    sender = delivery.WebhookDelivery(_InlineContext(), None, settings)  # type: ignore[arg-type]
    recorded: list[tuple[Any, ...]] = []
    body = '{"id": "framed"}'
    sender._load = lambda event_id, webhook_id: delivery._Owed(uri, headers, body)  # type: ignore[method-assign]
    sender._record = lambda *args: recorded.append(args)  # type: ignore[method-assign]
    return sender, recorded


async def _deliver(sender: delivery.WebhookDelivery) -> None:
    try:
        await sender(Job(1, "webhook", "webhook:1", {"event": 1, "webhook": 1}, 1, 5))
    finally:
        await sender.close()


@pytest.mark.parametrize(("uri", "headers"), [
    ("http://127.0.0.1:9/a\r\nX-Injected: 1", {}),
    ("http://exa mple.com:99999/", {}),
    ("http://127.0.0.1:9/hook", {"X-Bad": "caf\u00e9"}),
])
def test_a_delivery_the_client_refuses_is_an_attempt_with_its_error(uri: str, headers: dict[str, str]) -> None:
    sender, recorded = _sender(uri, headers)
    with pytest.raises(JobFailed) as failed:
        asyncio.run(_deliver(sender))
    [(job, event_id, webhook_id, owed, sent_headers, response, error, duration_ms)] = recorded
    assert response is None and error and str(failed.value) == error
    assert owed.service_uri == uri and isinstance(duration_ms, int)


def test_framing_headers_stored_before_they_were_refused_are_not_sent() -> None:
    receiver = Receiver().start()
    try:
        sender, recorded = _sender(receiver.url("/framed"), {"Content-Length": "2", "Connection": "close",
                                                               "X-Kept": "yes"})
        asyncio.run(_deliver(sender))
        [delivery] = receiver.wait_for(1, "/framed")
    finally:
        receiver.stop()
    assert delivery.event == {"id": "framed"} and delivery.headers["x-kept"] == "yes"
    [attempt] = recorded
    assert attempt[5].status == 200 and attempt[6] is None
