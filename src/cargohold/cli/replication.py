"""`cargohold replication create | list | show | update | delete | status | wait`, as `az acr replication`
(Premium only): -r names the registry, -n the replication, which defaults to the location's name. `status`
shows each region's copy backlog; `wait` blocks a deploy script until an image is complete in every region
(or in --region)."""

from __future__ import annotations

import re
import ssl
import time
from enum import Enum
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from cargohold.cli.arm_client import arm_session
from cargohold.cli.common import OutputOption, QueryOption, emit, fail
from cargohold.cli.lookup import find_registry, with_resource_group
from cargohold.cli.options import (
    MultiValueCommand,
    RegistryOption,
    ResourceGroup,
    ServerDataDir,
    Subscription,
    Switch,
    Tags,
    parse_pairs,
    switch,
)

replication_app = typer.Typer(help="Geo-replications (Premium).", no_args_is_help=True)

ReplicationName = Annotated[str, typer.Option("--name", "-n", help="Replication name.")]
RegionEndpoint = Annotated[Switch | None, typer.Option(help="Let clients reach this region's endpoint.")]


class ZoneRedundancy(str, Enum):
    Enabled = "Enabled"
    Disabled = "Disabled"


def status_rows(value: Any) -> list[dict[str, Any]]:
    return [{"name": r.get("name"), "location": r.get("location"),
             "status": ((r.get("properties") or {}).get("status") or {}).get("displayStatus"),
             "message": ((r.get("properties") or {}).get("status") or {}).get("message") or ""}
            for r in (value if isinstance(value, list) else [value])]


def replication_rows(value: Any) -> list[dict[str, Any]]:
    rows = []
    for replica in value if isinstance(value, list) else [value]:
        properties = replica.get("properties") or {}
        rows.append({"name": replica.get("name"), "location": replica.get("location"),
                     "provisioningState": properties.get("provisioningState"),
                     "status": (properties.get("status") or {}).get("displayStatus"),
                     "regionEndpointEnabled": properties.get("regionEndpointEnabled")})
    return rows


def default_name(location: str) -> str:
    """az names a replication after its location, without the characters a name may not hold."""
    return re.sub(r"[^A-Za-z0-9]", "", location).lower()


@replication_app.command("create", cls=MultiValueCommand)
def create(location: Annotated[str, typer.Option("--location", "-l", help="Region to replicate to.")],
           registry: RegistryOption = None, resource_group: ResourceGroup = None,
           name: Annotated[str | None, typer.Option("--name", "-n", help="Default: the location's name.")] = None,
           region_endpoint_enabled: RegionEndpoint = None,
           zone_redundancy: Annotated[ZoneRedundancy | None, typer.Option(case_sensitive=False)] = None,
           tags: Tags = None, data_dir: ServerDataDir = None, subscription: Subscription = None,
           output: OutputOption = None, query: QueryOption = None) -> None:
    """Replicate a registry to another region (as `az acr replication create -r registry -l location`)."""
    properties: dict[str, Any] = {}
    if region_endpoint_enabled is not None:
        properties["regionEndpointEnabled"] = switch(region_endpoint_enabled)
    if zone_redundancy is not None:
        properties["zoneRedundancy"] = zone_redundancy.value
    body: dict[str, Any] = {"location": location, "properties": properties}
    if tags is not None:
        body["tags"] = parse_pairs(tags, "--tags")
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        created = arm.put(f"{found['id']}/replications/{name or default_name(location)}", body)
        emit(with_resource_group(created), output, query=query, view=replication_rows)


@replication_app.command("list", cls=MultiValueCommand)
def list_replications(registry: RegistryOption = None, resource_group: ResourceGroup = None,
                      data_dir: ServerDataDir = None, subscription: Subscription = None,
                      output: OutputOption = None, query: QueryOption = None) -> None:
    """List a registry's replications."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit([with_resource_group(r) for r in arm.list(f"{found['id']}/replications")], output, query=query,
             view=replication_rows)


@replication_app.command("show", cls=MultiValueCommand)
def show(name: ReplicationName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
         data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
         query: QueryOption = None) -> None:
    """Show a replication."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.get(f"{found['id']}/replications/{name}")), output, query=query,
             view=replication_rows)


@replication_app.command("update", cls=MultiValueCommand)
def update(name: ReplicationName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
           region_endpoint_enabled: RegionEndpoint = None, tags: Tags = None, data_dir: ServerDataDir = None,
           subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Change a replication's region endpoint or tags."""
    body: dict[str, Any] = {}
    if region_endpoint_enabled is not None:
        body["properties"] = {"regionEndpointEnabled": switch(region_endpoint_enabled)}
    if tags is not None:
        body["tags"] = parse_pairs(tags, "--tags")
    if not body:
        raise typer.BadParameter("give --region-endpoint-enabled or --tags")
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.patch(f"{found['id']}/replications/{name}", body)), output, query=query,
             view=replication_rows)


@replication_app.command("delete", cls=MultiValueCommand)
def delete(name: ReplicationName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
           data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
           query: QueryOption = None) -> None:
    """Delete a replication. Prints nothing, as az does; -o and --query are accepted like everywhere."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        arm.delete(f"{found['id']}/replications/{name}")


@replication_app.command("status", cls=MultiValueCommand)
def status(registry: RegistryOption = None, resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
           subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Each replication's status: Ready, Syncing (how many items and bytes behind) or Unavailable."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit([with_resource_group(r) for r in arm.list(f"{found['id']}/replications")], output, query=query,
             view=status_rows)


@replication_app.command("wait", cls=MultiValueCommand)
def wait(image: Annotated[str, typer.Option(help="repository:tag or repository@digest")],
         registry: RegistryOption = None, resource_group: ResourceGroup = None,
         region: Annotated[str | None, typer.Option(help="Wait for this region only (default: every region).")]
         = None,
         timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds (exit 1).")] = 300,
         data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
         query: QueryOption = None) -> None:
    """Wait until an image is complete in every region of its registry (or in --region): for deploy scripts
    that must not pull an image a region does not hold yet."""
    repository, reference = _split_image(image)
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        login_server = str((found.get("properties") or {}).get("loginServer") or "")
        endpoint = arm.endpoint
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=endpoint.ca_file) \
            if endpoint.ca_file else True
        path = f"/acr/v1/{repository}/_manifests/{quote(reference, safe=':')}/_replication"
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=endpoint.server, verify=verify, auth=(endpoint.client_id, endpoint.client_secret),
                          headers={"Host": login_server}, timeout=None) as http:
            while True:
                left = max(0.0, deadline - time.monotonic())
                params: dict[str, Any] = {"wait": f"{min(left, 60):.1f}"}
                if region:
                    params["region"] = region
                try:
                    response = http.get(path, params=params)
                except httpx.HTTPError as exc:
                    fail(f"cannot reach {endpoint.server}: {exc}")
                if response.status_code >= 400:
                    fail(f"{image}: {response.status_code} {_error_message(response)}")
                body = response.json()
                if body.get("complete") or time.monotonic() >= deadline:
                    break
    emit(body, output, query=query, view=_wait_rows)
    if not body.get("complete"):
        waiting = [r["region"] for r in body.get("regions", []) if not r.get("complete")]
        fail(f"{image} is not complete in {', '.join(waiting)} after {timeout:g} s")


def _wait_rows(body: Any) -> list[dict[str, Any]]:
    return [{"region": r.get("region"), "complete": r.get("complete"), "missingBlobs": r.get("missingBlobs"),
             "missingBytes": r.get("missingBytes")} for r in body.get("regions", [])]


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        repository, _, reference = image.partition("@")
    else:
        repository, _, reference = image.rpartition(":")
        if not repository or "/" in reference:
            repository, reference = image, "latest"
    if not repository or not reference:
        raise typer.BadParameter("repository:tag or repository@digest", param_hint="--image")
    return repository, reference


def _error_message(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("message")) for e in errors) or response.text[:200]
    except ValueError:
        return response.text[:200]
