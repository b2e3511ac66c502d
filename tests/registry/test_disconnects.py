"""A client that disconnects in the middle of an upload costs one log line, not a traceback, and the upload
stays usable."""

from __future__ import annotations

import base64
import socket
import time

import httpx

from tests.support.server import RunningServer


def _log(server: RunningServer) -> str:
    return (server.data_dir.parent / f"server-{server.port}.log").read_text(errors="replace")


def _send_half_and_leave(server: RunningServer, location: str, framing: str, body: bytes) -> None:
    credentials = base64.b64encode(":".join(server.credentials).encode()).decode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: Basic {credentials}\r\n"
                     f"{framing}\r\n\r\n".encode() + body)
        time.sleep(0.3)


def _wait_for_disconnects(server: RunningServer, since: int, count: int) -> None:
    """Until the server has noticed `count` disconnects: the upload's lease is held until it notices, and a
    PATCH arriving before then is refused (409) without reading its body."""
    deadline = time.monotonic() + 10
    while _log(server)[since:].count("disconnected during PATCH") < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_client_leaving_mid_upload_is_one_log_line(server: RunningServer, client: httpx.Client) -> None:
    location = client.post("/v2/disconnect/app/blobs/uploads/").headers["Location"]
    before = len(_log(server))
    _send_half_and_leave(server, location, "Content-Length: 50000000", b"x" * 2_000_000)
    _wait_for_disconnects(server, before, 1)
    _send_half_and_leave(server, location, "Transfer-Encoding: chunked", b"100000\r\n" + b"y" * 0x100000 + b"\r\n")
    _wait_for_disconnects(server, before, 2)
    written = _log(server)[before:]
    assert written.count("disconnected during PATCH") == 2, written[-3000:]
    assert "Traceback" not in written, written[-3000:]

    status = client.get(location)
    assert status.status_code == 204 and status.headers["Range"] == "0-0", "nothing of a broken chunk is kept"
    assert client.patch(location, content=b"resumed").status_code == 202
