"""The `request` part of an event, from the HTTP request that made the change."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from cargohold.events.payload import RequestOrigin


def request_origin(request: Request) -> RequestOrigin:
    return RequestOrigin(str(uuid.uuid4()), request.headers.get("host", "")[:255], request.method,
                         request.headers.get("user-agent", "")[:256])
