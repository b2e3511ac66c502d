"""Scheduling runs: check the request, the caller's right to push where the run would push, and queue it.

HTTP-free; the routes parse and render, the runner (`runner.py`) executes what is queued here.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from cargohold.auth.permissions import PUSH, allowed_actions
from cargohold.auth.principals import Principal
from cargohold.auth.roles import grants_for
from cargohold.blobs.store import BlobStore
from cargohold.db.engine import write_transaction
from cargohold.kernel.clock import utcnow
from cargohold.kernel.context import RegistryContext
from cargohold.kernel.tenancy import RegistryRecord, resolve_registry
from cargohold.management.arm import ArmError
from cargohold.oci.errors import RegistryError
from cargohold.security.master_key import Sealer
from cargohold.oci.digest import Digest
from cargohold.tasks import requests, runs, source
from cargohold.tasks.requests import RunSpec
from cargohold.tasks.taskfile import RunValues, TaskFileError


@dataclass(frozen=True)
class Target:
    """The registry a run belongs to."""

    id: int
    name: str
    login_server: str


def run_values(target: Target, run_id: str) -> RunValues:
    return RunValues(id=run_id, registry=target.login_server, registry_name=target.name,
                     date=utcnow().strftime("%Y%m%d-%H%M%Sz"))


def local_registry(conn: Connection, host: str) -> RegistryRecord | None:
    """The registry of this server whose login server is `host` (exactly: no single-registry fallback)."""
    try:
        found = resolve_registry(conn, host)
    except RegistryError:
        return None
    bare = host.lower().rsplit(":", 1)[0]
    return found if found.login_server in (host.lower(), bare) else None


def check_pushes(conn: Connection, principal: Principal, images: list[str]) -> None:
    """Refuse, before anything runs, a push the caller could not make itself."""
    for image in images:
        host, repository, _, _ = requests.split_image(image)
        registry = local_registry(conn, host)
        if registry is None:
            continue
        grants = grants_for(conn, principal, registry.id, registry.anonymous_pull_enabled)
        if PUSH not in allowed_actions(grants.repositories, repository):
            raise ArmError(403, "AuthorizationFailed", f"The client '{principal.name}' may not push to "
                           f"{host}/{repository}; the run would push there, so it was not started.")


def prepare(ctx: RegistryContext, store: BlobStore, target: Target, principal: Principal,
            spec: RunSpec) -> None:
    """Everything checkable before queueing: the source, the task file, the Dockerfile, the pushes."""
    files: set[str] | None = None
    small: dict[str, bytes] = {}
    if spec.source_location and not source.is_remote(spec.source_location):
        with ctx.engine.connect() as conn:
            found = source.get_source(conn, target.id, relative_path=spec.source_location)
        if found is None or found.digest is None:
            raise ArmError(400, "InvalidParameter", f"sourceLocation {spec.source_location[:200]!r} is neither a URL "
                           "nor an uploaded source of this registry (see listBuildSourceUploadUrl)")
        files, small = _listing(store, found.digest)
    elif spec.source_location is None and spec.kind == "build":
        raise ArmError(400, "InvalidParameter", "sourceLocation is required for a build")
    task_text, values_text = spec.task_text, spec.values_text
    if spec.task_file_path is not None:
        if files is None:
            task_text = None
        else:
            task_text = _file_text(small, spec.task_file_path, "taskFilePath")
            if spec.values_file_path:
                values_text = _file_text(small, spec.values_file_path, "valuesFilePath")
    if spec.kind == "file" and task_text is None:
        return
    try:
        plan = requests.build_plan(spec, run_values(target, "ca0"), task_text, values_text)
    except TaskFileError as exc:
        raise requests.task_error(exc) from None
    requests.check_plan_against_context(plan, files)
    with ctx.engine.connect() as conn:
        check_pushes(conn, principal, requests.pushes(plan))


def _listing(store: BlobStore, digest: str) -> tuple[set[str], dict[str, bytes]]:
    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as handle:
        for piece in store.read(Digest.parse(digest), 1024 * 1024):
            handle.write(piece)
        handle.flush()
        return requests.context_files(Path(handle.name))


def _file_text(small: dict[str, bytes], path: str, name: str) -> str:
    key = os.path.normpath(path)
    if key not in small:
        raise ArmError(400, "InvalidParameter", f"{name} {path[:200]!r} is not a YAML file in the uploaded source")
    try:
        return small[key].decode("utf-8")
    except UnicodeDecodeError:
        raise ArmError(400, "InvalidParameter", f"{name} {path[:200]!r} is not UTF-8 text") from None


def schedule(ctx: RegistryContext, sealer: Sealer, target: Target, principal: Principal, spec: RunSpec,
             endpoint: str, *, task_name: str | None = None) -> runs.Run:
    """Check the request, then record the run and queue its job."""
    prepare(ctx, ctx.store, target, principal, spec)
    with write_transaction(ctx.engine) as conn:
        return runs.create_run(conn, sealer, target.id, run_type=spec.run_type, request=spec.to_json(),
                               platform=spec.platform, principal=principal.subject, endpoint=endpoint,
                               timeout=spec.timeout, task_name=task_name, agent_pool=spec.agent_pool,
                               is_archive_enabled=spec.is_archive_enabled)
