"""Build contexts: uploaded by the client, cloned from git, or downloaded as a tarball, unpacked into a run's
workspace. `.dockerignore` is honoured by buildah itself when it reads the context; `pack_context` (used by
the CLI) leaves ignored files out of the upload in the first place.

Every outbound fetch a run makes for its source goes through `fetch_url` or `clone_git`, the two places an
outbound policy applies.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from cargohold.blobs.store import BlobStore
from cargohold.kernel.clock import utcnow
from cargohold.kernel.egress import EgressPolicy, EgressRefused
from cargohold.oci.digest import Digest
from cargohold.tasks.dockerignore import IgnoreRules
from cargohold.tasks.tables import build_sources

DEFAULT_MAX_CONTEXT = 200 * 1024 * 1024
"""The largest build context a client may upload (and a tarball URL may download), by default; set
CARGOHOLD_TASKS_MAX_CONTEXT_BYTES to change it. Larger uploads are refused with 413."""
EXPANSION_LIMIT = 10
"""An archive may unpack to at most this many times the context limit."""
SOURCE_ID = re.compile(r"^[0-9a-f]{32}$")


class SourceError(Exception):
    """The source cannot be had; the message says why, for the run's log."""


def max_context_bytes() -> int:
    return int(os.environ.get("CARGOHOLD_TASKS_MAX_CONTEXT_BYTES", DEFAULT_MAX_CONTEXT))


@dataclass(frozen=True)
class BuildSource:
    id: str
    registry_id: int
    relative_path: str
    digest: str | None
    created_at: datetime


def new_source(conn: Connection, registry_id: int) -> BuildSource:
    source_id = uuid.uuid4().hex
    now = utcnow()
    relative = f"source/{now.strftime('%Y%m%d%H%M%S')}/{source_id}.tar.gz"
    conn.execute(insert(build_sources).values(id=source_id, registry_id=registry_id, relative_path=relative,
                                              created_at=now))
    return BuildSource(source_id, registry_id, relative, None, now)


def get_source(conn: Connection, registry_id: int, *, source_id: str | None = None,
               relative_path: str | None = None) -> BuildSource | None:
    query = select(build_sources).where(build_sources.c.registry_id == registry_id)
    query = query.where(build_sources.c.id == source_id) if source_id else query.where(
        build_sources.c.relative_path == relative_path)
    row = conn.execute(query).first()
    return BuildSource(row.id, row.registry_id, row.relative_path, row.digest, row.created_at) if row else None


def uploaded(conn: Connection, source_id: str, digest: Digest, size: int) -> None:
    conn.execute(update(build_sources).where(build_sources.c.id == source_id).values(digest=str(digest), size=size))


def is_remote(location: str) -> bool:
    return location.startswith(("https://", "http://", "git@"))


def is_git(location: str) -> bool:
    base = location.split("#", 1)[0]
    return base.startswith("git@") or base.endswith(".git") or "://github.com/" in base or "/_git/" in base


async def materialize(store: BlobStore, source: BuildSource | None, location: str | None, into: Path,
                      egress: EgressPolicy) -> Path:
    """Fill `into` with the context and return the directory the build starts from. Remote sources are
    fetched only where the outbound policy allows."""
    into.mkdir(parents=True, exist_ok=True)
    if source is not None:
        if source.digest is None:
            raise SourceError(f"nothing was uploaded to {source.relative_path}")
        archive = into.parent / "context.tar.gz"
        await asyncio.to_thread(_copy_blob, store, source.digest, archive)
        await asyncio.to_thread(unpack, archive, into)
        archive.unlink(missing_ok=True)
        return into
    if not location:
        return into
    if is_git(location):
        url, _, fragment = location.partition("#")
        branch, _, subdir = fragment.partition(":")
        await clone_git(url, branch or None, into, egress)
        return _inside(into, subdir)
    archive = into.parent / "context.download"
    await fetch_url(location, archive, egress)
    await asyncio.to_thread(unpack, archive, into)
    archive.unlink(missing_ok=True)
    return into


def _inside(root: Path, subdir: str) -> Path:
    target = (root / subdir).resolve() if subdir else root
    if not target.is_relative_to(root.resolve()) or not target.is_dir():
        raise SourceError(f"the context directory {subdir!r} is not in the repository")
    return target


def _copy_blob(store: BlobStore, digest: str, path: Path) -> None:
    with open(path, "wb") as handle:
        for piece in store.read(Digest.parse(digest), 1024 * 1024):
            handle.write(piece)


async def fetch_url(url: str, path: Path, egress: EgressPolicy) -> None:
    """Download a tarball context (at most the context limit); every connection, redirects included, is
    checked by the outbound policy."""
    limit = max_context_bytes()
    try:
        async with httpx.AsyncClient(transport=egress.async_transport(), follow_redirects=True,
                                     timeout=60) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise SourceError(f"downloading {url} answered {response.status_code}")
                written = 0
                with open(path, "wb") as handle:
                    async for piece in response.aiter_bytes(1024 * 1024):
                        written += len(piece)
                        if written > limit:
                            raise SourceError(f"the tarball at {url} is larger than {limit} bytes")
                        handle.write(piece)
    except EgressRefused as exc:
        raise SourceError(f"downloading {url} was refused by the outbound policy: {exc}") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"downloading {url} failed: {exc}") from None


async def clone_git(url: str, branch: str | None, into: Path, egress: EgressPolicy) -> None:
    """A shallow clone with the git CLI (a full one where the server cannot do shallow, as dumb HTTP cannot);
    credentials, if any, are in the URL. The host is resolved and checked by the outbound policy first, and git
    is pinned to the checked address (`http.curloptResolve`) with redirects off, so DNS cannot change the
    answer between the check and the connection."""
    pinning = await asyncio.to_thread(_pin_git_host, url, egress)
    try:
        await _git_clone(url, branch, into, pinning, shallow=True)
    except SourceError:
        shutil.rmtree(into, ignore_errors=True)
        await _git_clone(url, branch, into, pinning, shallow=False)


def _pin_git_host(url: str, egress: EgressPolicy) -> list[str]:
    """git `-c` options that pin an http(s) remote to an address the policy allows; other transports (git://,
    ssh) are checked by name, which is as far as the git CLI lets us go."""
    scp_like = re.match(r"^[\w.-]+@([^:/]+):", url)
    if scp_like:
        host, scheme, port = scp_like.group(1), "ssh", 22
    else:
        parsed = urlsplit(url)
        host, scheme = parsed.hostname or "", parsed.scheme
        try:
            port = parsed.port or {"https": 443, "http": 80, "git": 9418, "ssh": 22}.get(scheme, 0)
        except ValueError:
            raise SourceError(f"the git URL {url} has an invalid port") from None
    if not host or scheme not in ("https", "http", "git", "ssh"):
        raise SourceError(f"the git URL {url} is not an http(s), git or ssh address")
    try:
        addresses = egress.resolve(host, port)
    except EgressRefused as exc:
        raise SourceError(f"cloning {url} was refused by the outbound policy: {exc}") from None
    except OSError:
        raise SourceError(f"the git host {host} does not resolve") from None
    if scheme not in ("https", "http"):
        return []
    shown = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    return ["-c", f"http.curloptResolve={host}:{port}:{shown}", "-c", "http.followRedirects=false"]


async def _git_clone(url: str, branch: str | None, into: Path, pinning: list[str], *, shallow: bool) -> None:
    args = ["git", *pinning, "clone", "--quiet", *(["--depth", "1"] if shallow else [])]
    if branch:
        args += ["--branch", branch]
    process = await asyncio.create_subprocess_exec(
        *args, "--", url, str(into), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0"},
        start_new_session=True)
    output, _ = await process.communicate()
    if process.returncode != 0:
        message = output.decode("utf-8", "replace").strip().splitlines()
        raise SourceError(f"git clone failed: {message[-1] if message else process.returncode}")


def unpack(archive: Path, into: Path) -> None:
    """Unpack a (gzipped) tar safely: no absolute paths, no links out, no devices, bounded in size."""
    budget = max_context_bytes() * EXPANSION_LIMIT
    try:
        with tarfile.open(archive, "r:*") as tar:
            total = 0
            members = []
            for member in tar:
                total += member.size
                if total > budget:
                    raise SourceError("the context unpacks to more than the allowed size")
                members.append(member)
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SourceError(f"the context is not a readable tar.gz archive: {exc}") from None


def pack_context(directory: Path, dockerfile: str | None = None) -> bytes:
    """The tar.gz a client uploads: the directory without what `.dockerignore` excludes (the Dockerfile and
    `.dockerignore` are always kept, as Docker keeps them)."""
    rules = IgnoreRules.load(directory)
    keep = {".dockerignore", dockerfile or "Dockerfile"}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for relative in _walk(directory, rules, keep):
            tar.add(directory / relative, arcname=relative, recursive=False)
    return raw.getvalue()


def _walk(directory: Path, rules: IgnoreRules, keep: set[str]) -> Iterator[str]:
    for root, dirs, files in os.walk(directory):
        base = Path(root).relative_to(directory)
        for name in sorted(dirs):
            relative = (base / name).as_posix()
            if not rules.ignored(relative) or rules.may_reinclude_under(relative):
                yield relative
            else:
                dirs.remove(name)
        dirs.sort()
        for name in sorted(files):
            relative = (base / name).as_posix()
            if relative in keep or not rules.ignored(relative):
                yield relative

