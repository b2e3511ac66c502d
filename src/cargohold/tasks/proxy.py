"""A run's door to this server's registries: one loopback port per login server the run may reach.

buildah's `registries.conf` (see `engine.Workspace`) sends `<login server>/…` to `127.0.0.1:<port>`; the proxy
forwards each request to the server's endpoint under the registry's own Host name, with a bearer token that
`TokenSource` mints for exactly the repository and actions the request needs (pull for reads; push only to
the repositories the run was allowed to push to). So a run's pulls and pushes take the ordinary `/v2/` path
(permissions, locks, quotas, events, webhooks all apply), and buildah never holds a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from cargohold.tasks.engine import Route

REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs|manifests|tags|referrers)/")
MANIFEST_PATH = re.compile(r"^/v2/(?P<name>.+?)/manifests/(?P<reference>[^/]+)$")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "authorization", "content-length"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

TokenSource = Callable[[str, str | None, bool], Awaitable[str]]
"""(login server, repository or None for the base endpoint, write?) → a bearer token."""


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone (the worker owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RegistryProxy:
    endpoint: str
    """The server's base URL as the worker reaches it, e.g. http://127.0.0.1:5000."""
    login_servers: list[str]
    tokens: TokenSource
    verify: bool | str = True

    def __post_init__(self) -> None:
        self._by_port: dict[int, str] = {}
        self._sockets: list[socket.socket] = []
        self._server: _QuietServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.pulled: dict[tuple[str, str, str], str] = {}
        """(login server, repository, reference) → digest of every manifest the run fetched by tag."""

    async def start(self) -> list[Route]:
        for login_server in self.login_servers:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            self._sockets.append(sock)
            self._by_port[sock.getsockname()[1]] = login_server
        verify = ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify
        self._client = httpx.AsyncClient(base_url=self.endpoint, verify=verify, timeout=httpx.Timeout(600, connect=30),
                                         follow_redirects=False)
        config = uvicorn.Config(self.app, interface="asgi3", log_level="error", access_log=False, lifespan="off",
                                timeout_keep_alive=30)
        self._server = _QuietServer(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=self._sockets))
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
            await asyncio.sleep(0.01)
        return [Route(login_server, port) for port, login_server in self._by_port.items()]

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._serving, 10)
        if self._client is not None:
            await self._client.aclose()
        for sock in self._sockets:
            sock.close()

    async def app(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        login_server = self._by_port.get(scope["server"][1]) if scope.get("server") else None
        assert self._client is not None
        path: str = scope["path"]
        if login_server is None or not path.startswith("/v2/"):
            await _answer(send, 404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"not a registry path"}]}')
            return
        method = scope["method"]
        match = REPOSITORY_PATH.match(path)
        token = await self.tokens(login_server, match.group("name") if match else None, method in WRITE_METHODS)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.decode("latin-1").lower() not in HOP_BY_HOP]
        headers += [("Host", login_server), ("Authorization", f"Bearer {token}")]
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        body = _body(receive) if method in WRITE_METHODS else None
        request = self._client.build_request(method, target, headers=headers, content=body)
        length = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
        if length is not None and body is not None:
            request.headers["Content-Length"] = length.decode("latin-1")
            request.headers.pop("Transfer-Encoding", None)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await _answer(send, 502, f'{{"errors":[{{"code":"UNKNOWN","message":"upstream: {type(exc).__name__}"}}]}}'
                          .encode())
            return
        manifest = MANIFEST_PATH.match(path)
        if manifest and method == "GET" and response.status_code == 200 and ":" not in manifest.group("reference"):
            digest = response.headers.get("docker-content-digest")
            if digest:
                self.pulled.setdefault((login_server, manifest.group("name"), manifest.group("reference")), digest)
        try:
            out = [(k.encode("latin-1"), self._location(k, v).encode("latin-1"))
                   for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]
            if "content-length" in response.headers:
                out.append((b"content-length", response.headers["content-length"].encode()))
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for piece in response.aiter_raw():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    def _location(self, name: str, value: str) -> str:
        """Upload locations on this server become relative, so buildah comes back through the proxy; signed
        URLs of a cloud store stay as they are."""
        if name.lower() != "location":
            return value
        parts = urlsplit(value)
        endpoint = urlsplit(self.endpoint)
        if parts.netloc and parts.path.startswith("/v2/") and (
                parts.netloc == endpoint.netloc or parts.hostname in self.login_servers):
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return value


async def _body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> Any:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body"):
            return


async def _answer(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
