"""`cargohold create | show | list | update | delete | check-name | show-usage`: registries through the
management API, as `az acr` manages them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cargohold.cli.arm_client import arm_session
from cargohold.cli.common import Output, OutputOption, QueryOption, chosen_output, emit, fail
from cargohold.cli.errors import ArmFailure, ConfigError
from cargohold.cli.lookup import find_registry, with_resource_group
from cargohold.cli.options import (
    DefaultAction,
    RegistryName,
    ResourceGroup,
    ServerDataDir,
    SkuName,
    Subscription,
    Switch,
    Tags,
    parse_pairs,
    switch,
)
from cargohold.cli.pricing import estimate, load_prices

REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"

AdminEnabled = Annotated[Switch | None, typer.Option(help="Enable the admin user.")]
AnonymousPull = Annotated[Switch | None, typer.Option(help="Let anyone pull (Standard and Premium).")]
PublicNetwork = Annotated[Switch | None, typer.Option(
    help="Accept clients beyond loopback (cargohold's stand-in for private endpoints; Premium to disable).")]
DefaultActionOption = Annotated[DefaultAction | None, typer.Option(
    "--default-action", case_sensitive=False, help="Allow or Deny clients no IP rule lets in (Premium).")]


def registry_row(registry: dict[str, Any]) -> dict[str, Any]:
    properties = registry.get("properties") or {}
    return {"name": registry.get("name"), "resourceGroup": registry.get("resourceGroup"),
            "location": registry.get("location"), "sku": (registry.get("sku") or {}).get("name"),
            "loginServer": properties.get("loginServer"), "creationDate": properties.get("creationDate"),
            "adminEnabled": properties.get("adminUserEnabled")}


def registry_rows(value: Any) -> list[dict[str, Any]]:
    return [registry_row(r) for r in (value if isinstance(value, list) else [value])]


def _settings(admin: Switch | None, anonymous_pull: Switch | None, public_network: Switch | None,
              default_action: DefaultAction | None, current: dict[str, Any] | None) -> dict[str, Any]:
    """ARM registry properties for the switches given; the IP rules are kept when the default action moves."""
    properties: dict[str, Any] = {}
    if admin is not None:
        properties["adminUserEnabled"] = switch(admin)
    if anonymous_pull is not None:
        properties["anonymousPullEnabled"] = switch(anonymous_pull)
    if public_network is not None:
        properties["publicNetworkAccess"] = "Enabled" if switch(public_network) else "Disabled"
    if default_action is not None:
        rules = ((current or {}).get("properties", {}).get("networkRuleSet") or {}).get("ipRules") or []
        properties["networkRuleSet"] = {"defaultAction": default_action.value, "ipRules": rules}
    return properties


def create(
    name: Annotated[str, typer.Option("--name", "-n", help="Registry name: 5-50 alphanumerics, unique.")],
    sku: Annotated[SkuName, typer.Option(case_sensitive=False, help="Basic, Standard or Premium.")],
    resource_group: Annotated[str, typer.Option("--resource-group", "-g")] = "default",
    location: Annotated[str, typer.Option("--location", "-l")] = "local",
    admin_enabled: AdminEnabled = None,
    anonymous_pull_enabled: AnonymousPull = None,
    public_network_enabled: PublicNetwork = None,
    default_action: DefaultActionOption = None,
    tags: Tags = None,
    data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
    query: QueryOption = None,
) -> None:
    """Create a registry (as `az acr create`; the resource group defaults to 'default')."""
    body: dict[str, Any] = {"location": location, "sku": {"name": sku.value},
                            "properties": {"adminUserEnabled": False, **_settings(
                                admin_enabled, anonymous_pull_enabled, public_network_enabled, default_action,
                                None)}}
    if tags is not None:
        body["tags"] = parse_pairs(tags, "--tags")
    with arm_session(data_dir, subscription) as arm:
        status = arm.post(f"{arm.provider_path}/checkNameAvailability", {"name": name, "type": REGISTRY_TYPE})
        if not status.get("nameAvailable", False):
            code = "AlreadyInUse" if status.get("reason") == "AlreadyExists" else "InvalidRegistryName"
            raise ArmFailure(code, str(status.get("message") or f"The registry name {name} is not available."))
        created = arm.put(f"{arm.group_path(resource_group)}/registries/{name}", body)
        emit(with_resource_group(created), output, query=query, view=registry_rows)


def show(name: RegistryName = None, resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
         subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Show a registry's properties."""
    with arm_session(data_dir, subscription) as arm:
        emit(find_registry(arm, name, resource_group), output, query=query, view=registry_rows)


def list_registries(resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
                    subscription: Subscription = None, output: OutputOption = None,
                    query: QueryOption = None) -> None:
    """List the registries you can read, in the subscription or one resource group."""
    with arm_session(data_dir, subscription) as arm:
        path = arm.group_path(resource_group) if resource_group else arm.provider_path
        emit([with_resource_group(r) for r in arm.list(f"{path}/registries")], output, query=query,
             view=registry_rows)


def update(
    name: RegistryName = None, resource_group: ResourceGroup = None,
    sku: Annotated[SkuName | None, typer.Option(case_sensitive=False, help="Basic, Standard or Premium.")] = None,
    admin_enabled: AdminEnabled = None,
    anonymous_pull_enabled: AnonymousPull = None,
    public_network_enabled: PublicNetwork = None,
    default_action: DefaultActionOption = None,
    tags: Tags = None,
    data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
    query: QueryOption = None,
) -> None:
    """Change registry settings (as `az acr update`: --anonymous-pull-enabled true)."""
    with arm_session(data_dir, subscription) as arm:
        current = find_registry(arm, name, resource_group)
        body: dict[str, Any] = {}
        properties = _settings(admin_enabled, anonymous_pull_enabled, public_network_enabled, default_action,
                               current)
        if properties:
            body["properties"] = properties
        if sku is not None:
            body["sku"] = {"name": sku.value}
        if tags is not None:
            body["tags"] = parse_pairs(tags, "--tags")
        if not body:
            fail("nothing to change: give --sku, --admin-enabled, --anonymous-pull-enabled, "
                 "--public-network-enabled, --default-action or --tags")
        emit(with_resource_group(arm.patch(current["id"], body)), output, query=query, view=registry_rows)


def delete(name: RegistryName = None, resource_group: ResourceGroup = None,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
           data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
           query: QueryOption = None) -> None:
    """Delete a registry with all its repositories, webhooks and replications. Prints nothing, as az does; -o and --query are accepted like everywhere."""
    with arm_session(data_dir, subscription) as arm:
        registry = find_registry(arm, name, resource_group)
        if not yes:
            if not sys.stdin.isatty():
                fail("no terminal to confirm on: pass --yes to delete without a prompt")
            typer.confirm(f"Delete the registry {registry['name']} and everything in it?", abort=True)
        arm.delete(registry["id"])


def check_name(name: Annotated[str, typer.Option("--name", "-n")], data_dir: ServerDataDir = None,
               subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Check whether a registry name is valid and free."""
    with arm_session(data_dir, subscription) as arm:
        status = arm.post(f"{arm.provider_path}/checkNameAvailability", {"name": name, "type": REGISTRY_TYPE})
        emit(status, output, ["nameAvailable", "reason", "message"], query=query)


def show_usage(
    name: RegistryName = None, resource_group: ResourceGroup = None,
    prices: Annotated[Path | None, typer.Option(
        "--prices", help="JSON price list to use instead of ACR's list prices (also $CARGOHOLD_PRICES).")] = None,
    data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
    query: QueryOption = None,
) -> None:
    """Show usage against the SKU's limits, and what the registry would cost a month on ACR's price list."""
    try:
        price_list = load_prices(prices)
    except ConfigError as exc:
        fail(str(exc))
    with arm_session(data_dir, subscription) as arm:
        registry = find_registry(arm, name, resource_group)
        usages = arm.post(f"{registry['id']}/listUsages").get("value") or []
        stored = next((u.get("currentValue") or 0 for u in usages if u.get("name") == "Size"), 0)
        cost = estimate(price_list, (registry.get("sku") or {}).get("name", ""), int(stored))
        emit({"value": usages, "estimatedMonthlyCost": cost.to_json()}, output,
             ["name", "currentValue", "limit", "unit"], query=query, view=lambda document: document["value"])
        if query is None and chosen_output(output) is Output.table:
            typer.echo(cost.line())
