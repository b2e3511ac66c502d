"""A tiny HTTP server on a loopback address of the test's choosing that counts the connections it accepts and
answers every request with a fixed status, headers and body: a target (or a redirector, with `{path}` in a
header standing for the request's path) for outbound tests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Listener:
    def __init__(self, address: str = "127.0.0.1", status: int = 200, headers: dict[str, str] | None = None,
                 body: bytes = b"ok") -> None:
        self.status, self.headers, self.body = status, dict(headers or {}), body
        self.requests: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                listener.requests.append(f"{self.command} {self.path}")
                self.send_response(listener.status)
                for name, value in listener.headers.items():
                    self.send_header(name, value.replace("{path}", self.path))
                self.send_header("Content-Length", str(len(listener.body)))
                self.end_headers()
                try:
                    if self.command != "HEAD":
                        self.wfile.write(listener.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            connections = 0

            def verify_request(self, request: Any, client_address: Any) -> bool:
                self.connections += 1
                return True

        self._http = Server((address, 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def connections(self) -> int:
        return self._http.connections

    def url(self, path: str = "/") -> str:
        host = self._http.server_address[0]
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
