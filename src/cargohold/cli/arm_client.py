"""A small ARM client for the management commands: a token from the server's identity provider, JSON calls
with `api-version`, ARM's error shape turned into one line, long-running operations polled to their end.

Every failure is an `ArmFailure`; `arm_session` prints it as `error: <code>: <message>` and exits 1.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from cargohold import __version__
from cargohold.cli.common import fail
from cargohold.cli.endpoint import Endpoint, is_loopback, resolve_endpoint
from cargohold.cli.errors import ArmFailure, ConfigError

API_VERSION = "2025-11-01"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
PROVIDER = "Microsoft.ContainerRegistry"
TERMINAL = ("Succeeded", "Failed", "Canceled")


class ArmClient:
    def __init__(self, endpoint: Endpoint, http: httpx.Client) -> None:
        self.endpoint = endpoint
        self.subscription = endpoint.subscription
        self.http = http

    @property
    def provider_path(self) -> str:
        return f"/subscriptions/{self.subscription}/providers/{PROVIDER}"

    def group_path(self, resource_group: str) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{resource_group}/providers/{PROVIDER}"

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One ARM request; any answer of 400 or more becomes an ArmFailure."""
        url = self._local(path)
        params = None if "api-version=" in url else {"api-version": API_VERSION}
        try:
            response = self.http.request(method, url, params=params, json=body)
        except httpx.HTTPError as exc:
            raise _unreachable(self.endpoint, exc) from None
        if response.status_code >= 400:
            raise failure_of(response)
        return response

    def get(self, path: str) -> Any:
        return _json(self.call("GET", path))

    def put(self, path: str, body: Any) -> Any:
        return _json(self.call("PUT", path, body))

    def patch(self, path: str, body: Any) -> Any:
        return _json(self.call("PATCH", path, body))

    def post(self, path: str, body: Any = None) -> Any:
        return _json(self.call("POST", path, body))

    def delete(self, path: str) -> None:
        self.call("DELETE", path)

    def list(self, path: str) -> list[dict[str, Any]]:
        """Every item of an ARM list, following `nextLink`."""
        items: list[dict[str, Any]] = []
        next_path: str | None = path
        while next_path:
            page = self.get(next_path)
            items += page.get("value") or []
            next_path = page.get("nextLink")
        return items

    def wait(self, started: httpx.Response, timeout: float) -> dict[str, Any]:
        """Follow a long-running operation (Azure-AsyncOperation, else Location) until it ends. Returns the
        final status; a failed operation raises its error."""
        status_url = started.headers.get("Azure-AsyncOperation")
        result_url = started.headers.get("Location")
        if started.status_code != 202 or not (status_url or result_url):
            return {"status": "Succeeded"}
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            response = self.call("GET", status_url or result_url or "")
            if status_url:
                status: dict[str, Any] = _json(response) or {}
                if status.get("status") in TERMINAL:
                    if status["status"] != "Succeeded":
                        error = status.get("error") or {}
                        raise ArmFailure(error.get("code") or f"Operation{status['status']}",
                                         error.get("message") or f"The operation ended {status['status']}.")
                    return status
            elif response.status_code != 202:
                return {"status": "Succeeded"}
            if time.monotonic() > deadline:
                raise ArmFailure("OperationTimedOut", f"still running after {timeout:.0f} s; it may yet finish: "
                                 f"{status_url or result_url}")
            time.sleep(min(_retry_after(response, delay), max(0.0, deadline - time.monotonic()) + 0.05))
            delay = min(delay * 2, 2.0)

    def _local(self, url: str) -> str:
        """A path on our server. An absolute URL the server handed out (nextLink, operation URLs) keeps only
        its path and query, so the bearer token never goes to a host other than the one configured."""
        parts = urlsplit(url)
        if not parts.scheme:
            return url
        return parts.path + (f"?{parts.query}" if parts.query else "")


def failure_of(response: httpx.Response) -> ArmFailure:
    """ARM's `{"error": {"code", "message"}}`, OAuth's `{"error", "error_description"}`, the registry's
    `{"errors": [...]}`, or whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("code"):
            return ArmFailure(str(error["code"]), str(error.get("message") or ""))
        if isinstance(error, str):
            return ArmFailure(error, str(body.get("error_description") or ""))
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return ArmFailure(str(errors[0].get("code")), str(errors[0].get("message") or ""))
    text = response.text.strip().replace("\n", " ")[:200]
    return ArmFailure(f"HTTP{response.status_code}", text or response.reason_phrase)


def connect(endpoint: Endpoint) -> ArmClient:
    """Sign in with client credentials and return a client that sends the bearer token."""
    parts = urlsplit(endpoint.server)
    if parts.scheme == "http" and not endpoint.insecure_http and not is_loopback(parts.hostname or ""):
        raise ArmFailure("InsecureServer", f"refusing to send credentials to {endpoint.server} over plain HTTP; "
                         "use https, or accept the risk with `account login --insecure-http` "
                         "(CARGOHOLD_INSECURE_HTTP=1 in the environment)")
    verify: ssl.SSLContext | bool = True
    if endpoint.ca_file:
        if not Path(endpoint.ca_file).is_file():
            raise ArmFailure("CaFileNotFound", f"the CA certificate {endpoint.ca_file} does not exist")
        verify = ssl.create_default_context(cafile=endpoint.ca_file)
    http = httpx.Client(base_url=endpoint.server, verify=verify, timeout=60,
                        headers={"User-Agent": f"cargohold-cli/{__version__}", "Accept": "application/json"})
    try:
        response = http.post(f"/{endpoint.tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": endpoint.client_id,
            "client_secret": endpoint.client_secret, "scope": MANAGEMENT_SCOPE})
    except httpx.HTTPError as exc:
        http.close()
        raise _unreachable(endpoint, exc) from None
    if response.status_code != 200:
        http.close()
        raise failure_of(response)
    try:
        token = str(response.json()["access_token"])
    except (ValueError, KeyError, TypeError):
        http.close()
        raise ArmFailure("InvalidTokenResponse", f"{endpoint.server} answered the token request without "
                         "an access_token") from None
    http.headers["Authorization"] = f"Bearer {token}"
    return ArmClient(endpoint, http)


@contextmanager
def arm_session(data_dir: Path | None, subscription: str | None) -> Iterator[ArmClient]:
    """The client for a command; every ArmFailure inside ends the command with one line on stderr."""
    client: ArmClient | None = None
    try:
        client = connect(resolve_endpoint(data_dir, subscription))
        yield client
    except ArmFailure as exc:
        fail(str(exc))
    except ConfigError as exc:
        fail(str(exc))
    finally:
        if client is not None:
            client.http.close()


def _unreachable(endpoint: Endpoint, exc: httpx.HTTPError) -> ArmFailure:
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return ArmFailure("CertificateNotTrusted", f"{endpoint.server}: {exc}; trust the server's CA with "
                          "`account login --ca-file` or CARGOHOLD_CA_FILE")
    hint = f"; is `cargohold serve` running? ({endpoint.source})" if isinstance(exc, httpx.ConnectError) else ""
    return ArmFailure("ServerUnreachable", f"cannot reach {endpoint.server}: {exc}{hint}")


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ArmFailure("InvalidResponse", f"{response.request.url.path} answered {response.status_code} "
                         "with a body that is not JSON") from None


def _retry_after(response: httpx.Response, fallback: float) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "")), 0.1), 10.0)
    except ValueError:
        return fallback
