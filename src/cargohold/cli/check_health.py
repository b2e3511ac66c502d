"""`cargohold check-health`: from a client machine, what stands between it and a working registry, as
`az acr check-health` does: name resolution, the TCP port, TLS and the certificate chain, the registry API, the
token flow with the stored login, and a manifest round trip (push a tiny artifact to a scratch repository,
read it back, delete it; a read-only check without the push right). Each step says in plain words what is
wrong; the exit status is 1 when any step failed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer

from cargohold.cli.errors import ConfigError
from cargohold.cli.login import _base_url
from cargohold.cli.repository import _saved_credentials

SCRATCH_REPOSITORY = "cargohold-health-check"
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EXPIRY_WARNING_DAYS = 14


class CheckFailed(Exception):
    """A step failed; later steps that depend on it are skipped."""


@dataclass
class Report:
    failures: int = 0
    lines: list[str] = field(default_factory=list)

    def say(self, status: str, step: str, message: str) -> None:
        if status == "FAIL":
            self.failures += 1
        line = f"{status:<4}  {step:<9} {message}"
        self.lines.append(line)
        typer.echo(line)


@dataclass(frozen=True)
class Target:
    base: str
    scheme: str
    host: str
    port: int
    ca_file: Path | None
    credentials: tuple[str, str] | None
    credentials_source: str

    @property
    def verify(self) -> bool | str:
        return str(self.ca_file) if self.ca_file else True


def check_health(
    registry: Annotated[str | None, typer.Option(
        "--registry", "-r", envvar="CARGOHOLD_SERVER",
        help="Registry address (as for `cargohold login`: host:port or https://host:port). Default: the "
             "server serving --data-dir on this machine.")] = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="CA certificate to trust for the registry's TLS "
                                                         "certificate.")] = None,
    username: Annotated[str | None, typer.Option("--username", "-u",
                                                 help="Default: what `cargohold login` saved for the registry.")] = None,
    password: Annotated[str | None, typer.Option("--password", "-p")] = None,
    repository: Annotated[str, typer.Option(help="Scratch repository for the manifest round trip.")] =
    SCRATCH_REPOSITORY,
    read_only: Annotated[bool, typer.Option(help="Do not push: check that manifests can be read only.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each network step.")] = 10.0,
    data_dir: Annotated[Path, typer.Option(help="With no --registry: the data directory of a server on this "
                                                "machine.", envvar="CARGOHOLD_DATA_DIR")] = Path("./data"),
) -> None:
    """Check that this machine can reach a registry, trust it, log in, and push and pull."""
    try:
        target = _target(registry, ca, username, password, data_dir)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    report = Report()
    typer.echo(f"checking {target.base}")
    try:
        addresses = check_dns(report, target)
        check_port(report, target, addresses, timeout)
        if target.scheme == "https":
            check_tls(report, target, timeout)
        with httpx.Client(base_url=target.base, verify=target.verify, timeout=timeout) as http:
            challenge = check_api(report, http)
            token, actions = check_token(report, http, target, challenge, repository)
            check_round_trip(report, http, repository, token, "push" in actions and not read_only)
    except CheckFailed:
        pass
    typer.echo("registry is healthy" if report.failures == 0 else
               f"{report.failures} check{'s' if report.failures > 1 else ''} failed")
    raise typer.Exit(1 if report.failures else 0)


def _target(registry: str | None, ca: Path | None, username: str | None, password: str | None,
            data_dir: Path) -> Target:
    source = "--username"
    credentials = (username, password or "") if username else None
    if registry is None:
        from cargohold.cli.local_server import read_local_server

        local = read_local_server(data_dir)
        registry = local.url
        ca = ca or (Path(local.ca_file) if local.ca_file else None)
        if credentials is None:
            credentials, source = (local.client_id, local.client_secret), f"the Owner of {data_dir.resolve()}"
    base = _base_url(registry)
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{registry!r} is not a registry address")
    if credentials is None:
        credentials = _saved_credentials(parts.netloc)
        source = "the login saved by `cargohold login`"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Target(base, parts.scheme, parts.hostname, port, ca, credentials, source)


def check_dns(report: Report, target: Target) -> list[tuple[Any, ...]]:
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        report.say("FAIL", "dns", f"cannot resolve {target.host} ({exc.strerror}): check the name, DNS or "
                                  "/etc/hosts on this machine")
        raise CheckFailed from None
    addresses = sorted({str(info[4][0]) for info in found})
    report.say("ok", "dns", f"{target.host} resolves to {', '.join(addresses)}")
    return found


def check_port(report: Report, target: Target, addresses: list[tuple[Any, ...]], timeout: float) -> None:
    problems = []
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address)
            except ConnectionRefusedError:
                problems.append(f"{address[0]}: connection refused")
                continue
            except TimeoutError:
                problems.append(f"{address[0]}: no answer within {timeout:g} s")
                continue
            except OSError as exc:
                problems.append(f"{address[0]}: {exc.strerror or exc}")
                continue
        report.say("ok", "port", f"{address[0]} port {target.port} accepts connections")
        return
    hint = ("is the registry running, and on this port?" if all("refused" in p for p in problems) else
            "a firewall or a network route may be in the way")
    report.say("FAIL", "port", f"cannot connect to {target.host} port {target.port} ({'; '.join(problems)}): "
                               f"{hint}")
    raise CheckFailed


def check_tls(report: Report, target: Target, timeout: float) -> None:
    context = ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=target.host) as tls:
            certificate = tls.getpeercert(binary_form=True)
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        report.say("FAIL", "tls", _verification_problem(exc, _peek_certificate(target, timeout), target))
        raise CheckFailed from None
    except ssl.SSLError as exc:
        hint = (" (it may be serving plain HTTP: try http://)" if "WRONG_VERSION_NUMBER" in str(exc)
                or "record layer" in str(exc) else "")
        report.say("FAIL", "tls", f"the TLS handshake with {target.host}:{target.port} failed: "
                                  f"{exc.reason or exc}{hint}")
        raise CheckFailed from None
    except OSError as exc:
        report.say("FAIL", "tls", f"the TLS handshake with {target.host}:{target.port} failed: {exc}")
        raise CheckFailed from None
    info = _describe(certificate)
    report.say("ok", "tls", f"{version}, certificate for {info['names']} issued by {info['issuer']}, "
                            f"trusted{' with ' + str(target.ca_file) if target.ca_file else ''}")
    days = info["days_left"]
    if isinstance(days, int) and days < EXPIRY_WARNING_DAYS:
        report.say("warn", "tls", f"the certificate expires in {days} days ({info['expires']}): renew it")


def _peek_certificate(target: Target, timeout: float) -> bytes | None:
    """The server's certificate without verifying it, to say what is wrong with it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=target.host) as tls:
            return tls.getpeercert(binary_form=True)
    except OSError:
        return None


def _verification_problem(exc: ssl.SSLCertVerificationError, certificate: bytes | None, target: Target) -> str:
    info = _describe(certificate) if certificate else {}
    code = exc.verify_code
    if code in (18, 19, 20, 21):
        trust = f"the CA file {target.ca_file}" if target.ca_file else "this machine's trusted CAs"
        return (f"the certificate chain (issued by {info.get('issuer', '?')}) is not signed by {trust}: pass "
                "--ca with the registry's CA certificate (for `serve --tls self-signed`: <data-dir>/tls/ca.pem) "
                "or install it in the system store")
    if code == 62:
        return (f"the certificate is for {info.get('names', '?')}, not {target.host}: use a name the certificate "
                "covers, or reissue it")
    if code == 10:
        return f"the certificate expired on {info.get('expires', '?')}: renew it"
    if code == 9:
        return f"the certificate is not valid yet (check this machine's clock): {exc.verify_message}"
    return f"the certificate was refused: {exc.verify_message or exc}"


def _describe(certificate: bytes | None) -> dict[str, object]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    if not certificate:
        return {}
    parsed = x509.load_der_x509_certificate(certificate)

    def common_name(name: x509.Name) -> str:
        found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(found[0].value) if found else name.rfc4514_string()

    try:
        alternative = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in alternative.get_values_for_type(x509.DNSName)] + [
            str(ip) for ip in alternative.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = [common_name(parsed.subject)]
    expires = parsed.not_valid_after_utc
    return {"names": ", ".join(names[:6]) + (" …" if len(names) > 6 else ""),
            "issuer": common_name(parsed.issuer), "expires": expires.date().isoformat(),
            "days_left": (expires - datetime.now(UTC)).days}


@dataclass(frozen=True)
class Challenge:
    realm: str | None
    service: str | None


def check_api(report: Report, http: httpx.Client) -> Challenge:
    try:
        response = http.get("/v2/")
    except httpx.HTTPError as exc:
        report.say("FAIL", "api", f"GET /v2/ failed: {exc}")
        raise CheckFailed from None
    if response.headers.get("docker-distribution-api-version") != "registry/2.0" or \
            response.status_code not in (200, 401):
        report.say("FAIL", "api", f"{http.base_url} answered GET /v2/ with {response.status_code} "
                                  f"(server: {response.headers.get('server', '?')}), not as a registry: is this "
                                  "the registry's address?")
        raise CheckFailed
    challenge = _parse_challenge(response.headers.get("www-authenticate", ""))
    report.say("ok", "api", f"/v2/ answers {response.status_code} (request id "
                            f"{response.headers.get('x-request-id', '-')})")
    return challenge


def _parse_challenge(header: str) -> Challenge:
    if not header.lower().startswith("bearer "):
        return Challenge(None, None)
    fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
    return Challenge(fields.get("realm"), fields.get("service"))


def check_token(report: Report, http: httpx.Client, target: Target, challenge: Challenge,
                repository: str) -> tuple[str | None, set[str]]:
    """A token for the scratch repository, and the actions it grants."""
    if challenge.realm is None:
        report.say("ok", "token", "the registry asks for no token (anonymous access)")
        return None, {"pull", "push", "delete"}
    if target.credentials is None:
        report.say("warn", "token", f"no login saved for {target.host}:{target.port}: run `cargohold login` "
                                    "(checking anonymous access only)")
    params = {"scope": f"repository:{repository}:pull,push,delete"}
    if challenge.service:
        params["service"] = challenge.service
    try:
        response = http.get(challenge.realm, params=params, auth=target.credentials or httpx.USE_CLIENT_DEFAULT)
    except httpx.HTTPError as exc:
        report.say("FAIL", "token", f"the token service at {challenge.realm} cannot be reached: {exc}")
        raise CheckFailed from None
    if response.status_code in (401, 403):
        who = f"the credentials from {target.credentials_source}" if target.credentials else "anonymous access"
        report.say("FAIL", "token", f"the token service refused {who} ({response.status_code}: "
                                    f"{_error_message(response)}): log in again with `cargohold login`")
        raise CheckFailed
    if response.status_code == 429:
        report.say("FAIL", "token", "too many failed logins from this machine: wait a minute, then check the "
                                    "saved credentials")
        raise CheckFailed
    token = _json(response).get("access_token") or _json(response).get("token")
    if response.status_code != 200 or not isinstance(token, str):
        report.say("FAIL", "token", f"the token service answered {response.status_code}: "
                                    f"{_error_message(response)}")
        raise CheckFailed
    actions = _granted_actions(token, repository)
    who = f"as {target.credentials[0]}" if target.credentials else "anonymously"
    report.say("ok", "token", f"token issued {who} for {repository}: {', '.join(sorted(actions)) or 'no access'}")
    return token, actions


def _granted_actions(token: str, repository: str) -> set[str]:
    """The actions the token grants on the repository (its claims read without verifying: the server
    checks them, this only decides what to try)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return {action for entry in claims.get("access") or [] if entry.get("type") == "repository"
                and entry.get("name") == repository for action in entry.get("actions") or []}
    except (IndexError, ValueError, AttributeError, TypeError):
        return set()


def check_round_trip(report: Report, http: httpx.Client, repository: str, token: str | None,
                     can_push: bool) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if not can_push:
        _read_only(report, http, repository, headers)
        return
    digest = "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest()
    empty = {"mediaType": EMPTY_MEDIA_TYPE, "digest": digest, "size": len(EMPTY_CONFIG)}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
                           "artifactType": "application/vnd.cargohold.health-check.v1", "config": empty,
                           "layers": [empty]}).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    tag = f"check-{uuid.uuid4().hex[:12]}"
    steps = [
        ("upload the config blob", "POST", f"/v2/{repository}/blobs/uploads/", {"digest": digest}, EMPTY_CONFIG,
         {"Content-Type": "application/octet-stream"}, (201,)),
        ("push the manifest", "PUT", f"/v2/{repository}/manifests/{tag}", None, manifest,
         {"Content-Type": MANIFEST_MEDIA_TYPE}, (201,)),
        ("read it back", "GET", f"/v2/{repository}/manifests/{tag}", None, None,
         {"Accept": MANIFEST_MEDIA_TYPE}, (200,)),
    ]
    for what, method, path, params, body, extra, expected in steps:
        response = _call(report, http, method, path, params=params, content=body, headers={**headers, **extra})
        if response.status_code not in expected:
            report.say("FAIL", "manifest", f"could not {what}: {method} {path} answered {response.status_code} "
                                           f"({_error_message(response)})")
            raise CheckFailed
        if method == "GET" and (response.content != manifest or
                                response.headers.get("docker-content-digest") != manifest_digest):
            report.say("FAIL", "manifest", f"{repository}:{tag} came back different from what was pushed")
            raise CheckFailed
    deleted = _call(report, http, "DELETE", f"/v2/{repository}/manifests/{manifest_digest}", headers=headers)
    if deleted.status_code not in (200, 202):
        report.say("warn", "manifest", f"pushed and read back {repository}:{tag}, but could not delete it "
                                       f"({deleted.status_code}: {_error_message(deleted)}): remove it by hand")
        return
    report.say("ok", "manifest", f"pushed, read back and deleted {repository}@{manifest_digest[:19]}…")


def _read_only(report: Report, http: httpx.Client, repository: str, headers: dict[str, str]) -> None:
    response = _call(report, http, "GET", f"/v2/{repository}/tags/list", headers=headers)
    if response.status_code in (200, 404) and _error_code(response) in (None, "NAME_UNKNOWN"):
        report.say("ok", "manifest", f"read-only check: {repository} can be read (no push right, nothing pushed)")
        return
    report.say("FAIL", "manifest", f"read-only check: GET /v2/{repository}/tags/list answered "
                                   f"{response.status_code} ({_error_message(response)})")
    raise CheckFailed


def _call(report: Report, http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        report.say("FAIL", "manifest", f"{method} {path} failed: {exc}")
        raise CheckFailed from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _error_code(response: httpx.Response) -> str | None:
    errors = _json(response).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code"))
    return None


def _error_message(response: httpx.Response) -> str:
    document = _json(response)
    errors = document.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        text = f"{errors[0].get('code')}: {errors[0].get('message')}"
    elif isinstance(document.get("error"), (dict, str)):
        error = document["error"]
        text = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else str(error)
    else:
        text = response.text[:200].strip() or response.reason_phrase
    request_id = response.headers.get("x-request-id")
    return f"{text}; request id {request_id}" if request_id else text
