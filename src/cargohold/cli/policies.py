"""`cargohold config content-trust | retention | soft-delete | quarantine | export-policy show|update`: the
registry's `properties.policies`, as `az acr config` shows and changes them."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from cargohold.cli.arm_client import ArmClient, arm_session
from cargohold.cli.common import OutputOption, QueryOption, emit
from cargohold.cli.lookup import find_registry
from cargohold.cli.options import MultiValueCommand, ResourceGroup, ServerDataDir, Status, Subscription

config_app = typer.Typer(help="Registry policies: content trust, retention, soft delete, quarantine, exports.",
                         no_args_is_help=True)

Registry = Annotated[str | None, typer.Option("--registry", "-r", "--name", "-n",
                                              help="Registry name (default: the only one).")]
StatusOption = Annotated[Status | None, typer.Option(case_sensitive=False, help="enabled or disabled")]


class RetentionType(str, Enum):
    UntaggedManifests = "UntaggedManifests"


def _policy(arm: ArmClient, registry: str | None, group: str | None, key: str,
            change: dict[str, Any] | None = None) -> dict[str, Any]:
    """The policy `key` of the registry, after applying `change` to it when one is given."""
    found = find_registry(arm, registry, group)
    if change:
        found = arm.patch(found["id"], {"properties": {"policies": {key: change}}})
    return dict((found.get("properties") or {}).get("policies", {}).get(key) or {})


def _changes(status: Status | None, **fields: Any) -> dict[str, Any]:
    change = {name: value for name, value in fields.items() if value is not None}
    if status is not None:
        change["status"] = status.value
    if not change:
        raise typer.BadParameter("give --status or another setting to change")
    return change


def _policy_commands(command: str, key: str, what: str) -> typer.Typer:
    """A `show` command for one policy; each caller adds its own `update`."""
    app = typer.Typer(help=f"{what}.", no_args_is_help=True)

    @app.command("show", cls=MultiValueCommand, help=f"Show the registry's {key}.")
    def show(registry: Registry = None, resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
             subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
        with arm_session(data_dir, subscription) as arm:
            emit(_policy(arm, registry, resource_group, key), output, query=query)

    config_app.add_typer(app, name=command)
    return app


trust_app = _policy_commands("content-trust", "trustPolicy", "Content trust (Premium)")
retention_app = _policy_commands("retention", "retentionPolicy", "Retention of untagged manifests (Premium)")
soft_delete_app = _policy_commands("soft-delete", "softDeletePolicy", "Soft delete")
quarantine_app = _policy_commands("quarantine", "quarantinePolicy", "Quarantine")
export_app = _policy_commands("export-policy", "exportPolicy", "Exports of artifacts (disabling needs Premium)")


@trust_app.command("update", cls=MultiValueCommand)
def trust_update(status: StatusOption = None, registry: Registry = None, resource_group: ResourceGroup = None,
                 data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
                 query: QueryOption = None) -> None:
    """Enable or disable content trust."""
    change = {**_changes(status), "type": "Notary"}
    with arm_session(data_dir, subscription) as arm:
        emit(_policy(arm, registry, resource_group, "trustPolicy", change), output, query=query)


@retention_app.command("update", cls=MultiValueCommand)
def retention_update(status: StatusOption = None,
                     days: Annotated[int | None, typer.Option(min=0, max=365, help="Days to keep an untagged "
                                                                                   "manifest (0-365).")] = None,
                     policy_type: Annotated[RetentionType, typer.Option("--type", help="What the policy applies "
                                                                                       "to.")]
                     = RetentionType.UntaggedManifests,
                     registry: Registry = None, resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
                     subscription: Subscription = None, output: OutputOption = None,
                     query: QueryOption = None) -> None:
    """Delete untagged manifests after some days (as `az acr config retention update`)."""
    change = _changes(status, days=days)
    with arm_session(data_dir, subscription) as arm:
        emit(_policy(arm, registry, resource_group, "retentionPolicy", change), output, query=query)


@soft_delete_app.command("update", cls=MultiValueCommand)
def soft_delete_update(status: StatusOption = None,
                       days: Annotated[int | None, typer.Option(min=1, max=90, help="Days a deleted artifact can "
                                                                                    "be restored (1-90).")] = None,
                       registry: Registry = None, resource_group: ResourceGroup = None,
                       data_dir: ServerDataDir = None, subscription: Subscription = None,
                       output: OutputOption = None, query: QueryOption = None) -> None:
    """Keep deleted artifacts restorable for some days."""
    change = _changes(status, retentionDays=days)
    with arm_session(data_dir, subscription) as arm:
        emit(_policy(arm, registry, resource_group, "softDeletePolicy", change), output, query=query)


@quarantine_app.command("update", cls=MultiValueCommand)
def quarantine_update(status: StatusOption = None, registry: Registry = None, resource_group: ResourceGroup = None,
                      data_dir: ServerDataDir = None, subscription: Subscription = None,
                      output: OutputOption = None, query: QueryOption = None) -> None:
    """Hold new images in quarantine until they are released."""
    change = _changes(status)
    with arm_session(data_dir, subscription) as arm:
        emit(_policy(arm, registry, resource_group, "quarantinePolicy", change), output, query=query)


@export_app.command("update", cls=MultiValueCommand)
def export_update(status: StatusOption = None, registry: Registry = None, resource_group: ResourceGroup = None,
                  data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
                  query: QueryOption = None) -> None:
    """Allow or forbid exporting artifacts."""
    change = _changes(status)
    with arm_session(data_dir, subscription) as arm:
        emit(_policy(arm, registry, resource_group, "exportPolicy", change), output, query=query)
