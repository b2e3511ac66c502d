"""`cargohold serve`: check the options and the blob store, then become the HTTP server (see
`cargohold.server`), which migrates and bootstraps the metadata database before it listens (`cargohold.prepare`;
with several worker processes `serve` does that itself first)."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cargohold.cli.local_server import write_server_file

if TYPE_CHECKING:
    from cargohold.config import Settings
    from cargohold.observability.settings import ObservabilitySettings

SERVER_ENVIRONMENT = {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
"""glibc gives every thread that allocates its own malloc arena and rarely returns their memory; with a
thread pool moving 8 MiB batches that inflated the server's RSS several times over. Two arenas suffice."""


_LOCATION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
class LogFormat(str, Enum):
    text = "text"
    json = "json"


class AccessLog(str, Enum):
    errors = "errors"
    all = "all"
    off = "off"


class ServerKind(str, Enum):
    granian = "granian"
    uvicorn = "uvicorn"


def serve(
    data_dir: Annotated[Path, typer.Option(help="Directory for metadata, blobs and keys.")] = Path("./data"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    db_url: Annotated[str | None, typer.Option(help="Metadata database URL (default: SQLite in the data dir).")] = None,
    tls: Annotated[str | None, typer.Option(help="'self-signed' makes a local CA and a server certificate.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate chain to serve HTTPS with.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
    insecure_http: Annotated[bool, typer.Option(help="Allow plain HTTP on a non-loopback address.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
    registry_name: Annotated[str, typer.Option(help="Name of the registry created on first start (5-50 "
                                                    "alphanumerics).")] = "cargohold",
    domain: Annotated[str, typer.Option(help="Registries answer as <name>.<domain>.")] = "localhost",
    server: Annotated[ServerKind, typer.Option(help="HTTP server implementation.")] = ServerKind.granian,
    storage_url: Annotated[str | None, typer.Option(
        help="Blob store: azure://<container>, s3://<bucket>/<prefix> (default: the filesystem under --data-dir); "
             "see docs/storage.md.")] = None,
    blob_downloads: Annotated[str, typer.Option(
        help="With a cloud store: 'redirect' clients to a short-lived signed URL (as ACR does) or 'proxy' the "
             "bytes through the server.")] = "redirect",
    worker: Annotated[bool, typer.Option(help="Also run background jobs (webhook deliveries, imports) in this "
                                              "process; turn off when `cargohold worker` runs them.")] = True,
    egress_allow: Annotated[list[str] | None, typer.Option(
        help="Let webhooks and imports reach this address, CIDR range or host name (*.domain for every name "
             "below it) although the outbound policy refuses it (loopback, private, link-local...). Repeatable; "
             "also CARGOHOLD_EGRESS_ALLOW (comma-separated).")] = None,
    region: Annotated[str | None, typer.Option(
        help="Geo-replication: the region (location) this node serves; --storage-url is that region's store, "
             "registered for every node to copy to and from. See docs/geo-replication.md.")] = None,
    read_through: Annotated[bool, typer.Option(
        help="With --region: serve blobs this region lacks yet from another region's store instead of hiding "
             "an image until it is complete here.")] = False,
    log_format: Annotated[LogFormat, typer.Option(help="Log lines as text or as one JSON object each (with the "
                                                       "request id); see docs/operations.md.")] = LogFormat.text,
    access_log: Annotated[AccessLog, typer.Option(help="Log a line per request: for errors (status >= 400), all, "
                                                       "or off.")] = AccessLog.errors,
    metrics: Annotated[bool, typer.Option(help="Measure requests and serve Prometheus metrics at /metrics.")] = True,
    metrics_token: Annotated[str | None, typer.Option(
        envvar="CARGOHOLD_METRICS_TOKEN",
        help="Serve /metrics to any client sending 'Authorization: Bearer TOKEN' (default: loopback clients "
             "only, without a token).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve /metrics on this port instead of the "
                                                          "registry's.")] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run the registry. With no options: SQLite and a filesystem store under ./data, HTTP on 127.0.0.1:5000."""
    from cargohold.config import Settings

    if blob_downloads not in ("redirect", "proxy"):
        raise typer.BadParameter("redirect or proxy", param_hint="--blob-downloads")
    observability = _observability(metrics, metrics_token, metrics_port, metrics_host, access_log.value)
    settings = Settings.for_data_dir(data_dir, db_url, domain, storage_url, worker, blob_downloads == "redirect",
                                     egress_allow_option(egress_allow), region, read_through)
    if region is not None and not _LOCATION.match(settings.region or ""):
        raise typer.BadParameter("a location name such as westeurope", param_hint="--region")
    if not settings.data_dir.exists():
        settings.data_dir.mkdir(parents=True, mode=0o700)
    cert, key, ca = _tls_files(settings, host, tls, tls_cert, tls_key)
    if cert is None and not _is_loopback(host) and not insecure_http:
        raise typer.BadParameter(f"{host} is not a loopback address: use --tls-cert/--tls-key or --tls self-signed, "
                                 "or accept plain HTTP with --insecure-http", param_hint="--host")

    from cargohold.prepare import PREPARE_ENV, prepare

    _check_store(settings)
    settings.remember_backends()
    scheme = "https" if cert else "http"
    write_server_file(settings.data_dir, scheme, host, port, ca)
    where = f"{settings.data_dir} on {scheme}://{_url_host(host)}:{port}"
    login_server = f"{registry_name}.{domain}".lower()
    environment = {**os.environ, **SERVER_ENVIRONMENT, **settings.to_env(),
                   **observability.to_env(settings.data_dir, port), "CARGOHOLD_LOG_FORMAT": log_format.value}
    names_each_login_server = tls is not None and "." not in settings.domain
    if (server is ServerKind.granian and workers == 1 and os.environ.get("CARGOHOLD_GRANIAN_PROCESSES") != "1"
            and not names_each_login_server):
        environment[PREPARE_ENV] = f"{registry_name}\n{login_server}\n{where}"
    else:
        prepare(settings, registry_name, login_server, where)
        if names_each_login_server:
            _cover_login_servers(settings, host)
    argv = [sys.executable, "-m", "cargohold.server", "--host", host, "--port", str(port), "--workers", str(workers),
            "--kind", server.value]
    if cert is not None and key is not None:
        argv += ["--cert", str(cert), "--key", str(key)]
    if observability.metrics:
        from cargohold.observability.settings import metrics_dir, reset_metrics_dir

        reset_metrics_dir(metrics_dir(settings.data_dir, port))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, environment)


def _observability(metrics: bool, token: str | None, port: int | None, host: str,
                   access_log: str) -> ObservabilitySettings:
    from cargohold.observability.settings import ObservabilitySettings

    if port is not None and not _is_loopback(host) and not token:
        raise typer.BadParameter(f"{host} is not a loopback address: metrics there need --metrics-token",
                                 param_hint="--metrics-host")
    return ObservabilitySettings(metrics=metrics, metrics_token=token or None, metrics_port=port,
                                 metrics_host=host, access_log=access_log)


def egress_allow_option(given: list[str] | None) -> tuple[str, ...]:
    """`--egress-allow` values, or CARGOHOLD_EGRESS_ALLOW when none is given, checked now so a typo stops the
    start instead of leaving a target refused."""
    from cargohold.config import parse_allow_list
    from cargohold.kernel.egress import EgressPolicy

    entries = given if given else parse_allow_list(os.environ.get("CARGOHOLD_EGRESS_ALLOW", ""))
    try:
        return tuple(EgressPolicy.from_allow_list(entries).allow_list)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--egress-allow") from None


def _check_store(settings: Settings) -> None:
    """Open the blob store once before serving (creating a missing container or bucket), so a wrong URL or an
    unreachable store is a clear message now rather than failed pushes later."""
    from cargohold.blobs.factory import StorageUrlError, redacted, store_from_url

    try:
        store_from_url(settings.storage_url, settings.blob_root)
    except StorageUrlError as exc:
        raise typer.BadParameter(str(exc), param_hint="--storage-url") from None
    except Exception as exc:  # noqa: BLE001 - any failure to reach the store ends start-up with its message
        typer.echo(f"error: cannot open the blob store {redacted(settings.storage_url)}: {exc}", err=True)
        raise typer.Exit(1) from None


def _tls_files(settings: Settings, host: str, tls: str | None, cert: Path | None,
               key: Path | None) -> tuple[Path | None, Path | None, Path | None]:
    """The certificate and key to serve with, and the CA clients should trust when we made it."""
    if tls is not None:
        if tls != "self-signed":
            raise typer.BadParameter("the only value is 'self-signed'", param_hint="--tls")
        from cargohold.security.tls import ensure_self_signed, login_server_names

        files = ensure_self_signed(settings.data_dir / "tls", [host, *login_server_names(settings.domain)])
        typer.echo(f"TLS: clients should trust the CA certificate at {files.ca_cert}", err=True)
        return files.cert, files.key, files.ca_cert
    if (cert is None) != (key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together", param_hint="--tls-cert")
    return cert, key, None


def _cover_login_servers(settings: Settings, host: str) -> None:
    """TLS clients refuse a wildcard right under a one-label name (`*.localhost`), so with such a domain the
    certificate names each registry's login server, as they are now; a registry created later is covered
    after the next start. (The database is prepared here, before the server loads the certificate.)"""
    from sqlalchemy import select

    from cargohold.db.engine import make_engine
    from cargohold.db.tables import registries
    from cargohold.security.tls import ensure_self_signed, login_server_names

    engine = make_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            login_servers = sorted(conn.execute(select(registries.c.login_server)).scalars())
    finally:
        engine.dispose()
    ensure_self_signed(settings.data_dir / "tls", [host, *login_server_names(settings.domain), *login_servers])
    typer.echo(f"TLS: the domain {settings.domain} has one label, so the certificate names each login server; "
               "a registry created later is covered after a restart (a domain such as registry.example is "
               "covered by one wildcard)", err=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
