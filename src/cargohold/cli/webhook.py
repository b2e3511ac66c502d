"""`cargohold webhook create | list | show | update | delete | get-config | ping | list-events`, as
`az acr webhook`: -n names the webhook, -r the registry."""

from __future__ import annotations

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
    Status,
    Subscription,
    Tags,
    parse_pairs,
)

webhook_app = typer.Typer(help="Webhooks: HTTP calls on pushes and deletes.", no_args_is_help=True)

WebhookName = Annotated[str, typer.Option("--name", "-n", help="Webhook name: 5-50 alphanumerics.")]
Uri = Annotated[str | None, typer.Option("--uri", help="Service URI events are posted to.")]
Scope = Annotated[str | None, typer.Option(help="repository:tag the webhook fires for; * wildcards; empty for all.")]
Headers = Annotated[list[str] | None, typer.Option("--headers", help="Space-separated KEY=VALUE headers sent with "
                                                                     "each event.")]
StatusOption = Annotated[Status | None, typer.Option(case_sensitive=False, help="enabled or disabled")]


class Action(str, Enum):
    push = "push"
    delete = "delete"
    quarantine = "quarantine"
    chart_push = "chart_push"
    chart_delete = "chart_delete"


Actions = Annotated[list[Action] | None, typer.Option(help="Space-separated: push delete quarantine chart_push "
                                                           "chart_delete.")]


def webhook_rows(value: Any) -> list[dict[str, Any]]:
    return [{"name": hook.get("name"), "location": hook.get("location"),
             "status": (hook.get("properties") or {}).get("status"),
             "scope": (hook.get("properties") or {}).get("scope"),
             "actions": (hook.get("properties") or {}).get("actions")}
            for hook in (value if isinstance(value, list) else [value])]


def _properties(uri: str | None, actions: list[Action] | None, scope: str | None, headers: list[str] | None,
                status: Status | None) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if uri is not None:
        properties["serviceUri"] = uri
    if actions:
        properties["actions"] = [a.value for a in actions]
    if scope is not None:
        properties["scope"] = scope
    if headers is not None:
        properties["customHeaders"] = parse_pairs(headers, "--headers")
    if status is not None:
        properties["status"] = status.value
    return properties


@webhook_app.command("create", cls=MultiValueCommand)
def create(name: WebhookName,
           uri: Annotated[str, typer.Option("--uri", help="Service URI events are posted to.")],
           actions: Annotated[list[Action], typer.Option(help="Space-separated: push delete quarantine "
                                                              "chart_push chart_delete.")],
           registry: RegistryOption = None, resource_group: ResourceGroup = None, scope: Scope = None,
           headers: Headers = None, status: StatusOption = Status.enabled,
           location: Annotated[str | None, typer.Option("--location", "-l", help="Default: the registry's.")]
           = None,
           tags: Tags = None, data_dir: ServerDataDir = None, subscription: Subscription = None,
           output: OutputOption = None, query: QueryOption = None) -> None:
    """Create a webhook (as `az acr webhook create -n hook -r registry --uri URL --actions push`)."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        body: dict[str, Any] = {"location": location or found.get("location"),
                                "properties": _properties(uri, actions, scope, headers, status)}
        if tags is not None:
            body["tags"] = parse_pairs(tags, "--tags")
        emit(with_resource_group(arm.put(f"{found['id']}/webhooks/{name}", body)), output, query=query,
             view=webhook_rows)


@webhook_app.command("list", cls=MultiValueCommand)
def list_webhooks(registry: RegistryOption = None, resource_group: ResourceGroup = None,
                  data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
                  query: QueryOption = None) -> None:
    """List a registry's webhooks."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit([with_resource_group(h) for h in arm.list(f"{found['id']}/webhooks")], output, query=query,
             view=webhook_rows)


@webhook_app.command("show", cls=MultiValueCommand)
def show(name: WebhookName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
         data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
         query: QueryOption = None) -> None:
    """Show a webhook."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.get(f"{found['id']}/webhooks/{name}")), output, query=query,
             view=webhook_rows)


@webhook_app.command("update", cls=MultiValueCommand)
def update(name: WebhookName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
           uri: Uri = None, actions: Actions = None, scope: Scope = None, headers: Headers = None,
           status: StatusOption = None, tags: Tags = None, data_dir: ServerDataDir = None,
           subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Change a webhook: only the options given change."""
    body: dict[str, Any] = {"properties": _properties(uri, actions, scope, headers, status)}
    if tags is not None:
        body["tags"] = parse_pairs(tags, "--tags")
    if not body["properties"] and "tags" not in body:
        raise typer.BadParameter("give --uri, --actions, --scope, --headers, --status or --tags")
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.patch(f"{found['id']}/webhooks/{name}", body)), output, query=query,
             view=webhook_rows)


@webhook_app.command("delete", cls=MultiValueCommand)
def delete(name: WebhookName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
           data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
           query: QueryOption = None) -> None:
    """Delete a webhook. Prints nothing, as az does; -o and --query are accepted like everywhere."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        arm.delete(f"{found['id']}/webhooks/{name}")


@webhook_app.command("get-config", cls=MultiValueCommand)
def get_config(name: WebhookName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
               data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
               query: QueryOption = None) -> None:
    """Show where a webhook posts and the headers it sends (they may hold secrets)."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        config = arm.post(f"{found['id']}/webhooks/{name}/getCallbackConfig")
        emit(config, output, ["serviceUri", "customHeaders"], query=query)


@webhook_app.command("ping", cls=MultiValueCommand)
def ping(name: WebhookName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
         data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
         query: QueryOption = None) -> None:
    """Send the webhook a `ping` event; `list-events` shows how it answered."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(arm.post(f"{found['id']}/webhooks/{name}/ping"), output, ["id"], query=query)


@webhook_app.command("list-events", cls=MultiValueCommand)
def list_events(name: WebhookName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
                data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
                query: QueryOption = None) -> None:
    """Delivery history, newest first: every attempt with the request sent and the response received."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        page = arm.post(f"{found['id']}/webhooks/{name}/listEvents")
        attempts = list(page.get("value") or [])
        while page.get("nextLink"):
            page = arm.get(page["nextLink"])
            attempts += page.get("value") or []
        if output is not None and output.value == "json" or query:
            emit(attempts, output, query=query)
            return
        emit([_event_row(a) for a in attempts], output,
             ["id", "action", "attempt", "statusCode", "reasonPhrase", "timestamp"])


def _event_row(attempt: dict[str, Any]) -> dict[str, Any]:
    request, response = attempt.get("eventRequestMessage") or {}, attempt.get("eventResponseMessage") or {}
    content = request.get("content") or {}
    return {"id": attempt.get("id"), "action": content.get("action"), "attempt": attempt.get("attempt"),
            "statusCode": response.get("statusCode"), "reasonPhrase": response.get("reasonPhrase"),
            "timestamp": attempt.get("timestamp")}
