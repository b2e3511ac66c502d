"""Saved tasks, taskRuns and agent pools as ARM resources: checking bodies, rows, and their JSON.

A task's credentials (passwords for custom registries) are sealed apart from its properties and never shown,
not even by `listDetails`; secret values and arguments are shown without their values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from cargohold.jobs.queue import PENDING
from cargohold.jobs.tables import jobs
from cargohold.kernel.clock import utcnow
from cargohold.management.arm import ArmError, invalid, not_found
from cargohold.management.fields import choice, iso, tags_of
from cargohold.management.resources import Registry
from cargohold.security.master_key import Sealer
from cargohold.tasks import requests, runs
from cargohold.tasks.tables import agent_pools, task_run_resources, tasks
from cargohold.tasks.taskfile import RunValues, TaskFileError

TASK_NAME = re.compile(r"^[A-Za-z0-9_-]{5,50}$")
POOL_NAME = re.compile(r"^[A-Za-z0-9-]{3,20}$")
STEP_TYPES = ("Docker", "FileTask", "EncodedTask")
TIERS = ("S1", "S2", "S3", "I6")


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    location: str
    tags: dict[str, str]
    properties: dict[str, Any]
    created_at: datetime


def _task(row: Any) -> Task:
    return Task(row.id, row.name, row.location, json.loads(row.tags), json.loads(row.properties), row.created_at)


def get_task(conn: Connection, registry: Registry, name: str) -> Task:
    row = conn.execute(select(tasks).where(tasks.c.registry_id == registry.id, tasks.c.name == name)).first()
    if row is None:
        raise not_found("task", name[:50])
    return _task(row)


def list_tasks(conn: Connection, registry: Registry) -> list[Task]:
    return [_task(row) for row in conn.execute(select(tasks).where(tasks.c.registry_id == registry.id)
                                               .order_by(tasks.c.name))]


def put_task(conn: Connection, sealer: Sealer, registry: Registry, name: str, body: dict[str, Any], *,
             patch: bool) -> tuple[Task, bool]:
    if not TASK_NAME.match(name):
        raise invalid("task names are 5-50 letters, digits, '-' or '_'")
    existing = conn.execute(select(tasks).where(tasks.c.registry_id == registry.id, tasks.c.name == name)).first()
    if patch and existing is None:
        raise not_found("task", name)
    incoming = body.get("properties") or {}
    if not isinstance(incoming, dict):
        raise invalid("properties must be an object")
    current = json.loads(existing.properties) if existing is not None else {}
    merged = {**current, **{k: v for k, v in incoming.items() if k != "credentials"}} if patch else \
        {k: v for k, v in incoming.items() if k != "credentials"}
    if patch and isinstance(incoming.get("step"), dict) and isinstance(current.get("step"), dict):
        merged["step"] = {**current["step"], **incoming["step"]}
    properties = _check_task(merged)
    credentials = incoming.get("credentials")
    sealed = existing.credentials_sealed if existing is not None else None
    if credentials is not None:
        requests.parse_credentials(credentials)
        sealed = sealer.seal(json.dumps(credentials).encode())
    tags = tags_of(body) if ("tags" in body or not patch) else (json.loads(existing.tags) if existing else {})
    if existing is None:
        conn.execute(insert(tasks).values(registry_id=registry.id, name=name,
                                          location=str(body.get("location") or registry.location),
                                          tags=json.dumps(tags), properties=json.dumps(properties),
                                          credentials_sealed=sealed, created_at=utcnow()))
    else:
        conn.execute(update(tasks).where(tasks.c.id == existing.id).values(
            tags=json.dumps(tags), properties=json.dumps(properties), credentials_sealed=sealed))
    return get_task(conn, registry, name), existing is None


def task_credentials(conn: Connection, sealer: Sealer, registry: Registry, name: str) -> dict[str, Any] | None:
    sealed = conn.execute(select(tasks.c.credentials_sealed).where(
        tasks.c.registry_id == registry.id, tasks.c.name == name)).scalar_one_or_none()
    return json.loads(sealer.unseal(sealed)) if sealed else None


def delete_task(conn: Connection, registry: Registry, name: str) -> bool:
    return bool(conn.execute(delete(tasks).where(tasks.c.registry_id == registry.id, tasks.c.name == name)).rowcount)


def _check_task(properties: dict[str, Any]) -> dict[str, Any]:
    checked = dict(properties)
    checked["status"] = choice("properties.status", checked.get("status") or "Enabled", ("Enabled", "Disabled"))
    if "platform" not in checked or not isinstance(checked["platform"], dict):
        raise invalid("properties.platform is required: {os: Linux, architecture}")
    checked["platform"] = requests.parse_platform(checked["platform"])
    timeout = checked.get("timeout", runs.DEFAULT_TIMEOUT)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 300 <= timeout <= runs.MAX_TIMEOUT:
        raise invalid(f"properties.timeout must be 300 to {runs.MAX_TIMEOUT} seconds")
    checked["timeout"] = timeout
    step = checked.get("step")
    if not isinstance(step, dict):
        raise invalid("properties.step is required: {type: Docker | FileTask | EncodedTask, …}")
    step_type = choice("properties.step.type", step.get("type"), STEP_TYPES)
    step = {**step, "type": step_type}
    checked["step"] = step
    request = step_request(checked, None)
    spec = requests.parse_run_request(request)
    if spec.task_text is not None:
        try:
            requests.build_plan(spec, RunValues("ca0", "registry.localhost", "registry", "20260101-000000z"))
        except TaskFileError as exc:
            raise requests.task_error(exc) from None
    for key in ("agentConfiguration", "trigger", "logTemplate", "agentPoolName", "isSystemTask"):
        checked.setdefault(key, None)
    return checked


def step_request(properties: dict[str, Any], credentials: dict[str, Any] | None,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run request a task's step stands for (with a TaskRunRequest's overrides)."""
    step = dict(properties["step"])
    overrides = overrides or {}
    common: dict[str, Any] = {"platform": properties.get("platform"), "timeout": properties.get("timeout"),
                              "agentPoolName": properties.get("agentPoolName"),
                              "sourceLocation": overrides.get("contextPath") or step.get("contextPath"),
                              "credentials": credentials}
    values = overrides.get("values") if overrides.get("values") is not None else step.get("values")
    if step["type"] == "Docker":
        return {**common, "type": "DockerBuildRequest", "imageNames": step.get("imageNames") or [],
                "isPushEnabled": step.get("isPushEnabled", True), "noCache": step.get("noCache", False),
                "dockerFilePath": overrides.get("file") or step.get("dockerFilePath"),
                "target": overrides.get("target") or step.get("target"),
                "arguments": overrides.get("arguments") if overrides.get("arguments") is not None
                else step.get("arguments")}
    if step["type"] == "FileTask":
        return {**common, "type": "FileTaskRunRequest", "taskFilePath": overrides.get("file") or
                step.get("taskFilePath"), "valuesFilePath": step.get("valuesFilePath"), "values": values}
    return {**common, "type": "EncodedTaskRunRequest", "encodedTaskContent": step.get("encodedTaskContent"),
            "encodedValuesContent": step.get("encodedValuesContent"), "values": values}


def _hide_secrets(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    return [{**item, "value": None} if isinstance(item, dict) and item.get("isSecret") else item for item in items]


def task_json(registry: Registry, task: Task, credentials: dict[str, Any] | None = None) -> dict[str, Any]:
    properties = dict(task.properties)
    step = dict(properties["step"])
    for key in ("arguments", "values"):
        if key in step:
            step[key] = _hide_secrets(step[key])
    step.pop("contextAccessToken", None)
    properties["step"] = step
    properties.update({"provisioningState": "Succeeded", "creationDate": iso(task.created_at)})
    if credentials:
        properties["credentials"] = {
            "sourceRegistry": credentials.get("sourceRegistry"),
            "customRegistries": {host: {"userName": None, "password": None}
                                 for host in (credentials.get("customRegistries") or {})}}
    return {"id": f"{registry.resource_id}/tasks/{task.name}", "name": task.name,
            "type": "Microsoft.ContainerRegistry/registries/tasks", "location": task.location, "tags": task.tags,
            "properties": properties}


# taskRuns ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskRunResource:
    id: int
    name: str
    location: str
    tags: dict[str, str]
    request: dict[str, Any]
    force_update_tag: str | None
    run_pk: int | None


def get_task_run(conn: Connection, sealer: Sealer, registry: Registry, name: str) -> TaskRunResource:
    row = conn.execute(select(task_run_resources).where(task_run_resources.c.registry_id == registry.id,
                                                        task_run_resources.c.name == name)).first()
    if row is None:
        raise not_found("taskRun", name[:50])
    return TaskRunResource(row.id, row.name, row.location, json.loads(row.tags),
                           json.loads(sealer.unseal(row.request_sealed)), row.force_update_tag, row.run_id)


def list_task_runs(conn: Connection, sealer: Sealer, registry: Registry) -> list[TaskRunResource]:
    names = conn.execute(select(task_run_resources.c.name).where(task_run_resources.c.registry_id == registry.id)
                         .order_by(task_run_resources.c.name)).scalars().all()
    return [get_task_run(conn, sealer, registry, name) for name in names]


def save_task_run(conn: Connection, sealer: Sealer, registry: Registry, name: str, body: dict[str, Any],
                  request: dict[str, Any], run_pk: int | None, existing: TaskRunResource | None) -> bool:
    values = {"tags": json.dumps(tags_of(body) if "tags" in body else (existing.tags if existing else {})),
              "request_sealed": sealer.seal(json.dumps(request).encode()),
              "force_update_tag": (body.get("properties") or {}).get("forceUpdateTag"), "run_id": run_pk}
    if existing is None:
        conn.execute(insert(task_run_resources).values(registry_id=registry.id, name=name,
                                                       location=str(body.get("location") or registry.location),
                                                       created_at=utcnow(), **values))
        return True
    if run_pk is None:
        values.pop("run_id")
    conn.execute(update(task_run_resources).where(task_run_resources.c.id == existing.id).values(**values))
    return False


def delete_task_run(conn: Connection, registry: Registry, name: str) -> bool:
    return bool(conn.execute(delete(task_run_resources).where(task_run_resources.c.registry_id == registry.id,
                                                              task_run_resources.c.name == name)).rowcount)


def public_request(request: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in request.items() if k != "credentials"}
    for key in ("arguments", "values"):
        if key in shown:
            shown[key] = _hide_secrets(shown[key])
    shown.pop("encodedValuesContent", None)
    return shown


def task_run_json(registry: Registry, resource: TaskRunResource, run: runs.Run | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"provisioningState": "Succeeded", "runRequest": public_request(resource.request),
                                  "forceUpdateTag": resource.force_update_tag}
    if run is not None:
        properties["runResult"] = runs.run_json(registry.resource_id, run)
    return {"id": f"{registry.resource_id}/taskRuns/{resource.name}", "name": resource.name,
            "type": "Microsoft.ContainerRegistry/registries/taskRuns", "location": resource.location,
            "tags": resource.tags, "properties": properties}


# agent pools -------------------------------------------------------------------------------------------------------

def get_pool(conn: Connection, registry: Registry, name: str) -> dict[str, Any]:
    row = conn.execute(select(agent_pools).where(agent_pools.c.registry_id == registry.id,
                                                 agent_pools.c.name == name.lower())).first()
    if row is None:
        raise not_found("agentPool", name[:20])
    return dict(row._mapping)


def pool_exists(conn: Connection, registry_id: int, name: str) -> bool:
    return conn.execute(select(agent_pools.c.id).where(agent_pools.c.registry_id == registry_id,
                                                       agent_pools.c.name == name.lower())).first() is not None


def list_pools(conn: Connection, registry: Registry) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(select(agent_pools).where(
        agent_pools.c.registry_id == registry.id).order_by(agent_pools.c.name))]


def put_pool(conn: Connection, registry: Registry, name: str, body: dict[str, Any], *,
             patch: bool) -> tuple[dict[str, Any], bool]:
    if not POOL_NAME.match(name):
        raise invalid("agent pool names are 3-20 letters, digits or '-'")
    existing = conn.execute(select(agent_pools).where(agent_pools.c.registry_id == registry.id,
                                                      agent_pools.c.name == name.lower())).first()
    if patch and existing is None:
        raise not_found("agentPool", name)
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise invalid("properties must be an object")
    count = properties.get("count", existing.count if existing is not None else 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 100:
        raise invalid("properties.count must be 0 to 100")
    values: dict[str, Any] = {"count": count}
    if not patch:
        values["tier"] = choice("properties.tier", properties.get("tier") or "S1", TIERS)
        values["os"] = choice("properties.os", properties.get("os") or "Linux", ("Linux",))
        values["subnet"] = properties.get("virtualNetworkSubnetResourceId")
    if "tags" in body or not patch:
        values["tags"] = json.dumps(tags_of(body))
    if existing is None:
        conn.execute(insert(agent_pools).values(registry_id=registry.id, name=name.lower(),
                                                location=str(body.get("location") or registry.location),
                                                created_at=utcnow(), **values))
    else:
        conn.execute(update(agent_pools).where(agent_pools.c.id == existing.id).values(**values))
    return get_pool(conn, registry, name), existing is None


def delete_pool(conn: Connection, registry: Registry, name: str) -> bool:
    return bool(conn.execute(delete(agent_pools).where(agent_pools.c.registry_id == registry.id,
                                                       agent_pools.c.name == name.lower())).rowcount)


def queued_in_pool(conn: Connection, name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(jobs).where(
        jobs.c.kind == runs.job_kind(name), jobs.c.status == PENDING)).scalar_one())


def pool_json(registry: Registry, pool: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{registry.resource_id}/agentPools/{pool['name']}", "name": pool["name"],
            "type": "Microsoft.ContainerRegistry/registries/agentPools", "location": pool["location"],
            "tags": json.loads(pool["tags"]),
            "properties": {"count": pool["count"], "tier": pool["tier"], "os": pool["os"],
                           "virtualNetworkSubnetResourceId": pool["subnet"], "provisioningState": "Succeeded"}}


def check_pool(conn: Connection, registry_id: int, name: str | None) -> None:
    if name and not pool_exists(conn, registry_id, name):
        raise ArmError(400, "InvalidParameter", f"the agent pool {name[:20]!r} does not exist in this registry")
