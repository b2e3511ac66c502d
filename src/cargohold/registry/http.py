"""Request parsing and response rendering shared by the `/v2/` handlers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import NoReturn
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from cargohold.blobs.store import BlobStore
from cargohold.oci.digest import Digest
from cargohold.oci.errors import RegistryError, pagination_invalid, too_large
from cargohold.oci.reference import validate_name

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
JSON = "application/json"
log = logging.getLogger("cargohold.http")


def error_response(error: RegistryError) -> Response:
    headers = {**API_VERSION, **error.headers}
    return Response(json.dumps(error.body()), error.status, headers, media_type=JSON)


DRAIN_LIMIT = 64 * 1024 * 1024


async def registry_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    await drain_body(request)
    return error_response(exc)


async def drain_body(request: Request) -> None:
    """Read and drop a request body the handler never read, up to DRAIN_LIMIT.

    Clients such as the Azure SDK send a request unauthenticated, expect 401, and send it again with a token;
    answering before their body is read breaks the connection under them. Past the limit we let it break.
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > DRAIN_LIMIT):
        return
    drained = 0
    try:
        async for chunk in request.stream():
            drained += len(chunk)
            if drained > DRAIN_LIMIT:
                return
    except (RuntimeError, ClientDisconnect):
        return


async def http_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(RegistryError("UNSUPPORTED", "method not allowed", 405))
    if exc.status_code == 404:
        return error_response(RegistryError("NOT_FOUND", "no such endpoint", 404))
    return error_response(RegistryError("UNKNOWN", exc.detail or "request failed", exc.status_code))


async def client_disconnect_handler(request: Request, exc: Exception) -> Response:
    """A client that went away while sending its body (an interrupted push) is worth one line, not a traceback:
    the upload keeps what it had acknowledged, and the client may resume it. Nobody reads the answer."""
    assert isinstance(exc, ClientDisconnect)
    log.info("client %s disconnected during %s %s", request.client.host if request.client else "?",
             request.method, request.url.path[:200])
    return Response(status_code=400)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """Last resort: log the failure on our side; the client gets a spec-shaped error, never a trace."""
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(RegistryError("UNKNOWN", "internal error", 500))


def repository(request: Request) -> str:
    return validate_name(request.path_params["name"])


def digest_from(text: str) -> Digest:
    return Digest.parse(text)


def page_size(request: Request) -> int | None:
    raw = request.query_params.get("n")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise pagination_invalid("n must be a non-negative integer")
    return int(raw)


def next_link(path: str, n: int | None, last: str) -> str:
    query = {"last": last} if n is None else {"n": n, "last": last}
    return f'<{path}?{urlencode(query)}>; rel="next"'


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise RegistryError("SIZE_INVALID", "Content-Length is not a number", 400)
    return int(raw)


async def read_limited(request: Request, limit: int) -> bytes:
    """Read a body that must stay under `limit` bytes, refusing before buffering more than that."""
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise too_large(f"body is {declared} bytes, the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(f"body exceeds the limit of {limit} bytes")
    return bytes(body)


def body_stream(request: Request) -> AsyncIterator[bytes]:
    return request.stream()


MAX_RANGES = 100
"""More parts than this in one Range header are ignored (the whole blob is sent), as RFC 9110 allows."""
_RANGE_SPEC = re.compile(r"^(\d{0,19})-(\d{0,19})$")
"""A position has at most 19 digits (2**63); longer ones are malformed, not a slow big-number parse."""


def byte_ranges(header: str | None, size: int, if_range: str | None = None,
                etag: str | None = None) -> list[tuple[int, int]]:
    """The `[start, end)` byte ranges a GET asks for, sorted and merged; empty means the whole blob.

    RFC 9110: a Range with another unit than `bytes` is ignored, as is one whose `If-Range` does not match.
    A malformed byte range, or one no byte of the blob satisfies, is refused with 416 in the spec's error
    shape and `Content-Range: bytes */<size>`.
    """
    if header is None or (if_range is not None and if_range.strip() != etag):
        return []
    unit, equals, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        if not equals and header.strip().lower().startswith("bytes"):
            _bad_range(header, size)
        return []
    parts = specs.split(",")
    if len(parts) > MAX_RANGES:
        return []
    ranges: list[tuple[int, int]] = []
    for part in parts:
        match = _RANGE_SPEC.match(part.strip())
        if match is None or match.groups() == ("", ""):
            _bad_range(header, size)
        first, last = match.groups()
        if first:
            start = int(first)
            if last and int(last) < start:
                _bad_range(header, size)
            end = min(size, int(last) + 1) if last else size
        else:
            start, end = max(0, size - int(last)), size
        if start < end:
            ranges.append((start, end))
    if not ranges:
        _bad_range(header, size, "requested range not satisfiable")
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _bad_range(header: str, size: int, message: str = "malformed byte range") -> NoReturn:
    raise RegistryError("RANGE_INVALID", message, 416, {"range": header[:100], "size": size},
                        headers={"Content-Range": f"bytes */{size}"})


def proxied_blob(store: BlobStore, digest: Digest, size: int, ranges: list[tuple[int, int]],
                 headers: dict[str, str]) -> Response:
    """Stream a blob the store cannot hand to the kernel (a cloud store without redirects), honouring a single
    byte range (several are answered with the whole blob, which RFC 9110 allows)."""
    start, end = 0, size
    status = 200
    if len(ranges) == 1:
        start, end = ranges[0]
        status = 206
        headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{size}"}
    return StreamingResponse(store.read(digest, PROXY_CHUNK, start, end), status,
                             {**headers, "Content-Length": str(end - start)}, media_type="application/octet-stream")


PROXY_CHUNK = 1024 * 1024
