"""HTTP endpoints of the management API (ARM paths under /subscriptions/…). Handlers parse, authorize, call the
feature's functions inside one write transaction and render ARM JSON."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cargohold.auth import admin_user
from cargohold.auth.audit import AuditEvent
from cargohold.auth.principals import Principal
from cargohold.auth.registry_tokens import list_tokens
from cargohold.auth.roles import has_role
from cargohold.auth.scope_maps import list_scope_maps
from cargohold.auth.service import AuthService
from cargohold.db.engine import write_transaction
from cargohold.events import history
from cargohold.events.origin import request_origin
from cargohold.events.payload import PING, Target
from cargohold.events.record import record_event
from cargohold.events.tables import events
from cargohold.management import operations, replications, resources, schemas, token_resources, usage, webhooks
from cargohold.management.access import READ_ROLES, ManagementAccess
from cargohold.management.arm import PROVIDER, ArmError, check_api_version, invalid, page
from cargohold.management.deletion import delete_registry
from cargohold.management.import_jobs import enqueue_import
from cargohold.management.import_request import import_request
from cargohold.management.importing import ImportSource, refuse_outbound
from cargohold.kernel.context import RegistryContext
from cargohold.oci import jsonbody

log = logging.getLogger(__name__)

SUBSCRIPTION = "/subscriptions/{subscription}"
PROVIDER_PATH = f"{SUBSCRIPTION}/providers/{PROVIDER}"
GROUP_REGISTRIES = f"{SUBSCRIPTION}/resourceGroups/{{group}}/providers/{PROVIDER}/registries"
REGISTRY = f"{GROUP_REGISTRIES}/{{name}}"
MAX_BODY = 1024 * 1024
RESOURCE_ID = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.ContainerRegistry/"
                         r"registries/([^/]+)$", re.IGNORECASE)

Handler = Callable[[Request], Awaitable[Response]]
Work = Callable[[Connection], Any]


class ManagementRoutes:
    def __init__(self, ctx: RegistryContext, auth: AuthService, domain: str,
                 wake: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.wake = wake
        self.auth = auth
        self.access = ManagementAccess(auth)
        self.domain = domain

    def routes(self) -> list[Route]:
        children = []
        for kind, get, put, patch, delete, listing in (
                ("webhooks", self.get_webhook, self.put_webhook, self.patch_webhook, self.delete_webhook,
                 self.list_webhooks),
                ("replications", self.get_replication, self.put_replication, self.patch_replication,
                 self.delete_replication, self.list_replications),
                ("scopeMaps", self.get_scope_map, self.put_scope_map, self.patch_scope_map, self.delete_scope_map,
                 self.list_scope_maps),
                ("tokens", self.get_token, self.put_token, self.patch_token, self.delete_token, self.list_tokens)):
            children += [
                Route(f"{REGISTRY}/{kind}", _arm(listing), methods=["GET"]),
                Route(f"{REGISTRY}/{kind}/{{child}}", _arm(get), methods=["GET"]),
                Route(f"{REGISTRY}/{kind}/{{child}}", _arm(put), methods=["PUT"]),
                Route(f"{REGISTRY}/{kind}/{{child}}", _arm(patch), methods=["PATCH"]),
                Route(f"{REGISTRY}/{kind}/{{child}}", _arm(delete), methods=["DELETE"]),
            ]
        return [
            Route(f"{PROVIDER_PATH}/registries", _arm(self.list_subscription), methods=["GET"]),
            Route(f"{PROVIDER_PATH}/checkNameAvailability", _arm(self.check_name), methods=["POST"]),
            Route(f"{PROVIDER_PATH}/locations/{{location}}/operationStatuses/{{operation}}",
                  _arm(self.operation_status), methods=["GET"]),
            Route(f"{PROVIDER_PATH}/locations/{{location}}/operationResults/{{operation}}",
                  _arm(self.operation_result), methods=["GET"]),
            Route(GROUP_REGISTRIES, _arm(self.list_group), methods=["GET"]),
            Route(REGISTRY, _arm(self.get_registry), methods=["GET"]),
            Route(REGISTRY, _arm(self.put_registry), methods=["PUT"]),
            Route(REGISTRY, _arm(self.patch_registry), methods=["PATCH"]),
            Route(REGISTRY, _arm(self.delete_registry), methods=["DELETE"]),
            Route(f"{REGISTRY}/listCredentials", _arm(self.list_credentials), methods=["POST"]),
            Route(f"{REGISTRY}/regenerateCredential", _arm(self.regenerate_credential), methods=["POST"]),
            Route(f"{REGISTRY}/listUsages", _arm(self.list_usages), methods=["POST", "GET"]),
            Route(f"{REGISTRY}/importImage", _arm(self.import_image), methods=["POST"]),
            Route(f"{REGISTRY}/generateCredentials", _arm(self.generate_credentials), methods=["POST"]),
            Route(f"{REGISTRY}/webhooks/{{child}}/getCallbackConfig", _arm(self.callback_config), methods=["POST"]),
            Route(f"{REGISTRY}/webhooks/{{child}}/ping", _arm(self.ping_webhook), methods=["POST"]),
            Route(f"{REGISTRY}/webhooks/{{child}}/listEvents", _arm(self.list_webhook_events), methods=["POST", "GET"]),
            *children,
            Route(f"{SUBSCRIPTION}/{{rest:path}}", _arm(self.unknown),
                  methods=["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD"]),
        ]

    async def unknown(self, request: Request) -> Response:
        raise ArmError(404, "InvalidResourceType",
                       f"The resource type or action at '{request.url.path[:300]}' is not known to {PROVIDER}.")

    # plumbing ---------------------------------------------------------------------------------------------------

    async def _query(self, work: Work) -> Any:
        """Run `work` on a plain connection: reads take no write lock and send no change signal."""
        def run() -> Any:
            with self.ctx.engine.connect() as conn:
                return work(conn)
        return await self.ctx.run(run)

    async def _write(self, work: Work) -> Any:
        def run() -> Any:
            with write_transaction(self.ctx.engine) as conn:
                return work(conn)
        return await self.ctx.run(run)

    async def _registry(self, request: Request, action: str, *, write: bool) -> tuple[Principal, resources.Registry]:
        """The registry at the request's path, if the caller may `action` it. A caller who may not even read it
        learns nothing about whether it exists."""
        principal = await self.access.principal(request)
        params = request.path_params
        found = await self.ctx.run(self._find, params["subscription"], params["group"], params["name"])
        if found is None or not await self.access.may_read(principal, found.id):
            if found is None:
                await self.access.require(principal, None, action, write=False)
            else:
                await self.access.require(principal, found.id, action, write=write)
            raise ArmError(404, "ResourceNotFound", f"The Resource '{PROVIDER}/registries/{params['name']}' under "
                           f"resource group '{params['group']}' was not found.")
        if write:
            await self.access.require(principal, found.id, action, write=True)
        return principal, found

    def _find(self, subscription: str, group: str, name: str) -> resources.Registry | None:
        with self.ctx.engine.connect() as conn:
            try:
                return resources.registry_in(conn, subscription, group, name)
            except ArmError:
                return None

    def _audit(self, request: Request, principal: Principal, action: str, registry: str | None,
               detail: str | None = None) -> None:
        peer = request.client.host if request.client else None
        self.auth.audit.record(AuditEvent(action, "success", registry, principal.display, peer, None, None, detail))

    # registries -------------------------------------------------------------------------------------------------

    async def list_subscription(self, request: Request) -> Response:
        return await self._list_registries(request, None)

    async def list_group(self, request: Request) -> Response:
        return await self._list_registries(request, request.path_params["group"])

    async def _list_registries(self, request: Request, group: str | None) -> Response:
        principal = await self.access.principal(request)
        subscription = request.path_params["subscription"]

        def work(conn: Connection) -> list[dict[str, Any]]:
            return [resources.registry_json(conn, r) for r in resources.list_registries(conn, subscription, group)
                    if has_role(conn, principal, r.id, READ_ROLES)]
        return JSONResponse(page(await self._query(work)))

    async def check_name(self, request: Request) -> Response:
        principal = await self.access.principal(request)
        await self.access.require(principal, None, "checkNameAvailability", write=False)
        body = await _json(request, schemas.CHECK_NAME)
        if body.get("type") not in (None, f"{PROVIDER}/registries"):
            raise invalid(f"type must be {PROVIDER}/registries")
        name = body.get("name")
        return JSONResponse(await self._query(lambda conn: resources.name_status(conn, str(name or ""))))

    async def get_registry(self, request: Request) -> Response:
        _, registry = await self._registry(request, "registries/read", write=False)
        return JSONResponse(await self._query(lambda conn: resources.registry_json(conn, registry)))

    async def put_registry(self, request: Request) -> Response:
        principal = await self.access.principal(request)
        params = request.path_params
        body = await _json(request, schemas.REGISTRY)
        existing = await self.ctx.run(self._find_any, params["name"])
        if existing is not None:
            if existing.subscription != params["subscription"] or \
                    existing.resource_group.lower() != params["group"].lower():
                await self.access.require(principal, None, "registries/write", write=True)
                raise ArmError(409, "AlreadyInUse", f"The registry {params['name']} is already in use.")
            await self.access.require(principal, existing.id, "registries/write", write=True)
            sealer = self.auth.sealer
            rendered = await self._write(lambda conn: resources.registry_json(
                conn, resources.update_registry(conn, sealer, existing, body)))
            self._audit(request, principal, "arm:registry:update", existing.name)
            return JSONResponse(rendered)
        await self.access.require(principal, None, "registries/write", write=True)

        def create(conn: Connection) -> dict[str, Any]:
            created = resources.create_registry(conn, self.auth.sealer, params["subscription"], params["group"],
                                                params["name"], body, self.domain)
            return resources.registry_json(conn, created)
        rendered = await self._write(create)
        self._audit(request, principal, "arm:registry:create", rendered["name"])
        return JSONResponse(rendered, status_code=201)

    def _find_any(self, name: str) -> resources.Registry | None:
        with self.ctx.engine.connect() as conn:
            return resources.get_registry(conn, name)

    async def patch_registry(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "registries/write", write=True)
        body = await _json(request, schemas.REGISTRY_UPDATE)
        rendered = await self._write(lambda conn: resources.registry_json(
            conn, resources.update_registry(conn, self.auth.sealer, _current(conn, registry), body)))
        self._audit(request, principal, "arm:registry:update", registry.name)
        return JSONResponse(rendered)

    async def delete_registry(self, request: Request) -> Response:
        principal = await self.access.principal(request)
        params = request.path_params
        found = await self.ctx.run(self._find, params["subscription"], params["group"], params["name"])
        if found is None:
            await self.access.require(principal, None, "registries/delete", write=True)
            return Response(status_code=204)
        await self.access.require(principal, found.id, "registries/delete", write=True)
        deleted = await self._write(lambda conn: delete_registry(conn, self.ctx.store, found.id))
        for upload_id in deleted.upload_ids:
            await self.ctx.run(self.ctx.store.discard_upload, upload_id)
        self._audit(request, principal, "arm:registry:delete", found.name,
                    f"{deleted.repositories} repositories, {deleted.blobs_removed} blobs, {deleted.bytes_freed} bytes")
        return Response(status_code=200)

    async def list_credentials(self, request: Request) -> Response:
        _, registry = await self._registry(request, "registries/listCredentials/action", write=True)
        return JSONResponse(await self._query(lambda conn: self._credentials(conn, registry)))

    def _credentials(self, conn: Connection, registry: resources.Registry) -> dict[str, Any]:
        current = _current(conn, registry)
        if not current.admin_user_enabled:
            raise ArmError(400, "AdminUserDisabled", f"The admin user is disabled for the registry {registry.name}; "
                           "enable it with adminUserEnabled: true.")
        return {"username": current.name, "passwords": [
            {"name": slot, "value": value} for slot, value in admin_user.show_passwords(conn, self.auth.sealer,
                                                                                         current.id)]}

    async def regenerate_credential(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "registries/regenerateCredential/action", write=True)
        body = await _json(request, schemas.REGENERATE_CREDENTIAL)
        slot = body.get("name")
        if slot not in admin_user.SLOTS:
            raise invalid("name must be password or password2")

        def work(conn: Connection) -> dict[str, Any]:
            self._credentials(conn, registry)
            admin_user.regenerate_password(conn, self.auth.sealer, registry.id, str(slot))
            return self._credentials(conn, registry)
        rendered = await self._write(work)
        self._audit(request, principal, "arm:registry:regenerateCredential", registry.name, str(slot))
        return JSONResponse(rendered)

    async def list_usages(self, request: Request) -> Response:
        _, registry = await self._registry(request, "registries/listUsages/read", write=False)
        return JSONResponse(page(await self._query(lambda conn: usage.usages(conn, registry))))

    async def generate_credentials(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "registries/generateCredentials/action", write=True)
        body = await _json(request, schemas.GENERATE_CREDENTIALS)
        rendered = await self._write(lambda conn: token_resources.generate_credentials(conn, registry, body))
        self._audit(request, principal, "arm:token:generateCredentials", registry.name, rendered["username"])
        return JSONResponse(rendered)

    # import -----------------------------------------------------------------------------------------------------

    async def import_image(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "registries/importImage/action", write=True)
        wanted, source_id = import_request(await _json(request, schemas.IMPORT_IMAGE))
        if source_id is not None:
            match = RESOURCE_ID.match(source_id)
            if match is None:
                raise invalid("source.resourceId must be a registry's resource id, or give source.registryUri")
            source = await self.ctx.run(self._find, *match.groups())
            if source is None or not await self.access.may_read(principal, source.id):
                raise ArmError(404, "ImportSourceNotFound", f"The source registry {match.group(3)} was not found.")
            wanted = replace(wanted, source=ImportSource(wanted.source.source_image, local_registry_id=source.id))
        refuse_outbound(self.ctx.egress, wanted.source)

        def start(conn: Connection) -> str:
            operation_id = operations.start_operation(conn, "importImage", registry.resource_id, registry.location)
            enqueue_import(conn, self.auth.sealer, operation_id, registry.id, wanted)
            return operation_id
        operation_id = await self._write(start)
        if self.wake is not None:
            self.wake()
        self._audit(request, principal, "arm:registry:importImage", registry.name, wanted.source.source_image)
        base = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        paths = operations.OperationPaths(request.path_params["subscription"], registry.location, operation_id)
        query = f"?api-version={request.query_params['api-version']}"
        return Response(status_code=202, headers={"Azure-AsyncOperation": f"{base}{paths.status}{query}",
                                                  "Location": f"{base}{paths.result}{query}"})

    async def operation_status(self, request: Request) -> Response:
        found = await self._operation(request)
        return JSONResponse(operations.operation_json(found))

    async def operation_result(self, request: Request) -> Response:
        found = await self._operation(request)
        if found.status == operations.IN_PROGRESS:
            return Response(status_code=202, headers={"Location": str(request.url)})
        if found.status == operations.FAILED:
            raise ArmError(400, found.error_code or "OperationFailed", found.error_message or "The operation failed.")
        return Response(status_code=200)

    async def _operation(self, request: Request) -> operations.Operation:
        await self.access.principal(request)
        params = request.path_params
        found = await self.ctx.read(operations.get_operation, params["subscription"], params["operation"])
        if found is None:
            raise ArmError(404, "OperationNotFound", f"The operation {params['operation'][:40]} was not found.")
        return found

    # webhooks ---------------------------------------------------------------------------------------------------

    async def list_webhooks(self, request: Request) -> Response:
        _, registry = await self._registry(request, "webhooks/read", write=False)
        return JSONResponse(page(await self._query(lambda conn: [
            webhooks.webhook_json(registry, h) for h in webhooks.list_webhooks(conn, registry)])))

    async def get_webhook(self, request: Request) -> Response:
        _, registry = await self._registry(request, "webhooks/read", write=False)
        child = request.path_params["child"]
        return JSONResponse(await self._query(lambda conn: webhooks.webhook_json(
            registry, webhooks.get_webhook(conn, registry, child))))

    async def put_webhook(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "webhooks/write", write=True)
        body = await _json(request, schemas.WEBHOOK)
        child = request.path_params["child"]
        hook, created = await self._write(lambda conn: webhooks.put_webhook(
            conn, self.auth.sealer, _current(conn, registry), child, body, egress=self.ctx.egress))
        self._audit(request, principal, "arm:webhook:write", registry.name, hook.name)
        return JSONResponse(webhooks.webhook_json(registry, hook), status_code=201 if created else 200)

    async def patch_webhook(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "webhooks/write", write=True)
        body = await _json(request, schemas.WEBHOOK_UPDATE)
        child = request.path_params["child"]
        hook = await self._write(lambda conn: webhooks.update_webhook(conn, self.auth.sealer, registry, child, body,
                                                                      egress=self.ctx.egress))
        self._audit(request, principal, "arm:webhook:write", registry.name, hook.name)
        return JSONResponse(webhooks.webhook_json(registry, hook))

    async def delete_webhook(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "webhooks/delete", write=True)
        child = request.path_params["child"]
        removed = await self._write(lambda conn: webhooks.delete_webhook(conn, registry, child))
        self._audit(request, principal, "arm:webhook:delete", registry.name, child)
        return Response(status_code=200 if removed else 204)

    async def callback_config(self, request: Request) -> Response:
        _, registry = await self._registry(request, "webhooks/getCallbackConfig/action", write=True)
        child = request.path_params["child"]
        callback = await self._query(lambda conn: webhooks.callback_config(conn, self.auth.sealer, registry, child))
        return JSONResponse({"serviceUri": callback.service_uri, "customHeaders": callback.custom_headers})

    async def ping_webhook(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "webhooks/ping/action", write=True)
        child = request.path_params["child"]
        origin = request_origin(request)

        def work(conn: Connection) -> str:
            hook = webhooks.get_webhook(conn, registry, child)
            event_id = record_event(conn, registry.id, PING, Target(), origin, only_webhook=hook.id)
            return str(conn.execute(select(events.c.uuid).where(events.c.id == event_id)).scalar_one())
        event_uuid = await self._write(work)
        if self.wake is not None:
            self.wake()
        self._audit(request, principal, "arm:webhook:ping", registry.name, child)
        return JSONResponse({"id": event_uuid})

    async def list_webhook_events(self, request: Request) -> Response:
        _, registry = await self._registry(request, "webhooks/listEvents/action", write=True)
        child = request.path_params["child"]
        skip = request.query_params.get("$skipToken")
        before = int(skip) if skip and skip.isdigit() else None

        def work(conn: Connection) -> tuple[list[dict[str, Any]], int | None]:
            hook = webhooks.get_webhook(conn, registry, child)
            return history.list_attempts(conn, hook.id, before)
        values, more = await self._query(work)
        next_link = None
        if more is not None:
            next_link = str(request.url.include_query_params(**{"$skipToken": str(more)}))
        return JSONResponse(page(values, next_link))


    # replications -----------------------------------------------------------------------------------------------

    async def list_replications(self, request: Request) -> Response:
        _, registry = await self._registry(request, "replications/read", write=False)
        return JSONResponse(page(await self._query(lambda conn: [
            replications.replication_json(registry, r) for r in replications.list_replications(conn, registry)])))

    async def get_replication(self, request: Request) -> Response:
        _, registry = await self._registry(request, "replications/read", write=False)
        child = request.path_params["child"]
        return JSONResponse(await self._query(lambda conn: replications.replication_json(
            registry, replications.get_replication(conn, registry, child))))

    async def put_replication(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "replications/write", write=True)
        body = await _json(request, schemas.REPLICATION)
        child = request.path_params["child"]
        replica, created = await self._write(lambda conn: replications.put_replication(
            conn, _current(conn, registry), child, body))
        self._audit(request, principal, "arm:replication:write", registry.name, replica.name)
        return JSONResponse(replications.replication_json(registry, replica), status_code=201 if created else 200)

    async def patch_replication(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "replications/write", write=True)
        body = await _json(request, schemas.REPLICATION_UPDATE)
        child = request.path_params["child"]
        replica = await self._write(lambda conn: replications.update_replication(conn, registry, child, body))
        self._audit(request, principal, "arm:replication:write", registry.name, replica.name)
        return JSONResponse(replications.replication_json(registry, replica))

    async def delete_replication(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "replications/delete", write=True)
        child = request.path_params["child"]
        removed = await self._write(lambda conn: replications.delete_replication(conn, registry, child))
        self._audit(request, principal, "arm:replication:delete", registry.name, child)
        return Response(status_code=200 if removed else 204)

    # scope maps and tokens --------------------------------------------------------------------------------------

    async def list_scope_maps(self, request: Request) -> Response:
        _, registry = await self._registry(request, "scopeMaps/read", write=False)

        def work(conn: Connection) -> list[dict[str, Any]]:
            return [token_resources.scope_map_json(registry, m, token_resources.scope_map_created(conn, m))
                    for m in list_scope_maps(conn, registry.id)]
        return JSONResponse(page(await self._query(work)))

    async def get_scope_map(self, request: Request) -> Response:
        _, registry = await self._registry(request, "scopeMaps/read", write=False)
        child = request.path_params["child"]

        def work(conn: Connection) -> dict[str, Any]:
            mapping = token_resources.get_scope_map(conn, registry, child)
            return token_resources.scope_map_json(registry, mapping, token_resources.scope_map_created(conn, mapping))
        return JSONResponse(await self._query(work))

    async def put_scope_map(self, request: Request) -> Response:
        return await self._change_scope_map(request, put=True)

    async def patch_scope_map(self, request: Request) -> Response:
        return await self._change_scope_map(request, put=False)

    async def _change_scope_map(self, request: Request, *, put: bool) -> Response:
        principal, registry = await self._registry(request, "scopeMaps/write", write=True)
        body = await _json(request, schemas.SCOPE_MAP if put else schemas.SCOPE_MAP_UPDATE)
        child = request.path_params["child"]

        def work(conn: Connection) -> tuple[dict[str, Any], bool]:
            current = _current(conn, registry)
            if put:
                mapping, created = token_resources.put_scope_map(conn, current, child, body)
            else:
                mapping, created = token_resources.update_scope_map(conn, current, child, body), False
            return token_resources.scope_map_json(registry, mapping,
                                                  token_resources.scope_map_created(conn, mapping)), created
        rendered, created = await self._write(work)
        self._audit(request, principal, "arm:scopeMap:write", registry.name, child)
        return JSONResponse(rendered, status_code=201 if created else 200)

    async def delete_scope_map(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "scopeMaps/delete", write=True)
        child = request.path_params["child"]
        removed = await self._write(lambda conn: token_resources.delete_scope_map(conn, registry, child))
        self._audit(request, principal, "arm:scopeMap:delete", registry.name, child)
        return Response(status_code=200 if removed else 204)

    async def list_tokens(self, request: Request) -> Response:
        _, registry = await self._registry(request, "tokens/read", write=False)

        def work(conn: Connection) -> list[dict[str, Any]]:
            return [token_resources.token_json(registry, t) for t in list_tokens(conn, registry.id)]
        return JSONResponse(page(await self._query(work)))

    async def get_token(self, request: Request) -> Response:
        _, registry = await self._registry(request, "tokens/read", write=False)
        child = request.path_params["child"]
        return JSONResponse(await self._query(lambda conn: token_resources.token_json(
            registry, token_resources.get_token(conn, registry, child))))

    async def put_token(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "tokens/write", write=True)
        body = await _json(request, schemas.TOKEN)
        child = request.path_params["child"]
        token, created = await self._write(lambda conn: token_resources.put_token(
            conn, _current(conn, registry), child, body))
        self._audit(request, principal, "arm:token:write", registry.name, child)
        return JSONResponse(token_resources.token_json(registry, token), status_code=201 if created else 200)

    async def patch_token(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "tokens/write", write=True)
        body = await _json(request, schemas.TOKEN_UPDATE)
        child = request.path_params["child"]
        token = await self._write(lambda conn: token_resources.update_token(conn, registry, child, body))
        self._audit(request, principal, "arm:token:write", registry.name, child)
        return JSONResponse(token_resources.token_json(registry, token))

    async def delete_token(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "tokens/delete", write=True)
        child = request.path_params["child"]
        removed = await self._write(lambda conn: token_resources.delete_token(conn, registry, child))
        self._audit(request, principal, "arm:token:delete", registry.name, child)
        return Response(status_code=200 if removed else 204)


def _current(conn: Connection, registry: resources.Registry) -> resources.Registry:
    """The registry as it is inside this transaction (another request may have changed it since it was read)."""
    found = resources.get_registry(conn, registry.name)
    if found is None or found.id != registry.id:
        raise ArmError(404, "ResourceNotFound", f"The registry {registry.name} was not found.")
    return found


async def _json(request: Request, schema: schemas.Schema) -> dict[str, Any]:
    """The request's JSON object, checked against `schema`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ArmError(413, "RequestEntityTooLarge", "The request body is too large.")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ArmError(413, "RequestEntityTooLarge", "The request body is too large.")
    if not raw.strip():
        return schemas.check({}, schema)
    try:
        body = jsonbody.loads(raw)
    except jsonbody.UnacceptableJSON as exc:
        raise ArmError(400, "InvalidRequestContent", f"The request content is not accepted: {exc}.") from None
    except ValueError:
        raise ArmError(400, "InvalidRequestContent", "The request content is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return schemas.check(body, schema)


def _arm(handler: Handler) -> Handler:
    """ARM's conventions around a handler: a known `api-version` is required, and every failure is an ARM
    error."""
    async def wrapped(request: Request) -> Response:
        try:
            check_api_version(request.query_params.get("api-version"))
            for key, value in request.path_params.items():
                if key != "rest" and not value.isprintable():
                    raise ArmError(400, "InvalidResourceName",
                                   f"The {key} in the path holds characters no resource name may hold.")
            return await handler(request)
        except ArmError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        except Exception:
            log.exception("management request %s %s failed", request.method, request.url.path)
            return JSONResponse({"error": {"code": "InternalServerError",
                                           "message": "The server failed to process the request."}},
                                status_code=500)
    return wrapped
