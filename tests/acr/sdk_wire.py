"""What Microsoft's `azure-containerregistry` SDK puts on the wire: a transport that records every exchange,
and the clients (with a cargohold-issued credential, or anonymous) built on it."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.containerregistry import ContainerRegistryClient
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ClientSecretCredential

from tests.support.server import RunningServer

AUDIENCE = "https://containerregistry.azure.net"
API_VERSION = "2021-07-01"
CHUNK = 4 * 1024 * 1024  # the SDK's DEFAULT_CHUNK_SIZE, for uploads and ranged downloads alike


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    body_size: int | None
    body: bytes | dict[str, str] | None  # a small request body, or the form of a token request
    status: int
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.url).path)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)

    @property
    def authorized(self) -> bool:
        return "authorization" in self.request_headers


def _small_body(body: Any) -> bytes | dict[str, str] | None:
    if isinstance(body, dict):
        return {str(k): str(getattr(v, "value", v)) for k, v in body.items()}
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes) and len(body) <= 64 * 1024:
        return body
    if isinstance(body, io.BytesIO) and body.getbuffer().nbytes <= 64 * 1024:
        return body.getvalue()
    return None


def _body_size(body: Any) -> int | None:
    if body is None:
        return None
    if isinstance(body, (bytes, str)):
        return len(body)
    if isinstance(body, io.BytesIO):
        return body.getbuffer().nbytes
    return -1  # a form (dict) or another stream


class RecordingTransport(RequestsTransport):
    """The SDK's own transport (requests), noting each request and the status and headers of its answer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exchanges: list[Exchange] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        size, small = _body_size(request.body), _small_body(request.body)
        response = super().send(request, **kwargs)
        self.exchanges.append(Exchange(
            request.method, request.url, {k.lower(): v for k, v in request.headers.items()}, size, small,
            response.status_code, {k.lower(): v for k, v in response.headers.items()}))
        return response

    def mark(self) -> int:
        return len(self.exchanges)

    def since(self, mark: int, *, authorized_only: bool = True) -> list[Exchange]:
        """Exchanges after `mark`, leaving out the token service and (by default) the unauthenticated first
        tries the SDK always makes before it answers a challenge."""
        return [e for e in self.exchanges[mark:]
                if not e.path.startswith("/oauth2/") and (e.authorized or not authorized_only)]

    def challenged_scopes(self, mark: int) -> list[str]:
        """The `scope` of each Bearer challenge answered to an unauthenticated first try after `mark`."""
        scopes = []
        for e in self.exchanges[mark:]:
            if e.status == 401 and not e.authorized:
                found = re.search(r'scope="([^"]*)"', e.headers.get("www-authenticate", ""))
                scopes.append(found.group(1) if found else "")
        return scopes


def owner_credential(server: RunningServer, ca: str) -> ClientSecretCredential:
    client_id, secret = server.credentials
    return ClientSecretCredential("cargohold", client_id, secret, authority=server.url,
                                  disable_instance_discovery=True, connection_verify=ca)


def sdk_client(server: RunningServer, ca: str, credential: ClientSecretCredential | None,
               transport: RecordingTransport | None = None) -> ContainerRegistryClient:
    kwargs: dict[str, Any] = {"audience": AUDIENCE, "connection_verify": ca}
    if transport is not None:
        kwargs["transport"] = transport
    return ContainerRegistryClient(server.url, credential, **kwargs)
