"""A blob store from a storage URL (`serve --storage-url`, `CARGOHOLD_STORAGE_URL`).

    (none)                                    the filesystem under the data directory
    file:///srv/cargohold/blobs               the filesystem at that absolute path
    azure://<container>[/<prefix>]            Azure Blob Storage; the account from the environment:
        AZURE_STORAGE_CONNECTION_STRING         a connection string (AccountName, AccountKey, BlobEndpoint...)
      or ?account_url=https://<account>.blob.core.windows.net  with the key in AZURE_STORAGE_KEY
        (&account_name=... or AZURE_STORAGE_ACCOUNT when the name is not the URL's first host label or, for
        an emulator such as Azurite at http://127.0.0.1:10000/devstoreaccount1, its first path segment)
      or ?connection_string=...               accepted, but it puts the key on command lines and in logs
    s3://<bucket>[/<prefix>]?endpoint_url=http://127.0.0.1:9000&region=us-east-1&addressing_style=path
        credentials from the standard AWS chain: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
        AWS_PROFILE, or an instance/workload role; region also from AWS_REGION / AWS_DEFAULT_REGION

Secrets belong in the environment, not in the URL: the URL is shown in logs and on command lines. A missing
container or bucket is created.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from cargohold.blobs.store import BlobStore

AZURE_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
AZURE_KEY_ENV = "AZURE_STORAGE_KEY"
AZURE_ACCOUNT_ENV = "AZURE_STORAGE_ACCOUNT"

_AZURE_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SECRET_PARAMETERS = {"connection_string"}


class StorageUrlError(ValueError):
    """The storage URL cannot be understood or lacks what it needs; the message says what to fix."""


def store_from_url(url: str | None, default_root: Path) -> BlobStore:
    if not url:
        from cargohold.blobs.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(default_root)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _filesystem(parts.netloc, parts.path, parts.query)
    if scheme == "azure":
        return _azure(parts.netloc, parts.path, _query(parts.query, {"connection_string", "account_url",
                                                                      "account_name"}))
    if scheme == "s3":
        return _s3(parts.netloc, parts.path, _query(parts.query, {"endpoint_url", "region", "addressing_style"}))
    raise StorageUrlError(f"unknown storage URL scheme {parts.scheme!r}: use file://, azure:// or s3://")


def redacted(url: str | None) -> str:
    """The storage URL with any secret query parameter replaced, for logs and messages."""
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(key, "***" if key in _SECRET_PARAMETERS else value)
             for key, values in parse_qs(parts.query, keep_blank_values=True).items() for value in values]
    return urlunsplit(parts._replace(query=urlencode(query, safe="/:*")))


def _query(text: str, allowed: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, values in parse_qs(text, keep_blank_values=True, strict_parsing=False).items():
        if key not in allowed:
            raise StorageUrlError(f"unknown storage URL parameter {key!r} (known: {', '.join(sorted(allowed))})")
        if len(values) != 1 or not values[0]:
            raise StorageUrlError(f"storage URL parameter {key!r} needs exactly one value")
        found[key] = values[0]
    return found


def _filesystem(host: str, path: str, query: str) -> BlobStore:
    from cargohold.blobs.filesystem import FilesystemBlobStore

    if host not in ("", "localhost") or query:
        raise StorageUrlError("file storage URLs are file:///<absolute path>, without a host or parameters")
    root = Path(unquote(path))
    if not root.is_absolute():
        raise StorageUrlError("file storage URLs need an absolute path: file:///<path>")
    return FilesystemBlobStore(root)


def _prefix(path: str) -> str:
    prefix = unquote(path).strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise StorageUrlError(f"bad prefix {prefix!r} in the storage URL")
    return prefix


def _azure(container: str, path: str, query: dict[str, str]) -> BlobStore:
    from cargohold.blobs.azure import AzureBlobStore, service_from_account, service_from_connection_string

    if not _AZURE_CONTAINER.match(container):
        raise StorageUrlError(f"{container!r} is not an Azure container name (3-63 lower-case letters, digits "
                              "and single hyphens): azure://<container>[/<prefix>]")
    prefix = _prefix(path)
    if "connection_string" in query:
        if "account_url" in query:
            raise StorageUrlError("give connection_string or account_url, not both")
        service = service_from_connection_string(query["connection_string"])
    elif "account_url" in query:
        key = os.environ.get(AZURE_KEY_ENV)
        if not key:
            raise StorageUrlError(f"azure:// with account_url needs the account key in {AZURE_KEY_ENV}")
        account_url = query["account_url"].rstrip("/")
        name = query.get("account_name") or os.environ.get(AZURE_ACCOUNT_ENV) or _account_name(account_url)
        if not name:
            raise StorageUrlError(f"cannot tell the storage account's name from {account_url}: add "
                                  f"&account_name=... or set {AZURE_ACCOUNT_ENV}")
        service = service_from_account(account_url, {"account_name": name, "account_key": key})
    elif os.environ.get(AZURE_CONNECTION_STRING_ENV):
        service = service_from_connection_string(os.environ[AZURE_CONNECTION_STRING_ENV])
    else:
        raise StorageUrlError(f"azure:// needs {AZURE_CONNECTION_STRING_ENV}, or ?account_url=... with "
                              f"{AZURE_KEY_ENV}, in the environment")
    return AzureBlobStore(service, container, prefix)


def _account_name(account_url: str) -> str | None:
    parts = urlsplit(account_url)
    host = parts.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0]
    segments = [segment for segment in parts.path.split("/") if segment]
    return segments[0] if segments else None


def _s3(bucket: str, path: str, query: dict[str, str]) -> BlobStore:
    from cargohold.blobs.s3 import S3BlobStore, client_for

    if not _S3_BUCKET.match(bucket):
        raise StorageUrlError(f"{bucket!r} is not an S3 bucket name: s3://<bucket>[/<prefix>]")
    style = query.get("addressing_style")
    if style not in (None, "path", "virtual", "auto"):
        raise StorageUrlError("addressing_style is path, virtual or auto")
    endpoint = query.get("endpoint_url")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise StorageUrlError("endpoint_url must be an http:// or https:// URL")
    region = query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") \
        or "us-east-1"
    return S3BlobStore(client_for(endpoint, region, style), bucket, _prefix(path))
