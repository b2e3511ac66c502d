"""HTTP handlers of the soft-delete recycle bin under `/acr/v1/`: parse, authorize, call `recycle_bin`, render.

`GET /acr/v1/_deleted/_repositories` (the catalog scope), `GET /acr/v1/{repo}/_deleted/_manifests`
(`metadata_read`), `POST /acr/v1/{repo}/_deleted/_manifests/{digest}/_restore[?force=true]` (`push`). They are
mounted before ACR's own routes, whose `{name:path}` would otherwise take `_deleted` for part of a name.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cargohold.auth.permissions import METADATA_READ, PUSH, Scope
from cargohold.auth.service import AuthService
from cargohold.events.origin import request_origin
from cargohold.kernel.context import RegistryContext
from cargohold.lifecycle import recycle_bin
from cargohold.oci.reference import validate_name
from cargohold.registry.http import JSON, digest_from
from cargohold.registry.repositories import RepositoryRef


class RecycleBinRoutes:
    def __init__(self, ctx: RegistryContext, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth

    def routes(self) -> list[Route]:
        return [
            Route("/acr/v1/_deleted/_repositories", self.repositories, methods=["GET"]),
            Route("/acr/v1/{name:path}/_deleted/_manifests/{digest}/_restore", self.restore, methods=["POST"]),
            Route("/acr/v1/{name:path}/_deleted/_manifests", self.manifests, methods=["GET"]),
        ]

    async def _authorize(self, request: Request, action: str) -> tuple[RepositoryRef, Any]:
        name = validate_name(request.path_params["name"])
        access = await self.auth.authorize(request, [Scope("repository", name, frozenset({action}))])
        return RepositoryRef(access.registry.id, name), access

    async def repositories(self, request: Request) -> Response:
        access = await self.auth.authorize(request, [Scope("registry", "catalog", frozenset({"*"}))])
        found = await self.ctx.run(self._read, recycle_bin.list_deleted_repositories, access.registry.id)
        return _json({"repositories": found})

    async def manifests(self, request: Request) -> Response:
        ref, _ = await self._authorize(request, METADATA_READ)
        found = await self.ctx.run(self._read, recycle_bin.list_deleted_manifests, ref.registry_id, ref.name)
        return _json({"imageName": ref.name, "manifests": found})

    async def restore(self, request: Request) -> Response:
        ref, access = await self._authorize(request, PUSH)
        digest = str(digest_from(request.path_params["digest"]))
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        restored = await self.ctx.run(recycle_bin.restore_manifest, self.ctx, ref, digest, force,
                                      request_origin(request))
        self.auth.record_access(access, "restore", ref.name, digest)
        return _json({"imageName": ref.name, "digest": restored.digest, "tags": restored.tags})

    def _read(self, fn: Any, *args: Any) -> Any:
        with self.ctx.engine.connect() as conn:
            return fn(conn, *args)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status, media_type=JSON)
