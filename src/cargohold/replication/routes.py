"""`GET /acr/v1/{repository}/_manifests/{reference}/_replication`: where an artifact is complete, per region of
its registry, and with `?wait=SECONDS` a long poll until it is complete everywhere (or in `?region=`)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cargohold.auth.permissions import METADATA_READ, Scope
from cargohold.auth.service import AuthService
from cargohold.kernel.context import RegistryContext
from cargohold.oci.errors import RegistryError
from cargohold.oci.reference import validate_name
from cargohold.registry.http import JSON
from cargohold.registry.manifests import find_manifest
from cargohold.registry.repositories import RepositoryRef
from cargohold.replication.status import image_regions

MAX_WAIT = 600.0
POLL = 0.05


class ReplicationRoutes:
    def __init__(self, ctx: RegistryContext, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth

    def routes(self) -> list[Route]:
        return [Route("/acr/v1/{name:path}/_manifests/{reference}/_replication", self.replication, methods=["GET"])]

    async def replication(self, request: Request) -> Response:
        name = validate_name(request.path_params["name"])
        access = await self.auth.authorize(request, [Scope("repository", name, frozenset({METADATA_READ}))])
        ref = RepositoryRef(access.registry.id, name)
        reference = request.path_params["reference"]
        wait = _seconds(request.query_params.get("wait"))
        only = (request.query_params.get("region") or "").strip().lower() or None
        deadline = time.monotonic() + wait
        while True:
            body = await self.ctx.read(_report, ref, reference, only)
            if body["complete"] or time.monotonic() >= deadline:
                return Response(json.dumps(body), 200, media_type=JSON)
            await asyncio.sleep(POLL)


def _report(conn: Any, ref: RepositoryRef, reference: str, only: str | None) -> dict[str, Any]:
    found = find_manifest(conn, ref, reference)
    found_regions = image_regions(conn, ref.registry_id, found.digest)
    if only is not None:
        found_regions = [r for r in found_regions if r["region"] == only]
        if not found_regions:
            raise RegistryError("NAME_UNKNOWN", f"the registry has no replica in region {only}", 404,
                                {"region": only[:64]})
    body: dict[str, Any] = {"imageName": ref.name, "digest": found.digest,
                            "complete": all(r["complete"] for r in found_regions), "regions": found_regions}
    if reference != found.digest:
        body["tag"] = reference
    return body


def _seconds(value: str | None) -> float:
    if value is None or value == "":
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        raise RegistryError("UNSUPPORTED", "wait is a number of seconds", 400, {"wait": value[:32]}) from None
    if not 0 <= seconds <= MAX_WAIT:
        raise RegistryError("UNSUPPORTED", f"wait is between 0 and {MAX_WAIT:.0f} seconds", 400,
                            {"wait": value[:32]})
    return seconds
