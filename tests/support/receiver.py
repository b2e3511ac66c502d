"""An HTTP server on loopback that records what webhooks post to it and answers as a test tells it."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT = 15.0


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    received_at: float
    """time.time() when the request was read."""
    status: int
    """What the receiver answered."""
    note: Any = None
    """What `Receiver.inspect` returned for this request, called as it arrived."""

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every POST and answers 200 unless told otherwise:
    `answer(500, 500)` makes the next two requests (to one path, or to any) fail. `delay` slows every answer."""

    def __init__(self, port: int = 0) -> None:
        self._changed = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._scripts: dict[str | None, deque[int]] = {}
        self.delay = 0.0
        self.inspect: Callable[[bytes], Any] | None = None
        """Called with each body as it arrives (say, to look at a store at the moment of delivery)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received_at = time.time()
                note = receiver.inspect(body) if receiver.inspect is not None else None
                status = receiver._next_status(self.path)
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = json.dumps({"received": len(body)} if status < 300 else {"error": "scripted"}).encode()
                with receiver._changed:
                    receiver._deliveries.append(Delivery(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                         body, received_at, status, note))
                    receiver._changed.notify_all()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):  # the sender gave up waiting (its timeout)
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def answer(self, *statuses: int, path: str | None = None) -> None:
        """Answer the next requests (to `path`, or to any path) with these statuses, then 200 again."""
        with self._changed:
            self._scripts.setdefault(path, deque()).extend(statuses)

    def _next_status(self, path: str) -> int:
        with self._changed:
            for key in (path, None):
                script = self._scripts.get(key)
                if script:
                    return script.popleft()
        return 200

    def received(self, path: str | None = None) -> list[Delivery]:
        with self._changed:
            return [d for d in self._deliveries if path is None or d.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = WAIT,
                 until: Callable[[list[Delivery]], bool] | None = None) -> list[Delivery]:
        """Wait until at least `count` requests (to `path`) arrived, and `until` holds of them if given."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                got = [d for d in self._deliveries if path is None or d.path == path]
                if len(got) >= count and (until is None or until(got)):
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"waited {timeout} s for {count} deliveries to {path or 'any path'}, "
                                         f"got {len(got)}: {[d.event.get('action') for d in got]}")
                self._changed.wait(remaining)
