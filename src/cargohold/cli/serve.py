"""`cargohold serve`: check the options and the blob store, then become the HTTP server (see
`cargohold.server`), which migrates and bootstraps the metadata database before it listens (`cargohold.prepare`;
with several worker processes `serve` does that itself first)."""

from __future__ import annotations

import ipaddress
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cargohold.cli.local_server import write_server_file

if TYPE_CHECKING:
    from cargohold.config import Settings

SERVER_ENVIRONMENT = {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
"""glibc gives every thread that allocates its own malloc arena and rarely returns their memory; with a
thread pool moving 8 MiB batches that inflated the server's RSS several times over. Two arenas suffice."""


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
) -> None:
    """Run the registry. With no options: SQLite and a filesystem store under ./data, HTTP on 127.0.0.1:5000."""
    from cargohold.config import Settings

    if blob_downloads not in ("redirect", "proxy"):
        raise typer.BadParameter("redirect or proxy", param_hint="--blob-downloads")
    settings = Settings.for_data_dir(data_dir, db_url, domain, storage_url, worker, blob_downloads == "redirect")
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
    environment = {**os.environ, **SERVER_ENVIRONMENT, **settings.to_env()}
    if server is ServerKind.granian and workers == 1 and os.environ.get("CARGOHOLD_GRANIAN_PROCESSES") != "1":
        environment[PREPARE_ENV] = f"{registry_name}\n{login_server}\n{where}"
    else:
        prepare(settings, registry_name, login_server, where)
    argv = [sys.executable, "-m", "cargohold.server", "--host", host, "--port", str(port), "--workers", str(workers),
            "--kind", server.value]
    if cert is not None and key is not None:
        argv += ["--cert", str(cert), "--key", str(key)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, environment)


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
        from cargohold.security.tls import ensure_self_signed

        files = ensure_self_signed(settings.data_dir / "tls", [host])
        typer.echo(f"TLS: clients should trust the CA certificate at {files.ca_cert}", err=True)
        return files.cert, files.key, files.ca_cert
    if (cert is None) != (key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together", param_hint="--tls-cert")
    return cert, key, None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
