"""A small pull-only client for another registry's OCI Distribution API, for imports.

It answers WWW-Authenticate challenges as docker does (Bearer tokens from the realm, or Basic), keeps one
token per repository, streams blobs and follows their redirects (httpx drops the Authorization header when
a redirect leaves the origin). Every failure is one of the `SourceError`s below, never an httpx exception.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx

from cargohold.kernel.egress import EgressPolicy, EgressRefused
from cargohold.oci import jsonbody, mediatypes
from cargohold.oci.manifest import MAX_MANIFEST_BYTES

MANIFEST_TYPES = (mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST,
                  mediatypes.DOCKER_MANIFEST_LIST)
CHUNK_SIZE = 1024 * 1024
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io"})
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
USER_AGENT = "cargohold-import"
MAX_TOKEN_BYTES = 256 * 1024


class SourceError(Exception):
    """The source registry could not give what was asked."""


class SourceUnreachable(SourceError):
    pass


class SourceUnauthorized(SourceError):
    pass


class SourceNotFound(SourceError):
    pass


class SourceRefused(SourceError):
    """The outbound policy does not let the server connect to the source (or where it redirected)."""


class SourceProtocolError(SourceError):
    """The source answered something a registry should not: an unexpected status, a malformed token, a
    manifest that is too large or does not match its digest."""


class InvalidRegistryUri(ValueError):
    pass


@dataclass(frozen=True)
class FetchedManifest:
    media_type: str | None
    """As the source declared it (its Content-Type); the manifest's own `mediaType` may say more."""
    content: bytes


def base_url(registry_uri: str) -> str:
    """`host[:port]` means HTTPS; an explicit `http://` or `https://` is kept. Docker Hub's names map to its
    API host."""
    text = registry_uri.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise InvalidRegistryUri(f"{registry_uri[:200]!r} is not a registry address: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") or url.query \
            or url.fragment or url.userinfo:
        raise InvalidRegistryUri(f"{registry_uri[:200]!r} is not a registry address: give host[:port], "
                                 "optionally with http:// or https://")
    if not _resolvable_host(url.raw_host.decode("ascii", "replace")):
        raise InvalidRegistryUri(f"{registry_uri[:200]!r} is not a registry address: its host is not a valid "
                                 "DNS name or IP address")
    host = DOCKER_HUB_REGISTRY if url.host in DOCKER_HUB_ALIASES else url.host
    return str(url.copy_with(host=host, path="/")).rstrip("/")


_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\Z")


def _resolvable_host(host: str) -> bool:
    """Whether a URL's host (IDNA-encoded already) can be looked up: an IP address, or a DNS name of labels of
    1 to 63 characters, 253 in all. Anything else would fail inside the resolver, not as a source error."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {match[1].lower(): match[2] if match[2] is not None else match[3]
              for match in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


class SourceRegistry:
    def __init__(self, registry_uri: str, username: str | None = None, password: str | None = None, *,
                 verify: bool | str = True, timeout: httpx.Timeout = TIMEOUT,
                 transport: httpx.BaseTransport | None = None, egress: EgressPolicy | None = None) -> None:
        """Every connection goes through `egress` (by default the strict outbound policy), unless a test
        hands in its own `transport`."""
        self.base_url = base_url(registry_uri)
        self._credentials = (username, password or "") if username else None
        tls = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        if transport is None:
            transport = (egress or EgressPolicy()).transport(verify=tls)
        self._client = httpx.Client(verify=tls, timeout=timeout, transport=transport,
                                    headers={"User-Agent": USER_AGENT})
        self._authorization: dict[str, str] = {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def manifest(self, repository: str, reference: str, media_type: str | None = None) -> FetchedManifest:
        """The manifest's bytes as the source stores them, at most 4 MiB."""
        accept = list(MANIFEST_TYPES)
        if media_type and media_type not in accept:
            accept.append(media_type)
        what = f"{repository}:{reference}" if ":" not in reference else f"{repository}@{reference}"
        response = self._send("GET", repository, f"manifests/{reference}", {"Accept": ", ".join(accept)},
                              follow=True)
        try:
            self._expect_success(response, what)
            body = _read_limited(response, MAX_MANIFEST_BYTES, f"the manifest of {what}")
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        finally:
            response.close()
        content_type = response.headers.get("content-type")
        return FetchedManifest(content_type, body)

    def blob_size(self, repository: str, digest: str) -> int | None:
        """Confirm the source holds the blob, without transferring it. Its size, when the answer says it."""
        response = self._send("HEAD", repository, f"blobs/{digest}", {}, follow=False)
        response.close()
        if response.is_redirect:
            return None
        self._expect_success(response, f"{repository}@{digest}")
        length = response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None

    @contextmanager
    def blob(self, repository: str, digest: str) -> Iterator[Iterator[bytes]]:
        """The blob's bytes in chunks of about a MiB, read as they are consumed."""
        response = self._send("GET", repository, f"blobs/{digest}", {"Accept-Encoding": "identity"},
                              follow=True)
        try:
            self._expect_success(response, f"{repository}@{digest}")
            yield self._chunks(response)
        finally:
            response.close()

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(CHUNK_SIZE)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _send(self, method: str, repository: str, path: str, headers: dict[str, str], *,
              follow: bool) -> httpx.Response:
        url = f"{self.base_url}/v2/{repository}/{path}"
        response = self._attempt(method, url, repository, headers, follow)
        if response.status_code == 401:
            response.close()
            self._authenticate(response, repository)
            response = self._attempt(method, url, repository, headers, follow)
        return response

    def _attempt(self, method: str, url: str, repository: str, headers: dict[str, str],
                 follow: bool) -> httpx.Response:
        authorization = self._authorization.get(repository) or self._authorization.get("")
        if authorization:
            headers = {**headers, "Authorization": authorization}
        try:
            request = self._client.build_request(method, url, headers=headers)
            return self._client.send(request, stream=True, follow_redirects=follow)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise SourceProtocolError(f"{self.base_url} answered with an unusable redirect: {exc}") from None

    def _authenticate(self, response: httpx.Response, repository: str) -> None:
        challenges = [parse_challenge(header) for header in response.headers.get_list("www-authenticate")]
        for scheme, params in challenges:
            if scheme == "bearer":
                token = self._token(params, repository)
                self._authorization[repository] = f"Bearer {token}"
                return
        if any(scheme == "basic" for scheme, _ in challenges):
            if self._credentials is None:
                raise SourceUnauthorized(f"{self.base_url} requires credentials")
            user, password = self._credentials
            self._authorization[""] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return
        raise SourceUnauthorized(f"{self.base_url} refused access and offered no way to authenticate")

    def _token(self, challenge: dict[str, str], repository: str) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise SourceProtocolError(f"{self.base_url} sent a Bearer challenge without a realm")
        params = {"scope": f"repository:{repository}:pull"}
        if challenge.get("service"):
            params["service"] = challenge["service"]
        try:
            url = httpx.URL(self.base_url).join(realm)
            if url.scheme not in ("http", "https"):
                raise SourceProtocolError(f"{self.base_url} named a token realm that is not an HTTP URL")
            with self._client.stream("GET", url, params=params, follow_redirects=True,
                                     auth=self._credentials or httpx.USE_CLIENT_DEFAULT) as answer:
                status = answer.status_code
                body = _read_limited(answer, MAX_TOKEN_BYTES, "the token answer") if status == 200 else b""
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise SourceProtocolError(f"the token service of {self.base_url} is unusable: {exc}") from None
        if status in (401, 403):
            raise SourceUnauthorized(f"{self.base_url} refused the credentials" if self._credentials
                                     else f"{self.base_url} requires credentials")
        if status != 200:
            raise SourceProtocolError(f"the token service of {self.base_url} answered HTTP {status}")
        try:
            document = jsonbody.loads(body)
        except ValueError:
            document = None
        token = None
        if isinstance(document, dict):
            token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceProtocolError(f"the token service of {self.base_url} answered without a token")
        return token

    def _expect_success(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            how = "with the given credentials" if self._credentials else "without credentials"
            raise SourceUnauthorized(f"{self.base_url} refused to let {what} be pulled {how}")
        if status == 404:
            raise SourceNotFound(f"{what} was not found in {self.base_url}")
        raise SourceProtocolError(f"{self.base_url} answered HTTP {status} for {what}")

    def _unreachable(self, exc: Exception) -> SourceError:
        if isinstance(exc, EgressRefused):
            return SourceRefused(f"{self.base_url} cannot be imported from: {exc}")
        return SourceUnreachable(f"could not reach {self.base_url}: {str(exc) or type(exc).__name__}")


def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise SourceProtocolError(f"{what} is larger than {limit} bytes")
    return bytes(body)
