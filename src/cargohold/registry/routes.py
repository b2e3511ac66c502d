"""HTTP handlers for `/v2/`: parse, call a service, render. No SQL and no file access here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from cargohold.auth.permissions import DELETE, PULL, PUSH, Scope
from cargohold.auth.principals import ANONYMOUS
from cargohold.auth.service import Access, AuthService
from cargohold.events.origin import request_origin
from cargohold.oci import mediatypes
from cargohold.oci.digest import Digest, is_digest
from cargohold.oci.errors import RegistryError, manifest_unknown
from cargohold.oci.manifest import MAX_MANIFEST_BYTES
from cargohold.oci.reference import validate_name, validate_tag
from cargohold.registry import blobs, listing, manifests
from cargohold.kernel.context import RegistryContext
from cargohold.lifecycle.pulls import PullRecorder
from cargohold.registry.http import (
    API_VERSION,
    JSON,
    body_stream,
    byte_ranges,
    content_length,
    digest_from,
    next_link,
    page_size,
    proxied_blob,
    read_limited,
    repository,
)
from cargohold.registry.locks import disallowed
from cargohold.registry.repositories import RepositoryRef
from cargohold.registry.uploads import Uploads, UploadState, parse_content_range
from cargohold.replication import presence

DOWNLOAD_URL_SECONDS = 20 * 60
"""How long a redirect to a cloud store's signed URL stays usable: long enough to start a large layer."""


class BlobFileResponse(FileResponse):
    """A blob file sent by the kernel, with the byte ranges `byte_ranges` already chose and validated."""

    chunk_size = 1024 * 1024

    def __init__(self, path: Path, ranges: list[tuple[int, int]], **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._ranges = ranges

    def _parse_range_header(self, http_range: str, file_size: int) -> list[tuple[int, int]]:  # type: ignore[override]
        return self._ranges


class RegistryRoutes:
    def __init__(self, ctx: RegistryContext, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth
        self.uploads = Uploads(ctx)
        self.pulls = PullRecorder(ctx.engine)

    async def _repository(self, request: Request, *actions: str) -> tuple[RepositoryRef, Access]:
        """Validate the name in the path and authorize `actions` on it.

        A HEAD is how push clients ask whether to upload, so its challenge names `pull,push`: a client that
        keeps one token for a whole push (oras-py does) then holds push too, if the caller may push at all.
        The token service still grants only what the caller may do, and the HEAD itself needs only `pull`.
        """
        name = repository(request)
        wanted = [Scope("repository", name, frozenset(actions))]
        ask = [Scope("repository", name, frozenset({*actions, PUSH}))] if request.method == "HEAD" else None
        access = await self.auth.authorize(request, wanted, ask)
        return RepositoryRef(access.registry.id, name), access

    def routes(self) -> list[Route]:
        return [
            Route("/v2/{name:path}/manifests/{reference}", self.get_manifest, methods=["GET", "HEAD"]),
            Route("/v2/{name:path}/blobs/{digest}", self.get_blob, methods=["GET", "HEAD"]),
            Route("/v2/", self.base, methods=["GET"]),
            Route("/v2/_catalog", self.catalog, methods=["GET"]),
            Route("/v2/{name:path}/blobs/uploads/", self.start_upload, methods=["POST"]),
            Route("/v2/{name:path}/blobs/uploads/{upload_id}", self.upload_status, methods=["GET"]),
            Route("/v2/{name:path}/blobs/uploads/{upload_id}", self.append_upload, methods=["PATCH"]),
            Route("/v2/{name:path}/blobs/uploads/{upload_id}", self.complete_upload, methods=["PUT"]),
            Route("/v2/{name:path}/blobs/uploads/{upload_id}", self.cancel_upload, methods=["DELETE"]),
            Route("/v2/{name:path}/blobs/{digest}", self.delete_blob, methods=["DELETE"]),
            Route("/v2/{name:path}/manifests/{reference}", self.put_manifest, methods=["PUT"]),
            Route("/v2/{name:path}/manifests/{reference}", self.delete_manifest, methods=["DELETE"]),
            Route("/v2/{name:path}/tags/list", self.list_tags, methods=["GET"]),
            Route("/v2/{name:path}/referrers/{digest}", self.referrers, methods=["GET"]),
        ]

    async def base(self, request: Request) -> Response:
        access = await self.auth.authorize(request, [])
        if access.principal.kind == ANONYMOUS:
            raise self.auth.challenge(request, access.registry, [], None)
        return Response("{}", 200, API_VERSION, media_type=JSON)

    async def catalog(self, request: Request) -> Response:
        access = await self.auth.authorize(request, [Scope("registry", "catalog", frozenset({"*"}))])
        n = page_size(request)
        last = request.query_params.get("last")
        page = await self.ctx.read(listing.list_repositories, access.registry.id, n, last)
        headers = dict(API_VERSION)
        if page.has_more:
            headers["Link"] = next_link("/v2/_catalog", n, page.items[-1])
        return Response(json.dumps({"repositories": page.items}), 200, headers, media_type=JSON)

    async def get_blob(self, request: Request) -> Response:
        ref, _ = await self._repository(request, PULL)
        digest = digest_from(request.path_params["digest"])
        await self.ctx.read(blobs.find_blob, ref, digest)
        store, stored = await self.ctx.run(blobs.blob_source, self.ctx, digest)
        etag = f'"{digest}"'
        ranges = byte_ranges(request.headers.get("range"), stored.size, request.headers.get("if-range"), etag)
        headers = {"Docker-Content-Digest": str(digest), "Accept-Ranges": "bytes", "ETag": etag,
                   "Cache-Control": "max-age=31536000"}
        if stored.path is not None:
            return BlobFileResponse(stored.path, ranges, headers=headers, media_type="application/octet-stream")
        if request.method == "HEAD":
            return Response(None, 200, {**headers, "Content-Length": str(stored.size)},
                            media_type="application/octet-stream")
        if self.ctx.redirect_downloads:
            url = await self.ctx.run(store.download_url, digest, DOWNLOAD_URL_SECONDS)
            if url is not None:
                return Response(None, 307, {"Location": url, "Docker-Content-Digest": str(digest)})
        return proxied_blob(store, digest, stored.size, ranges, headers)

    async def delete_blob(self, request: Request) -> Response:
        ref, access = await self._repository(request, DELETE)
        digest = digest_from(request.path_params["digest"])
        await self.ctx.run(blobs.delete_blob, self.ctx, ref, digest)
        self.auth.record_access(access, "delete", ref.name, str(digest))
        return Response(status_code=202, headers=API_VERSION)

    async def start_upload(self, request: Request) -> Response:
        ref, access = await self._repository(request, PULL, PUSH)
        params = request.query_params
        if (mounted := params.get("mount")) is not None:
            digest = digest_from(mounted)
            if await self._mount(access, ref, digest, params.get("from")):
                return _blob_created(ref.name, str(digest))
        upload = await self.uploads.start(ref)
        if (declared := params.get("digest")) is not None:
            digest = digest_from(declared)
            await self.uploads.complete(ref, upload.id, digest, body_stream(request), None, content_length(request))
            return _blob_created(ref.name, str(digest))
        return _upload_accepted(ref.name, upload)

    async def _mount(self, access: Access, ref: RepositoryRef, digest: Digest, source: str | None) -> bool:
        """Mount from `source`, or without one from any repository holding the blob, but only from repositories
        the caller is entitled to pull from; otherwise the client falls back to uploading."""
        if source is not None:
            candidates = [validate_name(source)]
        else:
            candidates = await self.ctx.read(blobs.repositories_holding, ref.registry_id, digest)
        readable = [name for name in candidates
                    if await self.auth.entitled(access, Scope("repository", name, frozenset({PULL})))]
        return await self.ctx.run(blobs.mount_blob, self.ctx, ref, digest, readable)

    async def upload_status(self, request: Request) -> Response:
        ref, _ = await self._repository(request, PULL, PUSH)
        upload = await self.uploads.status(ref, request.path_params["upload_id"])
        return _upload_response(ref.name, upload, 204)

    async def append_upload(self, request: Request) -> Response:
        ref, _ = await self._repository(request, PULL, PUSH)
        content_range = parse_content_range(request.headers.get("content-range"))
        upload = await self.uploads.append(ref, request.path_params["upload_id"], body_stream(request),
                                           content_range, content_length(request))
        return _upload_accepted(ref.name, upload)

    async def complete_upload(self, request: Request) -> Response:
        ref, _ = await self._repository(request, PULL, PUSH)
        declared = request.query_params.get("digest")
        if declared is None:
            raise RegistryError("DIGEST_INVALID", "the digest query parameter is required", 400)
        digest = digest_from(declared)
        content_range = parse_content_range(request.headers.get("content-range"))
        length = content_length(request)
        body = body_stream(request) if length != 0 else None
        await self.uploads.complete(ref, request.path_params["upload_id"], digest, body, content_range, length)
        return _blob_created(ref.name, str(digest))

    async def cancel_upload(self, request: Request) -> Response:
        ref, _ = await self._repository(request, PULL, PUSH)
        await self.uploads.cancel(ref, request.path_params["upload_id"])
        return Response(status_code=204, headers=API_VERSION)

    async def get_manifest(self, request: Request) -> Response:
        ref, access = await self._repository(request, PULL)
        reference = _reference(request)
        found = await self.ctx.cache.get(("manifest", ref, reference), manifests.find_manifest, ref, reference,
                                         cost=_manifest_cost)
        if not found.readable:
            raise disallowed("the image is locked against reading")
        if self.ctx.region is not None and self.ctx.read_through is None and not await self.ctx.cache.get(
                ("complete", self.ctx.region, found.digest), presence.complete_in, found.digest, self.ctx.region):
            raise manifest_unknown(reference)
        if not manifests.accepts(",".join(request.headers.getlist("accept")), found.media_type):
            raise manifest_unknown(reference)
        headers = {"Docker-Content-Digest": found.digest, "ETag": f'"{found.digest}"', **API_VERSION}
        if found.subject_digest:
            headers["OCI-Subject"] = found.subject_digest
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(found.content))
            return Response(None, 200, headers, media_type=found.media_type)
        self.auth.record_pull(access, ref.name, reference)
        self.pulls.record(ref.registry_id, ref.name, found.digest)
        return Response(found.content, 200, headers, media_type=found.media_type)

    async def put_manifest(self, request: Request) -> Response:
        ref, access = await self._repository(request, PULL, PUSH)
        reference = _reference(request)
        body = await read_limited(request, MAX_MANIFEST_BYTES)
        result = await self.ctx.run(manifests.put_manifest, self.ctx, ref, reference, body,
                                    request.headers.get("content-type"), request.query_params.getlist("tag"),
                                    request_origin(request))
        self.auth.record_access(access, "push", ref.name, reference if reference == result.digest
                                else f"{reference}@{result.digest}")
        headers = {"Location": f"/v2/{ref.name}/manifests/{result.digest}", "Docker-Content-Digest": result.digest,
                   **API_VERSION}
        if result.subject_digest:
            headers["OCI-Subject"] = result.subject_digest
        return Response(status_code=201, headers=headers)

    async def delete_manifest(self, request: Request) -> Response:
        ref, access = await self._repository(request, DELETE)
        reference = _reference(request)
        await self.ctx.run(manifests.delete_manifest, self.ctx, ref, reference, request_origin(request))
        self.auth.record_access(access, "delete", ref.name, reference)
        return Response(status_code=202, headers=API_VERSION)

    async def list_tags(self, request: Request) -> Response:
        ref, _ = await self._repository(request, PULL)
        n = page_size(request)
        last = request.query_params.get("last")
        page = await self.ctx.cache.get(("tags", ref, n, last), listing.list_tags, ref, n, last, cost=_page_cost)
        headers = dict(API_VERSION)
        if page.has_more:
            headers["Link"] = next_link(f"/v2/{ref.name}/tags/list", n, page.items[-1])
        return Response(json.dumps({"name": ref.name, "tags": page.items}), 200, headers, media_type=JSON)

    async def referrers(self, request: Request) -> Response:
        ref, _ = await self._repository(request, PULL)
        subject = digest_from(request.path_params["digest"])
        artifact_type = request.query_params.get("artifactType") or None
        index = await self.ctx.run(manifests.referrers, self.ctx, ref, subject, artifact_type)
        headers = dict(API_VERSION)
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return Response(json.dumps(index), 200, headers, media_type=mediatypes.OCI_INDEX)


def _manifest_cost(found: manifests.StoredManifest) -> int:
    return len(found.content) + 256


def _page_cost(page: listing.Page) -> int:
    return sum(len(item) + 56 for item in page.items) + 128


def _reference(request: Request) -> str:
    reference = request.path_params["reference"]
    if is_digest(reference):
        digest_from(reference)
    else:
        validate_tag(reference)
    return reference


def _blob_created(name: str, digest: str) -> Response:
    headers = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest, **API_VERSION}
    return Response(status_code=201, headers=headers)


def _upload_response(name: str, upload: UploadState, status: int) -> Response:
    headers = {
        "Location": f"/v2/{name}/blobs/uploads/{upload.id}",
        "Docker-Upload-UUID": upload.id,
        "Range": f"0-{max(upload.size - 1, 0)}",
        **API_VERSION,
    }
    return Response(status_code=status, headers=headers)


def _upload_accepted(name: str, upload: UploadState) -> Response:
    return _upload_response(name, upload, 202)
