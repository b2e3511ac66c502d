"""HTTP endpoints of ACR Tasks: the ARM routes (scheduleRun, runs, tasks, taskRuns, agentPools,
listBuildSourceUploadUrl) and the two signed, non-ARM URLs they hand out (source upload and run log).

Handlers parse, authorize (through the management plane's access checks), call `service`, `runs` or
`resources`, and render ARM JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cargohold.auth import jwt_tokens
from cargohold.auth.principals import Principal
from cargohold.auth.service import AuthService
from cargohold.db.engine import write_transaction
from cargohold.kernel.context import RegistryContext
from cargohold.kernel.tenancy import RegistryRecord, find_registry
from cargohold.management.arm import ArmError, invalid, page
from cargohold.management.resources import Registry
from cargohold.management.routes import REGISTRY, ManagementRoutes, _arm, _json
from cargohold.oci.digest import Digest
from cargohold.tasks import logs, requests, resources, runs, schemas, service, source
from cargohold.tasks.requests import RunSpec

SOURCE_TYPE = "buildsource"
SOURCE_TTL = 60 * 60
UPLOAD_BATCH = 8 * 1024 * 1024
MAX_TOP = 1000


def child_routes(kind: str, *, listing: Callable[..., Any] | None = None, get: Callable[..., Any] | None = None,
                 put: Callable[..., Any] | None = None, patch: Callable[..., Any] | None = None,
                 delete: Callable[..., Any] | None = None) -> list[Route]:
    """The routes of one kind of registry child resource (`…/registries/{name}/{kind}/{child}`)."""
    found = [Route(f"{REGISTRY}/{kind}", _arm(listing), methods=["GET"])] if listing else []
    for method, handler in (("GET", get), ("PUT", put), ("PATCH", patch), ("DELETE", delete)):
        if handler is not None:
            found.append(Route(f"{REGISTRY}/{kind}/{{child}}", _arm(handler), methods=[method]))
    return found


class TaskRoutes:
    def __init__(self, ctx: RegistryContext, auth: AuthService, management: ManagementRoutes,
                 wake: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.auth = auth
        self.management = management
        self.wake = wake

    def routes(self) -> list[Route]:
        return [
            Route(f"{REGISTRY}/listBuildSourceUploadUrl", _arm(self.upload_url), methods=["POST"]),
            Route(f"{REGISTRY}/scheduleRun", _arm(self.schedule_run), methods=["POST"]),
            Route(f"{REGISTRY}/runs/{{child}}/cancel", _arm(self.cancel_run), methods=["POST"]),
            Route(f"{REGISTRY}/runs/{{child}}/listLogSasUrl", _arm(self.log_url), methods=["POST"]),
            Route(f"{REGISTRY}/tasks/{{child}}/listDetails", _arm(self.task_details), methods=["POST"]),
            Route(f"{REGISTRY}/taskRuns/{{child}}/listDetails", _arm(self.task_run_details), methods=["POST"]),
            Route(f"{REGISTRY}/agentPools/{{child}}/listQueueStatus", _arm(self.queue_status), methods=["POST"]),
            *child_routes("runs", listing=self.list_runs, get=self.get_run, patch=self.patch_run),
            *child_routes("tasks", listing=self.list_tasks, get=self.get_task, put=self.put_task,
                          patch=self.patch_task, delete=self.delete_task),
            *child_routes("taskRuns", listing=self.list_task_runs, get=self.get_task_run, put=self.put_task_run,
                          patch=self.patch_task_run, delete=self.delete_task_run),
            *child_routes("agentPools", listing=self.list_pools, get=self.get_pool, put=self.put_pool,
                          patch=self.patch_pool, delete=self.delete_pool),
            Route("/tasks/v1/{registry}/sources/{source}", self.receive_source, methods=["PUT"]),
            Route("/tasks/v1/{registry}/logs/{run}", self.serve_log, methods=["GET", "HEAD"]),
        ]

    # plumbing -----------------------------------------------------------------------------------------------------

    async def _registry(self, request: Request, action: str, *, write: bool) -> tuple[Principal, Registry]:
        return await self.management._registry(request, action, write=write)

    async def _query(self, work: Callable[[Connection], Any]) -> Any:
        return await self.management._query(work)

    async def _write(self, work: Callable[[Connection], Any]) -> Any:
        return await self.management._write(work)

    @staticmethod
    def _base(request: Request) -> str:
        return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"

    async def _signed(self, registry: Registry, token_type: str, subject: str, ttl: int) -> str:
        keyset = await self.auth.keyset(registry.id)
        return jwt_tokens.issue(keyset, issuer=registry.login_server, audience=registry.login_server,
                                subject=subject, token_type=token_type, ttl=ttl)

    async def _check_signed(self, request: Request, token_type: str) -> tuple[RegistryRecord, str]:
        """The registry and the subject of a signed link; anything else answers 403 as a storage SAS does."""
        record = await self.ctx.read(find_registry, request.path_params["registry"])
        token = request.query_params.get("sig", "")
        if record is None or not token:
            raise ArmError(403, "AuthenticationFailed", "The signature is missing or the link is not valid.")
        try:
            claims = await self.auth.verify(record.id, token, audience=record.login_server, token_type=token_type)
        except jwt_tokens.InvalidToken:
            raise ArmError(403, "AuthenticationFailed", "The signature is not valid or has expired.") from None
        return record, str(claims["sub"])

    def _wake(self) -> None:
        if self.wake is not None:
            self.wake()

    # sources ------------------------------------------------------------------------------------------------------

    async def upload_url(self, request: Request) -> Response:
        _, registry = await self._registry(request, "registries/listBuildSourceUploadUrl/action", write=True)
        created = await self._write(lambda conn: source.new_source(conn, registry.id))
        token = await self._signed(registry, SOURCE_TYPE, created.id, SOURCE_TTL)
        url = f"{self._base(request)}/tasks/v1/{registry.name}/sources/{created.id}?sig={token}"
        return JSONResponse({"uploadUrl": url, "relativePath": created.relative_path})

    async def receive_source(self, request: Request) -> Response:
        try:
            record, subject = await self._check_signed(request, SOURCE_TYPE)
            source_id = request.path_params["source"]
            if subject != source_id or not source.SOURCE_ID.match(source_id):
                raise ArmError(403, "AuthenticationFailed", "The signature does not match this upload.")
            limit = source.max_context_bytes()
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise ArmError(413, "RequestBodyTooLarge", f"The build context is larger than the limit of {limit} "
                               "bytes (CARGOHOLD_TASKS_MAX_CONTEXT_BYTES).")
            found = await self._query(lambda conn: source.get_source(conn, record.id, source_id=source_id))
            if found is None or found.digest is not None:
                raise ArmError(409, "BlobAlreadyExists", "This upload URL was used already; ask for a new one.")
            digest, size = await self._store_upload(request, limit)
            await self._write(lambda conn: source.uploaded(conn, source_id, digest, size))
            return Response(status_code=201, headers={"ETag": f'"{digest.hex[:32]}"'})
        except ArmError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    async def _store_upload(self, request: Request, limit: int) -> tuple[Digest, int]:
        store = self.ctx.store
        upload_id = uuid.uuid4().hex
        hasher = Digest("sha256", "0" * 64).hasher()
        await self.ctx.run(store.start_upload, upload_id)
        writer = await self.ctx.run(store.open_upload, upload_id, 0)
        size, batch, batched = 0, [], 0
        try:
            async for piece in request.stream():
                size += len(piece)
                if size > limit:
                    raise ArmError(413, "RequestBodyTooLarge", f"The build context is larger than the limit of "
                                   f"{limit} bytes (CARGOHOLD_TASKS_MAX_CONTEXT_BYTES).")
                hasher.update(piece)
                batch.append(piece)
                batched += len(piece)
                if batched >= UPLOAD_BATCH:
                    await self.ctx.run(writer.write, batch)
                    batch, batched = [], 0
            await self.ctx.run(writer.write, batch)
            await self.ctx.run(writer.finish)
        except BaseException:
            await self.ctx.run(writer.close)
            await self.ctx.run(store.discard_upload, upload_id)
            raise
        await self.ctx.run(writer.close)
        digest = Digest("sha256", hasher.hexdigest())
        await self.ctx.run(store.commit, upload_id, digest)
        return digest, size

    # runs ---------------------------------------------------------------------------------------------------------

    async def schedule_run(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "registries/scheduleRun/action", write=True)
        body = await _json(request, schemas.RUN_REQUEST)
        task_name = None
        if body.get("type") == "TaskRunRequest":
            spec, task_name = await self._task_spec(registry, body)
        else:
            spec = requests.parse_run_request(body)
        run = await self._schedule(request, registry, principal, spec, task_name)
        return JSONResponse(runs.run_json(registry.resource_id, run))

    async def _schedule(self, request: Request, registry: Registry, principal: Principal, spec: RunSpec,
                        task_name: str | None) -> runs.Run:
        await self._query(lambda conn: resources.check_pool(conn, registry.id, spec.agent_pool))
        target = service.Target(registry.id, registry.name, registry.login_server)
        run = await self.ctx.run(service.schedule, self.ctx, self.auth.sealer, target, principal, spec,
                                 self._base(request), task_name=task_name)
        self._wake()
        self.management._audit(request, principal, "arm:run:schedule", registry.name, run.run_id)
        return run

    async def _task_spec(self, registry: Registry, body: dict[str, Any]) -> tuple[RunSpec, str]:
        task_id = body.get("taskId")
        if not isinstance(task_id, str) or not task_id:
            raise invalid("taskId is required: the task's resource id or name")
        name = task_id.rstrip("/").rsplit("/", 1)[-1]
        overrides = body.get("overrideTaskStepProperties") or {}
        if not isinstance(overrides, dict):
            raise invalid("overrideTaskStepProperties must be an object")

        def work(conn: Connection) -> tuple[resources.Task, dict[str, Any] | None]:
            task = resources.get_task(conn, registry, name)
            return task, resources.task_credentials(conn, self.auth.sealer, registry, name)
        task, credentials = await self._query(work)
        if task.properties.get("status") == "Disabled":
            raise ArmError(400, "TaskDisabled", f"The task {name} is disabled; enable it to run it.")
        run_request = resources.step_request(task.properties, credentials, overrides)
        for key in ("agentPoolName", "isArchiveEnabled"):
            if body.get(key) is not None:
                run_request[key] = body[key]
        spec = requests.parse_run_request(run_request)
        return spec, task.name

    async def list_runs(self, request: Request) -> Response:
        _, registry = await self._registry(request, "runs/read", write=False)
        where = runs.parse_filter(request.query_params.get("$filter"))
        top_text = request.query_params.get("$top") or "100"
        if not top_text.isdigit() or not 1 <= int(top_text) <= MAX_TOP:
            raise invalid(f"$top must be 1 to {MAX_TOP}")
        found = await self._query(lambda conn: runs.list_runs(conn, registry.id, where, int(top_text)))
        return JSONResponse(page([runs.run_json(registry.resource_id, r) for r in found]))

    async def get_run(self, request: Request) -> Response:
        _, registry = await self._registry(request, "runs/read", write=False)
        child = request.path_params["child"]
        run = await self._query(lambda conn: runs.get_run(conn, registry.id, child))
        return JSONResponse(runs.run_json(registry.resource_id, run))

    async def patch_run(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "runs/write", write=True)
        body = await _json(request, schemas.RUN_UPDATE)
        enabled = body.get("isArchiveEnabled")
        if not isinstance(enabled, bool):
            raise invalid("isArchiveEnabled must be true or false")
        child = request.path_params["child"]

        def work(conn: Connection) -> runs.Run:
            runs.set_archive(conn, runs.get_run(conn, registry.id, child), enabled)
            return runs.get_run(conn, registry.id, child)
        run = await self._write(work)
        self.management._audit(request, principal, "arm:run:update", registry.name, child)
        return JSONResponse(runs.run_json(registry.resource_id, run))

    async def cancel_run(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "runs/cancel/action", write=True)
        child = request.path_params["child"]
        await self._write(lambda conn: runs.request_cancel(conn, runs.get_run(conn, registry.id, child)))
        self.management._audit(request, principal, "arm:run:cancel", registry.name, child)
        return Response(status_code=200)

    async def log_url(self, request: Request) -> Response:
        _, registry = await self._registry(request, "runs/listLogSasUrl/action", write=True)
        child = request.path_params["child"]
        run = await self._query(lambda conn: runs.get_run(conn, registry.id, child))
        token = await self._signed(registry, logs.LOG_LINK_TYPE, run.run_id, logs.LOG_LINK_TTL)
        link = f"{self._base(request)}/tasks/v1/{registry.name}/logs/{run.run_id}?sig={token}"
        return JSONResponse({"logLink": link, "logArtifactLink": link if run.is_archive_enabled else None})

    async def serve_log(self, request: Request) -> Response:
        try:
            record, subject = await self._check_signed(request, logs.LOG_LINK_TYPE)
            if subject != request.path_params["run"]:
                raise ArmError(403, "AuthenticationFailed", "The signature does not match this log.")
            start = logs.parse_range(request.headers.get("range"))
            run = await self._query(lambda conn: runs.get_run(conn, record.id, subject))
            if run.finished and run.log_digest:
                data = await self.ctx.run(logs.read_archived, self.ctx.store, run.log_digest, min(start, run.log_size))
                total = run.log_size
            else:
                data = await self._query(lambda conn: logs.read_live(conn, run.pk, start))
                total = start + len(data)
                run = await self._query(lambda conn: runs.get_run(conn, record.id, subject))
            headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store",
                       "x-ms-meta-Complete": "true" if run.finished else "false",
                       "X-Run-Status": run.status, "X-Log-Size": str(total)}
            return Response(b"" if request.method == "HEAD" else data, status_code=200, headers=headers)
        except ArmError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    # tasks --------------------------------------------------------------------------------------------------------

    async def list_tasks(self, request: Request) -> Response:
        _, registry = await self._registry(request, "tasks/read", write=False)
        return JSONResponse(page(await self._query(lambda conn: [
            resources.task_json(registry, t, resources.task_credentials(conn, self.auth.sealer, registry, t.name))
            for t in resources.list_tasks(conn, registry)])))

    async def get_task(self, request: Request) -> Response:
        return await self._show_task(request, "tasks/read", write=False)

    async def task_details(self, request: Request) -> Response:
        return await self._show_task(request, "tasks/listDetails/action", write=True)

    async def _show_task(self, request: Request, action: str, *, write: bool) -> Response:
        _, registry = await self._registry(request, action, write=write)
        child = request.path_params["child"]
        return JSONResponse(await self._query(lambda conn: resources.task_json(
            registry, resources.get_task(conn, registry, child),
            resources.task_credentials(conn, self.auth.sealer, registry, child))))

    async def put_task(self, request: Request) -> Response:
        return await self._change_task(request, patch=False)

    async def patch_task(self, request: Request) -> Response:
        return await self._change_task(request, patch=True)

    async def _change_task(self, request: Request, *, patch: bool) -> Response:
        principal, registry = await self._registry(request, "tasks/write", write=True)
        body = await _json(request, schemas.TASK)
        child = request.path_params["child"]

        def work(conn: Connection) -> tuple[dict[str, Any], bool]:
            task, created = resources.put_task(conn, self.auth.sealer, registry, child, body, patch=patch)
            resources.check_pool(conn, registry.id, task.properties.get("agentPoolName"))
            return resources.task_json(registry, task, resources.task_credentials(
                conn, self.auth.sealer, registry, child)), created
        rendered, created = await self._write(work)
        self.management._audit(request, principal, "arm:task:write", registry.name, child)
        return JSONResponse(rendered, status_code=201 if created else 200)

    async def delete_task(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "tasks/delete", write=True)
        child = request.path_params["child"]
        removed = await self._write(lambda conn: resources.delete_task(conn, registry, child))
        self.management._audit(request, principal, "arm:task:delete", registry.name, child)
        return Response(status_code=200 if removed else 204)

    # taskRuns -----------------------------------------------------------------------------------------------------

    async def list_task_runs(self, request: Request) -> Response:
        _, registry = await self._registry(request, "taskRuns/read", write=False)
        sealer = self.auth.sealer

        def work(conn: Connection) -> list[dict[str, Any]]:
            return [resources.task_run_json(registry, r, runs.get_run_by_pk(conn, r.run_pk) if r.run_pk else None)
                    for r in resources.list_task_runs(conn, sealer, registry)]
        return JSONResponse(page(await self._query(work)))

    async def get_task_run(self, request: Request) -> Response:
        return await self._show_task_run(request, "taskRuns/read", write=False)

    async def task_run_details(self, request: Request) -> Response:
        return await self._show_task_run(request, "taskRuns/listDetails/action", write=True)

    async def _show_task_run(self, request: Request, action: str, *, write: bool) -> Response:
        _, registry = await self._registry(request, action, write=write)
        child = request.path_params["child"]

        def work(conn: Connection) -> dict[str, Any]:
            found = resources.get_task_run(conn, self.auth.sealer, registry, child)
            return resources.task_run_json(registry, found, runs.get_run_by_pk(conn, found.run_pk)
                                           if found.run_pk else None)
        return JSONResponse(await self._query(work))

    async def put_task_run(self, request: Request) -> Response:
        return await self._change_task_run(request, patch=False)

    async def patch_task_run(self, request: Request) -> Response:
        return await self._change_task_run(request, patch=True)

    async def _change_task_run(self, request: Request, *, patch: bool) -> Response:
        """Creating a taskRun, or changing its request or forceUpdateTag, starts a run."""
        principal, registry = await self._registry(request, "taskRuns/write", write=True)
        body = await _json(request, schemas.TASK_RUN)
        child = request.path_params["child"]
        if not resources.TASK_NAME.match(child):
            raise invalid("taskRun names are 5-50 letters, digits, '-' or '_'")
        sealer = self.auth.sealer

        def existing_of(conn: Connection) -> resources.TaskRunResource | None:
            try:
                return resources.get_task_run(conn, sealer, registry, child)
            except ArmError:
                return None
        existing = await self._query(existing_of)
        if patch and existing is None:
            raise ArmError(404, "ResourceNotFound", f"The taskRun '{child}' could not be found.")
        properties = body.get("properties") or {}
        if not isinstance(properties, dict):
            raise invalid("properties must be an object")
        run_request = properties.get("runRequest")
        if run_request is None and existing is not None:
            run_request = existing.request
        if not isinstance(run_request, dict):
            raise invalid("properties.runRequest is required")
        changed = existing is None or run_request != existing.request or \
            properties.get("forceUpdateTag") != existing.force_update_tag
        run_pk = None
        if changed:
            if run_request.get("type") == "TaskRunRequest":
                spec, task_name = await self._task_spec(registry, run_request)
            else:
                spec, task_name = requests.parse_run_request(run_request), None
            run = await self._schedule(request, registry, principal, spec, task_name)
            run_pk = run.pk
        created = await self._write(lambda conn: resources.save_task_run(
            conn, sealer, registry, child, body, run_request, run_pk, existing))

        def render(conn: Connection) -> dict[str, Any]:
            found = resources.get_task_run(conn, sealer, registry, child)
            return resources.task_run_json(registry, found, runs.get_run_by_pk(conn, found.run_pk)
                                           if found.run_pk else None)
        return JSONResponse(await self._query(render), status_code=201 if created else 200)

    async def delete_task_run(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "taskRuns/delete", write=True)
        child = request.path_params["child"]
        removed = await self._write(lambda conn: resources.delete_task_run(conn, registry, child))
        self.management._audit(request, principal, "arm:taskRun:delete", registry.name, child)
        return Response(status_code=200 if removed else 204)

    # agent pools --------------------------------------------------------------------------------------------------

    async def list_pools(self, request: Request) -> Response:
        _, registry = await self._registry(request, "agentPools/read", write=False)
        return JSONResponse(page(await self._query(lambda conn: [
            resources.pool_json(registry, p) for p in resources.list_pools(conn, registry)])))

    async def get_pool(self, request: Request) -> Response:
        _, registry = await self._registry(request, "agentPools/read", write=False)
        child = request.path_params["child"]
        return JSONResponse(await self._query(lambda conn: resources.pool_json(
            registry, resources.get_pool(conn, registry, child))))

    async def put_pool(self, request: Request) -> Response:
        return await self._change_pool(request, patch=False)

    async def patch_pool(self, request: Request) -> Response:
        return await self._change_pool(request, patch=True)

    async def _change_pool(self, request: Request, *, patch: bool) -> Response:
        principal, registry = await self._registry(request, "agentPools/write", write=True)
        body = await _json(request, schemas.AGENT_POOL)
        child = request.path_params["child"]
        pool, created = await self._write(lambda conn: resources.put_pool(conn, registry, child, body, patch=patch))
        self.management._audit(request, principal, "arm:agentPool:write", registry.name, child)
        return JSONResponse(resources.pool_json(registry, pool), status_code=201 if created else 200)

    async def delete_pool(self, request: Request) -> Response:
        principal, registry = await self._registry(request, "agentPools/delete", write=True)
        child = request.path_params["child"]
        await self._write(lambda conn: resources.delete_pool(conn, registry, child))
        self.management._audit(request, principal, "arm:agentPool:delete", registry.name, child)
        return Response(status_code=204)

    async def queue_status(self, request: Request) -> Response:
        _, registry = await self._registry(request, "agentPools/listQueueStatus/action", write=True)
        child = request.path_params["child"]

        def work(conn: Connection) -> int:
            resources.get_pool(conn, registry, child)
            return resources.queued_in_pool(conn, child)
        return JSONResponse({"count": await self._query(work)})

