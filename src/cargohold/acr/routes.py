"""HTTP handlers for `/acr/v1/`: parse, authorize, call `acr.properties`, render. ACR's shapes and scopes:
`metadata_read` to read, `metadata_write` to change attributes, `delete` to delete, the catalog scope to list."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cargohold.acr import properties
from cargohold.auth.permissions import DELETE, METADATA_READ, METADATA_WRITE, Scope
from cargohold.auth.service import Access, AuthService
from cargohold.db.engine import write_transaction
from cargohold.events.origin import request_origin
from cargohold.events.payload import DELETE as DELETE_EVENT
from cargohold.events.payload import RequestOrigin, Target
from cargohold.events.record import record_event
from cargohold.oci.errors import pagination_invalid
from cargohold.oci.digest import is_digest
from cargohold.oci.reference import validate_name, validate_tag
from cargohold.registry import listing, manifests
from cargohold.kernel.context import RegistryContext
from cargohold.registry.http import JSON, page_size, read_limited
from cargohold.registry.repositories import RepositoryRef

DEFAULT_PAGE = 100
MAX_PATCH_BYTES = 16 * 1024


class AcrRoutes:
    def __init__(self, ctx: RegistryContext, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth

    def routes(self) -> list[Route]:
        return [
            Route("/acr/v1/_catalog", self.catalog, methods=["GET"]),
            Route("/acr/v1/{name:path}/_tags/{tag}", self.tag, methods=["GET", "PATCH", "DELETE"]),
            Route("/acr/v1/{name:path}/_tags", self.tags, methods=["GET"]),
            Route("/acr/v1/{name:path}/_manifests/{reference}", self.manifest, methods=["GET", "PATCH", "DELETE"]),
            Route("/acr/v1/{name:path}/_manifests", self.manifests, methods=["GET"]),
            Route("/acr/v1/{name:path}", self.repository, methods=["GET", "PATCH", "DELETE"]),
        ]

    async def _authorize(self, request: Request, action: str) -> tuple[RepositoryRef, Access]:
        name = validate_name(request.path_params["name"])
        access = await self.auth.authorize(request, [Scope("repository", name, frozenset({action}))])
        return RepositoryRef(access.registry.id, name), access

    async def catalog(self, request: Request) -> Response:
        access = await self.auth.authorize(request, [Scope("registry", "catalog", frozenset({"*"}))])
        n = _size(request)
        last = request.query_params.get("last")
        page = await self.ctx.read(listing.list_repositories, access.registry.id, n, last)
        link = _link("/acr/v1/_catalog", {"last": page.items[-1], "n": n}) if page.has_more else None
        return _json({"repositories": page.items}, link=link)

    async def repository(self, request: Request) -> Response:
        if request.method == "DELETE":
            ref, access = await self._authorize(request, DELETE)
            body, upload_ids = await self.ctx.run(self._delete_repository, ref, request_origin(request))
            for upload_id in upload_ids:
                await self.ctx.run(self.ctx.store.discard_upload, upload_id)
            self.auth.record_access(access, "delete", ref.name, None)
            return _json(body, status=202)
        if request.method == "PATCH":
            ref, access = await self._authorize(request, METADATA_WRITE)
            changes = properties.parse_attributes(await read_limited(request, MAX_PATCH_BYTES))
            return _json(await self._write(properties.update_repository, ref, changes, access.registry.login_server))
        ref, access = await self._authorize(request, METADATA_READ)
        return _json(await self.ctx.read(properties.repository_properties, ref, access.registry.login_server))

    def _delete_repository(self, ref: RepositoryRef,
                           origin: RequestOrigin) -> tuple[dict[str, list[str]], list[str]]:
        with write_transaction(self.ctx.engine) as conn:
            deleted = properties.delete_repository(conn, ref)
            record_event(conn, ref.registry_id, DELETE_EVENT, Target(ref.name), origin)
            return deleted

    async def tags(self, request: Request) -> Response:
        ref, access = await self._authorize(request, METADATA_READ)
        params = request.query_params
        n, orderby, last = _size(request), params.get("orderby"), params.get("last")
        body, more = await self.ctx.read(properties.list_tags, ref, access.registry.login_server, orderby, n, last,
                                         params.get("digest"))
        link = None
        if more:
            link = _link(f"/acr/v1/{ref.name}/_tags",
                         {"last": body["tags"][-1]["name"], "n": n, **({"orderby": orderby} if orderby else {})})
        return _json(body, link=link)

    async def tag(self, request: Request) -> Response:
        tag = validate_tag(request.path_params["tag"])
        if request.method == "DELETE":
            ref, access = await self._authorize(request, DELETE)
            await self.ctx.read(properties.tag_properties, ref, access.registry.login_server, tag)
            await self.ctx.run(manifests.delete_manifest, self.ctx, ref, tag, request_origin(request))
            self.auth.record_access(access, "delete", ref.name, tag)
            return Response(status_code=202)
        if request.method == "PATCH":
            ref, access = await self._authorize(request, METADATA_WRITE)
            changes = properties.parse_attributes(await read_limited(request, MAX_PATCH_BYTES))
            return _json(await self._write(properties.update_tag, ref, access.registry.login_server, tag, changes))
        ref, access = await self._authorize(request, METADATA_READ)
        return _json(await self.ctx.read(properties.tag_properties, ref, access.registry.login_server, tag))

    async def manifests(self, request: Request) -> Response:
        ref, access = await self._authorize(request, METADATA_READ)
        n, orderby, last = _size(request), request.query_params.get("orderby"), request.query_params.get("last")
        body, more = await self.ctx.read(properties.list_manifests, ref, access.registry.login_server, orderby, n, last)
        link = None
        if more:
            link = _link(f"/acr/v1/{ref.name}/_manifests",
                         {"last": body["manifests"][-1]["digest"], "n": n, **({"orderby": orderby} if orderby else {})})
        return _json(body, link=link)

    async def manifest(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        if not is_digest(reference):
            validate_tag(reference)
        if request.method == "DELETE":
            ref, access = await self._authorize(request, DELETE)
            found = await self.ctx.read(properties.manifest_properties, ref, access.registry.login_server, reference)
            await self.ctx.run(manifests.delete_manifest, self.ctx, ref, found["manifest"]["digest"],
                               request_origin(request))
            self.auth.record_access(access, "delete", ref.name, found["manifest"]["digest"])
            return Response(status_code=202)
        if request.method == "PATCH":
            ref, access = await self._authorize(request, METADATA_WRITE)
            body = await read_limited(request, MAX_PATCH_BYTES)
            changes = properties.parse_attributes(body)
            return _json(await self._write(properties.update_manifest, ref, access.registry.login_server, reference,
                                           changes, properties.parse_quarantine(body), request_origin(request)))
        ref, access = await self._authorize(request, METADATA_READ)
        return _json(await self.ctx.read(properties.manifest_properties, ref, access.registry.login_server, reference))

    async def _write(self, fn: Any, *args: Any) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            with write_transaction(self.ctx.engine) as conn:
                return fn(conn, *args)

        return await self.ctx.run(run)


def _size(request: Request) -> int:
    n = page_size(request)
    if n is None:
        return DEFAULT_PAGE
    if n == 0:
        raise pagination_invalid("n must be at least 1")
    return min(n, listing.MAX_PAGE)


def _link(path: str, query: dict[str, Any]) -> str:
    return f'<{path}?{urlencode(query)}>; rel="next"'


def _json(body: dict[str, Any], status: int = 200, link: str | None = None) -> Response:
    headers = {"Link": link} if link else None
    return Response(json.dumps(body), status, headers, media_type=JSON)
