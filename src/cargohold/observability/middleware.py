"""The outermost ASGI layer: request ids, request metrics, the access log, `/healthz`, `/readyz` and
`/metrics`.

A pure ASGI middleware (no BaseHTTPMiddleware): on the hot path it adds a header, reads a clock twice and
tallies the request. Error answers (status >= 400, JSON) get the request id written into their body:
`errors[].detail.requestId` on /v2 and /acr, an ARM `additionalInfo` entry on the management plane.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from time import perf_counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cargohold.kernel.context import RegistryContext
from cargohold.observability import requestid
from cargohold.observability.health import readiness
from cargohold.observability.metrics import CONTENT_TYPE, Metrics, render
from cargohold.observability.settings import ObservabilitySettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("cargohold.access")
ENRICH_LIMIT = 64 * 1024
UNMATCHED = "unmatched"
_FORWARDING = (b"x-forwarded-for", b"forwarded", b"x-real-ip")
_UPLOAD_METHODS = frozenset(("POST", "PATCH", "PUT"))
_REQUEST_ID_HEADER = requestid.HEADER
_SCOPE_KEY = requestid.SCOPE_KEY
_current = requestid.current


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, ctx: RegistryContext, settings: ObservabilitySettings,
                 metrics: Metrics | None) -> None:
        self.app = app
        self.ctx = ctx
        self.settings = settings
        self.metrics = metrics
        self.log_all = settings.access_log == "all"
        self.log_errors = settings.access_log in ("all", "errors")
        self.serve_metrics = metrics is not None and settings.metrics_port is None
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, self._watch_shutdown(receive) if scope["type"] == "lifespan" else receive, send)
            return
        path = scope["path"]
        if path == "/healthz" or path == "/readyz" or path == "/metrics":
            await self._own(path, scope, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER:
                incoming = value
                break
        request_id = requestid.accepted(incoming) if incoming is not None else requestid.new_id()
        scope[_SCOPE_KEY] = request_id
        exchange = _Exchange(send, request_id)
        token = _current.set(request_id)
        started = perf_counter()
        method = scope["method"]
        metrics = self.metrics
        upload = method in _UPLOAD_METHODS
        if upload:
            receive = exchange.counting(receive)
            upload = metrics is not None and "/blobs/uploads/" in path
            if upload:
                metrics.uploads_in_flight.inc()  # type: ignore[union-attr]
        try:
            await self.app(scope, receive, exchange.send)
        finally:
            _current.reset(token)
            elapsed = perf_counter() - started
            route = scope.get("route")
            template = route.path if route is not None else UNMATCHED
            status = exchange.status
            if metrics is not None:
                if upload:
                    metrics.uploads_in_flight.dec()
                metrics.record(template, method, status, elapsed, exchange.received, exchange.sent)
                if self._flusher is None:
                    self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(metrics))
            if self.log_all or (self.log_errors and status >= 400):
                _log_access(scope, request_id, template, status, elapsed, exchange.received, exchange.sent)

    def _watch_shutdown(self, receive: Receive) -> Receive:
        """On shutdown, stop the flushing task and write out what is still tallied."""
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self.metrics is not None:
                if self._flusher is not None:
                    self._flusher.cancel()
                try:
                    self.metrics.flush(self.ctx)
                except Exception:  # noqa: BLE001 - shutting down regardless
                    logging.getLogger("cargohold.metrics").warning("flushing metrics failed", exc_info=True)
            return message
        return watched

    async def _flush_loop(self, metrics: Metrics) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                metrics.flush(self.ctx)
            except Exception:  # noqa: BLE001 - metrics must never take the server down
                logging.getLogger("cargohold.metrics").warning("flushing metrics failed", exc_info=True)

    async def _own(self, path: str, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"method not allowed\n")
            return
        if scope["method"] == "HEAD":
            send = _headers_only(send)
        if path == "/healthz":
            await _plain(send, 200, b"ok\n")
        elif path == "/readyz":
            found = await readiness(self.ctx)
            await _answer(send, 200 if found.ready else 503, json.dumps(found.to_json()).encode() + b"\n",
                          b"application/json")
        elif not self.serve_metrics:
            await _plain(send, 404, b"metrics are not served on this port\n")
        elif (refusal := self._refusal(scope)) is not None:
            await _plain(send, 401 if self.settings.metrics_token else 403, refusal)
        else:
            assert self.metrics is not None
            self.metrics.flush(self.ctx)
            body = await self.ctx.run(render, self.ctx.engine)
            await _answer(send, 200, body, CONTENT_TYPE.encode())

    def _refusal(self, scope: Scope) -> bytes | None:
        """Why this client may not read /metrics, or None."""
        headers = dict(scope["headers"])
        if self.settings.metrics_token:
            return None if token_matches(headers.get(b"authorization"), self.settings.metrics_token) else (
                b"metrics need Authorization: Bearer <the --metrics-token>\n")
        client = scope.get("client")
        if not client or not _loopback(client[0]) or any(name in headers for name in _FORWARDING):
            return b"metrics are served only to loopback clients unless --metrics-token is set\n"
        return None


class _Exchange:
    """One request's response on its way out: adds the request id header, counts bytes, and holds a JSON error
    answer until its body can carry the request id."""

    __slots__ = ("_send", "request_id", "status", "sent", "received", "_held", "_held_body")

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self.request_id = request_id
        self.status = 500
        self.sent = 0
        self.received = 0
        self._held: Message | None = None
        self._held_body = b""

    async def send(self, message: Message) -> None:
        if self._held is not None:
            await self._release(message)
            return
        if message["type"] == "http.response.body":
            self.sent += len(message.get("body", b""))
        elif message["type"] == "http.response.start":
            status = self.status = message["status"]
            headers = [*message.get("headers", ()), (_REQUEST_ID_HEADER, self.request_id.encode())]
            message["headers"] = headers
            if status >= 400 and _is_json(headers):
                self._held = message
                return
        await self._send(message)

    async def _release(self, message: Message) -> None:
        more = message.get("more_body", False)
        self._held_body += message.get("body", b"")
        if more and len(self._held_body) <= ENRICH_LIMIT:
            return
        start, body = _with_request_id(self._held, self._held_body, self.request_id, more)  # type: ignore[arg-type]
        self._held = None
        self.sent += len(body)
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    def counting(self, receive: Receive) -> Receive:
        async def counted() -> Message:
            message = await receive()
            self.received += len(message.get("body", b""))
            return message
        return counted


def token_matches(authorization: bytes | None, token: str) -> bool:
    if not authorization or not authorization.lower().startswith(b"bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip(), token.encode())


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"application/json")
    return False


def _with_request_id(start: Message, body: bytes, request_id: str, more: bool) -> tuple[Message, bytes]:
    """The held error answer with the request id in its body (left alone if it is not one of our shapes)."""
    if more or not body:
        return start, body
    try:
        document = json.loads(body)
    except ValueError:
        return start, body
    if not add_request_id(document, request_id):
        return start, body
    changed = json.dumps(document).encode()
    headers = [(name, value) for name, value in start["headers"] if name != b"content-length"]
    headers.append((b"content-length", str(len(changed)).encode()))
    return {**start, "headers": headers}, changed


def add_request_id(document: object, request_id: str) -> bool:
    """Put the request id into an error document: each /v2 error's `detail` (when it is an object or empty),
    or an ARM error's `additionalInfo`. False when the document is neither shape."""
    if not isinstance(document, dict):
        return False
    errors = document.get("errors")
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict):
                detail = error.get("detail")
                if detail is None:
                    error["detail"] = {"requestId": request_id}
                elif isinstance(detail, dict):
                    detail.setdefault("requestId", request_id)
        return True
    error = document.get("error")
    if isinstance(error, dict):
        info = error.get("additionalInfo")
        entry = {"type": "RequestId", "info": {"requestId": request_id}}
        error["additionalInfo"] = [*info, entry] if isinstance(info, list) else [entry]
        return True
    return False


def _log_access(scope: Scope, request_id: str, route: str, status: int, elapsed: float, received: int,
                sent: int) -> None:
    client = scope.get("client")
    path = scope["path"]
    access_log.info("%s %s %d %.1fms", scope["method"], path[:300], status, elapsed * 1000, extra={
        "request_id": request_id, "method": scope["method"], "path": path[:1000], "route": route, "status": status,
        "duration_ms": round(elapsed * 1000, 2), "client": client[0] if client else None, "bytes_in": received,
        "bytes_out": sent})


def _headers_only(send: Send) -> Send:
    async def without_body(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)
    return without_body


async def _plain(send: Send, status: int, body: bytes) -> None:
    await _answer(send, status, body, b"text/plain; charset=utf-8")


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
