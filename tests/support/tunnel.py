"""An HTTP CONNECT proxy on loopback that sends every tunnel to one local port: how tests reach login servers
(`NAME.DOMAIN`, port 443) offline, with no DNS and no /etc/hosts entry.

Clients are pointed at it with `HTTPS_PROXY` (Go's net/http, so skopeo and containerd's ctr, and Python's
requests, so the Azure SDKs, all honour it). TLS runs end to end through the tunnel: the client sends the login
server as SNI and verifies the certificate against that name, exactly as it would without the proxy.
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Any


class Tunnel:
    def __init__(self, target_port: int, domain: str) -> None:
        self.target_port = target_port
        self.domain = domain.lower()
        self.hosts: list[str] = []
        """The `host:port` of every tunnel asked for, in order."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def environment(self) -> dict[str, str]:
        """Proxy variables for a client process: tunnels for https, nothing through the proxy on loopback."""
        return {"HTTPS_PROXY": self.url, "https_proxy": self.url, "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost"}

    def __enter__(self) -> Tunnel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(request_line) != 3 or request_line[0] != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host = request_line[1].lower()
            self.hosts.append(host)
            name = host.rsplit(":", 1)[0]
            if name != self.domain and not name.endswith(f".{self.domain}"):
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with upstream:
                upstream.settimeout(None)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
                if rest:
                    upstream.sendall(rest)
                _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    selector = selectors.DefaultSelector()
    selector.register(a, selectors.EVENT_READ, b)
    selector.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            for key, _ in selector.select(timeout=120):
                source: Any = key.fileobj
                try:
                    data = source.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                key.data.sendall(data)
    finally:
        selector.close()
