"""The engine behind ACR's `importImage`: copy an image, or an index with its children, from another registry
or from a registry on this server into a registry here.

Manifests are copied byte for byte, so their digests hold. Blobs are streamed into the store and verified
against their digests. A blob the store already holds is linked without transfer, but only after the source
showed it holds that blob too: knowing a digest must not be enough to reach content of another registry.
Every manifest is fetched and every target checked before anything is written, so a refused import
(NoForce on a taken tag, a locked target) changes nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from cargohold.db.engine import lock_digest, write_transaction
from cargohold.kernel.egress import EgressPolicy, EgressRefused
from cargohold.management.arm import ArmError
from cargohold.management.source_registry import (
    FetchedManifest,
    InvalidRegistryUri,
    SourceError,
    SourceNotFound,
    SourceProtocolError,
    SourceRefused,
    SourceRegistry,
    SourceUnauthorized,
    SourceUnreachable,
    base_url,
)
from cargohold.oci.digest import Digest
from cargohold.oci.errors import RegistryError
from cargohold.oci.manifest import Descriptor, ParsedManifest, parse_manifest
from cargohold.oci.reference import validate_name, validate_tag
from cargohold.registry import locks
from cargohold.registry.blobs import find_blob, link_blob
from cargohold.kernel.context import RegistryContext, utcnow
from cargohold.registry.manifests import find_manifest, put_manifest
from cargohold.registry.repositories import RepositoryRef, ensure_repository, find_repository_id

DEFAULT_TAG = "latest"
MAX_INDEX_DEPTH = 4
PLACE_ATTEMPTS = 3
WRITE_BATCH = 8 * 1024 * 1024


@dataclass(frozen=True)
class ImportSource:
    source_image: str
    """`repo:tag`, `repo@sha256:…`, or `repo` (tag `latest`)."""
    registry_uri: str | None = None
    """`host[:port]` (HTTPS), or with an explicit `http://` or `https://`."""
    local_registry_id: int | None = None
    """A registry on this server, already resolved and authorized by the caller."""
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class ImportRequest:
    source: ImportSource
    target_tags: list[str]
    untagged_target_repositories: list[str]
    force: bool


@dataclass(frozen=True)
class ImportResult:
    digest: str
    targets: list[str]
    blobs_copied: int
    bytes_copied: int


@dataclass(frozen=True)
class ImageReference:
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or DEFAULT_TAG


@dataclass(frozen=True)
class Target:
    repository: str
    tag: str | None

    def label(self, digest: str) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{digest}"


def import_image(ctx: RegistryContext, target_registry_id: int, request: ImportRequest, *,
                 verify: bool | str = True) -> ImportResult:
    """Copy `request.source` into the targets of registry `target_registry_id`. Blocking: run it off the loop.

    Raises `ArmError` for everything a caller or a source can cause. `verify` is httpx's TLS verification.
    """
    source_image = parse_source_image(request.source.source_image)
    targets = plan_targets(request, source_image)
    try:
        with _open_source(ctx, request.source, source_image.repository, verify) as source:
            return _Importer(ctx, target_registry_id, source, targets, request.force).run(source_image)
    except SourceError as exc:
        raise _source_failure(exc) from None


def refuse_outbound(egress: EgressPolicy, source: ImportSource) -> None:
    """Refuse at once a source the outbound policy refuses on its address alone (a loopback or private
    literal, `localhost`, a metadata host); names are checked again when the import connects."""
    if source.local_registry_id is not None or not source.registry_uri:
        return
    try:
        egress.check_url(base_url(source.registry_uri))
    except (InvalidRegistryUri, ValueError):
        return
    except EgressRefused as exc:
        raise ArmError(400, "InvalidParameter", f"source.registryUri: {exc}") from None


def parse_source_image(text: str) -> ImageReference:
    try:
        if "@" in text:
            repository, digest = text.split("@", 1)
            return ImageReference(validate_name(repository), digest=str(Digest.parse(digest)))
        repository, has_tag, tag = text.partition(":")
        return ImageReference(validate_name(repository), validate_tag(tag) if has_tag else DEFAULT_TAG)
    except RegistryError as exc:
        raise _invalid("sourceImage", text, exc) from None


def plan_targets(request: ImportRequest, source: ImageReference) -> list[Target]:
    """ACR's rules: `repo` in targetTags takes the source's tag (or `latest`); with no target at all the
    image lands under the source's own repository and tag (untagged, when imported by digest)."""
    targets: list[Target] = []
    for text in request.target_tags:
        repository, has_tag, tag = text.partition(":")
        try:
            targets.append(Target(validate_name(repository),
                                  validate_tag(tag) if has_tag else source.tag or DEFAULT_TAG))
        except RegistryError as exc:
            raise _invalid("targetTags", text, exc) from None
    for text in request.untagged_target_repositories:
        try:
            targets.append(Target(validate_name(text), None))
        except RegistryError as exc:
            raise _invalid("untaggedTargetRepositories", text, exc) from None
    if not targets:
        targets.append(Target(source.repository, source.tag))
    return list(dict.fromkeys(targets))


def _invalid(field_name: str, value: str, exc: RegistryError) -> ArmError:
    return ArmError(400, "InvalidParameter", f"{field_name}: {value[:300]!r} is not valid: {_reason(exc)}")


def _reason(exc: RegistryError) -> str:
    if isinstance(exc.detail, dict) and isinstance(exc.detail.get("reason"), str):
        return str(exc.detail["reason"])
    return exc.message


# sources ------------------------------------------------------------------------------------------

class _Source(Protocol):
    def manifest(self, reference: str, media_type: str | None) -> FetchedManifest: ...

    def confirm_blob(self, descriptor: Descriptor) -> None:
        """Raise unless the source holds the blob, with the declared size."""

    def copy_blob(self, descriptor: Descriptor) -> int:
        """Put the blob's verified bytes into the store; return how many were transferred."""


@contextmanager
def _open_source(ctx: RegistryContext, source: ImportSource, repository: str,
                 verify: bool | str) -> Iterator[_Source]:
    if source.local_registry_id is not None:
        yield _LocalSource(ctx, RepositoryRef(source.local_registry_id, repository))
        return
    if not source.registry_uri:
        raise ArmError(400, "InvalidParameter", "source: give registryUri or resourceId")
    if (source.username is None) != (source.password is None):
        raise ArmError(400, "InvalidParameter", "source.credentials: give both username and password")
    try:
        client = SourceRegistry(source.registry_uri, source.username, source.password, verify=verify,
                                egress=ctx.egress)
        ctx.egress.check_url(client.base_url)
    except InvalidRegistryUri as exc:
        raise ArmError(400, "InvalidParameter", f"source.registryUri: {exc}") from None
    except EgressRefused as exc:
        client.close()
        raise ArmError(400, "InvalidParameter", f"source.registryUri: {exc}") from None
    with client:
        yield _RemoteSource(ctx, client, repository)


class _RemoteSource:
    def __init__(self, ctx: RegistryContext, client: SourceRegistry, repository: str) -> None:
        self.ctx = ctx
        self.client = client
        self.repository = repository

    def manifest(self, reference: str, media_type: str | None) -> FetchedManifest:
        return self.client.manifest(self.repository, reference, media_type)

    def confirm_blob(self, descriptor: Descriptor) -> None:
        size = self.client.blob_size(self.repository, descriptor.digest)
        if size is not None and size != descriptor.size:
            raise SourceProtocolError(f"{self.client.base_url} says blob {descriptor.digest} is {size} "
                                      f"bytes, its manifest says {descriptor.size}")

    def copy_blob(self, descriptor: Descriptor) -> int:
        with self.client.blob(self.repository, descriptor.digest) as chunks:
            return stream_into_store(self.ctx, chunks, descriptor)


class _LocalSource:
    """A repository of a registry on this server: the manifests come from their rows, the blobs are linked."""

    def __init__(self, ctx: RegistryContext, ref: RepositoryRef) -> None:
        self.ctx = ctx
        self.ref = ref

    def manifest(self, reference: str, media_type: str | None) -> FetchedManifest:
        with self.ctx.engine.connect() as conn:
            try:
                stored = find_manifest(conn, self.ref, reference)
            except RegistryError:
                separator = "@" if ":" in reference else ":"
                raise SourceNotFound(f"{self.ref.name}{separator}{reference} was not found in the source "
                                     "registry") from None
        if not stored.readable:
            raise SourceUnauthorized(f"{self.ref.name} is locked against reading in the source registry")
        return FetchedManifest(stored.media_type, stored.content)

    def confirm_blob(self, descriptor: Descriptor) -> None:
        with self.ctx.engine.connect() as conn:
            try:
                size = find_blob(conn, self.ref, Digest.parse(descriptor.digest))
            except RegistryError as exc:
                if exc.code == "DENIED":
                    raise SourceUnauthorized(f"{self.ref.name} is locked against reading in the source "
                                             "registry") from None
                raise SourceNotFound(f"blob {descriptor.digest} is not in {self.ref.name} of the source "
                                     "registry") from None
        if size != descriptor.size:
            raise SourceProtocolError(f"blob {descriptor.digest} is {size} bytes, its manifest says "
                                      f"{descriptor.size}")

    def copy_blob(self, descriptor: Descriptor) -> int:
        self.confirm_blob(descriptor)
        raise SourceProtocolError(f"the content of blob {descriptor.digest} is missing from this server's "
                                  "storage (see `cargohold fsck`)")


def stream_into_store(ctx: RegistryContext, chunks: Iterator[bytes], descriptor: Descriptor) -> int:
    """Stage the bytes, verify size and digest as they pass, and commit them under the digest."""
    digest = Digest.parse(descriptor.digest)
    upload_id = uuid.uuid4().hex
    ctx.store.start_upload(upload_id)
    committed = False
    try:
        hasher = digest.hasher()
        size = 0
        writer = ctx.store.open_upload(upload_id, 0)
        try:
            batch: list[bytes] = []
            batched = 0
            for chunk in chunks:
                size += len(chunk)
                if size > descriptor.size:
                    raise SourceProtocolError(f"blob {digest} is larger than the {descriptor.size} bytes its "
                                              "manifest declares")
                hasher.update(chunk)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= WRITE_BATCH:
                    writer.write(batch)
                    batch, batched = [], 0
            writer.write(batch)
        except BaseException:
            writer.close()
            raise
        writer.finish()
        if size != descriptor.size or hasher.hexdigest() != digest.hex:
            raise SourceProtocolError(f"the bytes served for blob {digest} do not match its digest and size")
        ctx.store.commit(upload_id, digest)
        committed = True
    finally:
        if not committed:
            ctx.store.discard_upload(upload_id)
    return size


def _source_failure(exc: SourceError) -> ArmError:
    message = str(exc)
    if isinstance(exc, SourceUnreachable):
        return ArmError(502, "ImportSourceUnreachable", message)
    if isinstance(exc, SourceUnauthorized):
        return ArmError(403, "ImportSourceUnauthorized", message)
    if isinstance(exc, SourceNotFound):
        return ArmError(400, "ImportSourceNotFound", message)
    if isinstance(exc, SourceRefused):
        return ArmError(400, "InvalidParameter", f"source.registryUri: {message}")
    return ArmError(502, "ImportSourceError", message)


# the copy -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Manifest:
    digest: str
    content: bytes
    parsed: ParsedManifest


@dataclass
class _Importer:
    ctx: RegistryContext
    registry_id: int
    source: _Source
    targets: list[Target]
    force: bool
    blobs_copied: int = 0
    bytes_copied: int = 0
    _fetched: dict[str, _Manifest] = field(default_factory=dict)

    def run(self, source_image: ImageReference) -> ImportResult:
        top = self._fetch(source_image.reference, None, None, 0)
        children = [m for digest, m in self._fetched.items() if digest != top.digest]
        with self.ctx.engine.connect() as conn:
            self._check_targets(conn, top, check_locks=True)
        for descriptor in self._blobs():
            self._place_blob(descriptor)
        repositories = self._repositories()
        for repository in repositories:
            for child in children:
                self._put(repository, child, [])
        with self.ctx.engine.connect() as conn:
            self._check_targets(conn, top, check_locks=False)
        for repository in repositories:
            self._put(repository, top, [t.tag for t in self.targets if t.repository == repository and t.tag])
        return ImportResult(top.digest, [t.label(top.digest) for t in self.targets], self.blobs_copied,
                            self.bytes_copied)

    def _fetch(self, reference: str, media_type: str | None, size: int | None, depth: int) -> _Manifest:
        """The manifest and, for an index, its children (and theirs), each verified against its digest."""
        fetched = self.source.manifest(reference, media_type)
        digest = _digest_of(fetched.content, reference)
        if size is not None and len(fetched.content) != size:
            raise SourceProtocolError(f"manifest {digest} is {len(fetched.content)} bytes, its index says "
                                      f"{size}")
        try:
            parsed = parse_manifest(fetched.content, fetched.media_type)
        except RegistryError as exc:
            raise ArmError(400, "ImportSourceInvalid",
                           f"the source manifest {digest} cannot be imported: {_reason(exc)}") from None
        if parsed.manifests and depth >= MAX_INDEX_DEPTH:
            raise ArmError(400, "ImportSourceInvalid", f"indexes nest deeper than {MAX_INDEX_DEPTH} levels")
        for child in parsed.manifests:
            if child.digest not in self._fetched:
                self._fetch(child.digest, child.media_type, child.size, depth + 1)
        manifest = _Manifest(digest, fetched.content, parsed)
        self._fetched[digest] = manifest
        return manifest

    def _blobs(self) -> list[Descriptor]:
        wanted: dict[str, Descriptor] = {}
        for manifest in self._fetched.values():
            for descriptor in manifest.parsed.blob_references():
                known = wanted.setdefault(descriptor.digest, descriptor)
                if known.size != descriptor.size:
                    raise SourceProtocolError("the source's manifests disagree on the size of "
                                              f"{descriptor.digest}")
        return list(wanted.values())

    def _check_targets(self, conn: Connection, top: _Manifest, *, check_locks: bool) -> None:
        for target in self.targets:
            ref = RepositoryRef(self.registry_id, target.repository)
            repository_id = find_repository_id(conn, ref)
            if repository_id is None:
                continue
            if check_locks:
                with _refusals_as_conflict(target.label(top.digest)):
                    locks.check_repository_writable(conn, repository_id)
            if target.tag is None:
                continue
            current = _tagged_digest(conn, ref, target.tag)
            if current is None or current == top.digest:
                continue
            if not self.force:
                raise ArmError(409, "Conflict",
                               f"Tag {target.repository}:{target.tag} already exists in target registry.")
            if check_locks:
                with _refusals_as_conflict(target.label(top.digest)):
                    # -1 names no manifest: the tag is known to point at another one than the import's.
                    locks.check_tag_movable(conn, repository_id, target.tag, -1)

    def _repositories(self) -> list[str]:
        return list(dict.fromkeys(t.repository for t in self.targets))

    def _place_blob(self, descriptor: Descriptor) -> None:
        """Link the blob into every target repository, transferring it first if the store lacks it.

        The link is made only while the file is present: a registry delete may remove it between the
        transfer and the transaction, and then it is transferred again."""
        digest = Digest.parse(descriptor.digest)
        confirmed = False
        for _ in range(PLACE_ATTEMPTS):
            stored = self.ctx.store.stat(digest)
            if stored is None:
                self.bytes_copied += self.source.copy_blob(descriptor)
                self.blobs_copied += 1
            elif not confirmed:
                if stored.size != descriptor.size:
                    raise SourceProtocolError(f"blob {digest} is {stored.size} bytes, the source's manifest "
                                              f"says {descriptor.size}")
                self.source.confirm_blob(descriptor)
            confirmed = True
            with write_transaction(self.ctx.engine) as conn:
                lock_digest(conn, str(digest))
                if self.ctx.store.stat(digest) is not None:
                    for repository in self._repositories():
                        ref = RepositoryRef(self.registry_id, repository)
                        repository_id = ensure_repository(conn, ref, utcnow())
                        with _refusals_as_conflict(repository):
                            locks.check_repository_writable(conn, repository_id)
                        link_blob(conn, repository_id, digest, descriptor.size)
                    return
        raise ArmError(409, "Conflict",
                       f"blob {digest} was deleted while it was being imported; retry the import")

    def _put(self, repository: str, manifest: _Manifest, tags: list[str]) -> None:
        ref = RepositoryRef(self.registry_id, repository)
        where = f"{repository}:{','.join(tags)}" if tags else f"{repository}@{manifest.digest}"
        try:
            put_manifest(self.ctx, ref, manifest.digest, manifest.content, manifest.parsed.media_type, tags)
        except IntegrityError:
            raise ArmError(409, "Conflict", f"{where} was changed concurrently; retry the import") from None
        except RegistryError as exc:
            if exc.code == "DENIED":
                raise ArmError(409, "Conflict", f"cannot import into {where}: {_reason(exc)}") from None
            if exc.code == "MANIFEST_BLOB_UNKNOWN":
                raise ArmError(409, "Conflict",
                               f"content of {where} was deleted while it was being imported; retry the import"
                               ) from None
            raise ArmError(400, "ImportSourceInvalid", f"the source manifest {manifest.digest} cannot be "
                                                       f"imported: {_reason(exc)}") from None


def _digest_of(content: bytes, reference: str) -> str:
    """The manifest's digest; when it was asked for by digest, the bytes must match it."""
    if ":" not in reference:
        return f"sha256:{hashlib.sha256(content).hexdigest()}"
    wanted = Digest.parse(reference)
    actual = f"{wanted.algorithm}:{hashlib.new(wanted.algorithm, content).hexdigest()}"
    if actual != reference:
        raise SourceProtocolError(f"the manifest served for {reference} has digest {actual}")
    return actual


def _tagged_digest(conn: Connection, ref: RepositoryRef, tag: str) -> str | None:
    try:
        return find_manifest(conn, ref, tag).digest
    except RegistryError:
        return None


@contextmanager
def _refusals_as_conflict(where: str) -> Iterator[None]:
    """A lock's refusal (DENIED) as the import's answer."""
    try:
        yield
    except RegistryError as exc:
        raise ArmError(409, "Conflict", f"cannot import into {where}: {_reason(exc)}") from None
