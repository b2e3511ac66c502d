"""The `request` part of an event, from the HTTP request that made the change."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from cargohold.events.payload import RequestOrigin
from cargohold.observability.requestid import from_scope


def request_origin(request: Request) -> RequestOrigin:
    """The request behind an event; its id is the request id of the logs and the `X-Request-Id` header."""
    return RequestOrigin(from_scope(request.scope) or str(uuid.uuid4()), request.headers.get("host", "")[:255],
                         request.method,
                         request.headers.get("user-agent", "")[:256])
