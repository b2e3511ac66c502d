"""`--metrics-port`: /metrics on a port of its own, answered by the server's supervisor process (the one that
starts the workers), from the values every worker writes to the shared directory. Workers write theirs about
once a second, so a scrape here may be up to a second behind."""

from __future__ import annotations

import functools
import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cargohold.observability.settings import ObservabilitySettings

log = logging.getLogger("cargohold.metrics")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature is the base class's
        pass


def start(settings: ObservabilitySettings) -> WSGIServer:
    """Listen on the metrics port in a daemon thread."""
    server = make_server(settings.metrics_host, settings.metrics_port or 0, metrics_app(settings),
                         _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="cargohold-metrics", daemon=True).start()
    return server


def metrics_app(settings: ObservabilitySettings) -> Callable[..., Iterable[bytes]]:
    @functools.cache
    def engine() -> Any:
        from cargohold.config import Settings
        from cargohold.db.engine import make_engine

        return make_engine(Settings.from_env().db_url)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from cargohold.observability.metrics import CONTENT_TYPE, render

        if environ.get("PATH_INFO") != "/metrics":
            return _reply(start_response, "404 Not Found", b"only /metrics is served here\n")
        if settings.metrics_token and not _token_matches(environ.get("HTTP_AUTHORIZATION", ""),
                                                         settings.metrics_token):
            return _reply(start_response, "401 Unauthorized",
                          b"metrics need Authorization: Bearer <the --metrics-token>\n")
        try:
            body = render(engine)
        except Exception:  # noqa: BLE001 - answer 500 and log, keep listening
            log.exception("rendering metrics failed")
            return _reply(start_response, "500 Internal Server Error", b"rendering metrics failed\n")
        return _reply(start_response, "200 OK", body, CONTENT_TYPE)

    return app


def _token_matches(authorization: str, token: str) -> bool:
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def _reply(start_response: Callable[..., Any], status: str, body: bytes,
           content_type: str = "text/plain; charset=utf-8") -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]
