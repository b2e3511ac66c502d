"""`cargohold replication create | list | show | update | delete`, as `az acr replication` (Premium only):
-r names the registry, -n the replication, which defaults to the location's name."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

import typer

from cargohold.cli.arm_client import arm_session
from cargohold.cli.common import OutputOption, QueryOption, emit
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
