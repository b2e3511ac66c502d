"""Webhooks as ARM resources: configuration only. Delivering events is the webhook feature's job."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from cargohold.jobs.queue import cancel_jobs
from cargohold.kernel.egress import EgressPolicy, EgressRefused
from cargohold.management import skus
from cargohold.management.arm import ArmError, invalid, not_found
from cargohold.management.fields import tags_of
from cargohold.management.resources import REGISTRY_TYPE, Registry
from cargohold.management.tables import webhooks
from cargohold.kernel.clock import utcnow
from cargohold.security.master_key import Sealer

WEBHOOK_TYPE = f"{REGISTRY_TYPE}/webhooks"
ACTIONS = ("push", "delete", "quarantine", "chart_push", "chart_delete")
WEBHOOK_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
MAX_HEADERS = 30


@dataclass(frozen=True)
class Webhook:
    id: int
    name: str
    location: str
    actions: list[str]
    scope: str
    status: str
    tags: dict[str, str]


@dataclass(frozen=True)
class Callback:
    service_uri: str
    custom_headers: dict[str, str]


def _from_row(row: Row[Any]) -> Webhook:
    return Webhook(row.id, row.name, row.location, json.loads(row.actions), row.scope, row.status,
                   json.loads(row.tags))


def list_webhooks(conn: Connection, registry: Registry) -> list[Webhook]:
    rows = conn.execute(select(webhooks).where(webhooks.c.registry_id == registry.id).order_by(webhooks.c.name))
    return [_from_row(row) for row in rows]


def get_webhook(conn: Connection, registry: Registry, name: str) -> Webhook:
    row = conn.execute(select(webhooks).where(webhooks.c.registry_id == registry.id,
                                              func.lower(webhooks.c.name) == name.lower())).first()
    if row is None:
        raise not_found("webhook", name)
    return _from_row(row)


def callback_config(conn: Connection, sealer: Sealer, registry: Registry, name: str) -> Callback:
    hook = get_webhook(conn, registry, name)
    sealed = conn.execute(select(webhooks.c.callback_sealed).where(webhooks.c.id == hook.id)).scalar_one()
    document = json.loads(sealer.unseal(sealed))
    return Callback(document["serviceUri"], document["customHeaders"])


def put_webhook(conn: Connection, sealer: Sealer, registry: Registry, name: str,
                body: dict[str, Any], *, egress: EgressPolicy) -> tuple[Webhook, bool]:
    """Create a webhook, or change it when it exists (ARM PUT). Returns the webhook and whether it is new."""
    try:
        get_webhook(conn, registry, name)
    except ArmError:
        return create_webhook(conn, sealer, registry, name, body, egress=egress), True
    return update_webhook(conn, sealer, registry, name, body, egress=egress), False


def create_webhook(conn: Connection, sealer: Sealer, registry: Registry, name: str, body: dict[str, Any], *,
                   egress: EgressPolicy) -> Webhook:
    if not WEBHOOK_NAME.match(name):
        raise invalid("Webhook names are 5-50 alphanumeric characters.", "InvalidWebhookName")
    sku = skus.SKUS[registry.sku]
    count = conn.execute(select(func.count()).select_from(webhooks)
                         .where(webhooks.c.registry_id == registry.id)).scalar_one()
    if count >= sku.webhooks:
        raise ArmError(409, "QuotaExceeded", f"The registry {registry.name} already has {count} webhooks, the "
                       f"most the {sku.name} SKU allows.")
    properties = _properties(body)
    service_uri = _service_uri(properties.get("serviceUri"))
    _check_outbound(egress, service_uri)
    location = str(body.get("location") or registry.location).strip().lower()
    conn.execute(insert(webhooks).values(
        registry_id=registry.id, name=name, location=location,
        callback_sealed=_seal(sealer, service_uri, _headers(properties.get("customHeaders") or {})),
        actions=json.dumps(_actions(properties.get("actions"))), scope=_scope(properties.get("scope") or ""),
        status=_status(properties.get("status") or "enabled"), tags=json.dumps(tags_of(body)),
        created_at=utcnow()))
    return get_webhook(conn, registry, name)


def update_webhook(conn: Connection, sealer: Sealer, registry: Registry, name: str, body: dict[str, Any], *,
                   egress: EgressPolicy) -> Webhook:
    current = get_webhook(conn, registry, name)
    properties = _properties(body)
    values: dict[str, Any] = {}
    if properties.get("actions") is not None:
        values["actions"] = json.dumps(_actions(properties["actions"]))
    if properties.get("scope") is not None:
        values["scope"] = _scope(properties["scope"])
    if properties.get("status") is not None:
        values["status"] = _status(properties["status"])
    if body.get("tags") is not None:
        values["tags"] = json.dumps(tags_of(body))
    if properties.get("serviceUri") is not None or properties.get("customHeaders") is not None:
        callback = callback_config(conn, sealer, registry, name)
        service_uri = (_service_uri(properties["serviceUri"]) if properties.get("serviceUri") is not None
                       else callback.service_uri)
        if properties.get("serviceUri") is not None:
            _check_outbound(egress, service_uri)
        headers = (_headers(properties["customHeaders"]) if properties.get("customHeaders") is not None
                   else callback.custom_headers)
        values["callback_sealed"] = _seal(sealer, service_uri, headers)
    if values:
        conn.execute(update(webhooks).where(webhooks.c.id == current.id).values(**values))
    return get_webhook(conn, registry, name)


def delete_webhook(conn: Connection, registry: Registry, name: str) -> bool:
    """Delete the webhook and the deliveries still owed to it."""
    try:
        hook = get_webhook(conn, registry, name)
    except ArmError:
        return False
    cancel_jobs(conn, f"webhook:{hook.id}")
    conn.execute(delete(webhooks).where(webhooks.c.id == hook.id))
    return True


def webhook_json(registry: Registry, hook: Webhook) -> dict[str, Any]:
    return {
        "id": f"{registry.resource_id}/webhooks/{hook.name}",
        "name": hook.name,
        "type": WEBHOOK_TYPE,
        "location": hook.location,
        "tags": hook.tags,
        "properties": {"status": hook.status, "scope": hook.scope, "actions": hook.actions,
                       "provisioningState": "Succeeded"},
    }


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise invalid("properties must be an object")
    return properties


def _seal(sealer: Sealer, service_uri: str, headers: dict[str, str]) -> bytes:
    return sealer.seal(json.dumps({"serviceUri": service_uri, "customHeaders": headers}).encode())


MAX_URI = 2048
FORBIDDEN_HEADERS = frozenset({"connection", "content-length", "expect", "host", "keep-alive", "te", "trailer",
                               "transfer-encoding", "upgrade"})
"""Hop-by-hop and framing headers: the delivery's HTTP client sets these itself, and a webhook's own value
would frame the request wrongly (the event left on the connection as a second request). `Proxy-*` too."""
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]{0,4096}")
"""Visible ASCII, spaces and tabs: no line breaks or other control characters, nothing a client must encode."""


def forbidden_header(name: str) -> bool:
    return name.lower() in FORBIDDEN_HEADERS or name.lower().startswith("proxy-")


def _service_uri(value: Any) -> str:
    """An absolute http(s) URL as it will be requested: no whitespace or control characters anywhere, a host,
    a valid port, and parseable by the client that delivers it."""
    if not isinstance(value, str):
        raise invalid("serviceUri is required: the http(s) address events are posted to", "InvalidServiceUri")
    uri = value
    try:
        if len(uri) > MAX_URI or not uri.isascii() or any(c.isspace() or not c.isprintable() for c in uri):
            raise ValueError("whitespace or control characters")
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port == 0:  # .port checks its range
            raise ValueError("not absolute http(s)")
        httpx.URL(uri)
    except (ValueError, httpx.InvalidURL):
        raise invalid("serviceUri must be an absolute http or https URL of at most 2048 printable ASCII "
                      "characters, without spaces", "InvalidServiceUri") from None
    return uri


def _check_outbound(egress: EgressPolicy, service_uri: str) -> None:
    """Refuse now what the outbound policy would refuse at every delivery, as far as the URL shows it
    (a literal address or a loopback or metadata name); a name is checked again at each delivery."""
    try:
        egress.check_url(service_uri)
    except ValueError:
        raise invalid("serviceUri must be an absolute http or https URL", "InvalidServiceUri") from None
    except EgressRefused as exc:
        raise invalid(f"serviceUri: {exc}", "InvalidServiceUri") from None


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_HEADERS or not all(
            isinstance(k, str) and isinstance(v, str) and _HEADER_NAME.fullmatch(k) and _HEADER_VALUE.fullmatch(v)
            for k, v in value.items()):
        raise invalid("customHeaders must map header names to single-line string values of printable ASCII",
                      "InvalidCustomHeaders")
    refused = sorted(k for k in value if forbidden_header(k))
    if refused:
        raise invalid(f"customHeaders may not set {', '.join(refused)}: hop-by-hop and framing headers are set "
                      "by the delivery itself", "InvalidCustomHeaders")
    return dict(value)


def _actions(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a in ACTIONS for a in value):
        raise invalid(f"actions must be a non-empty list of {', '.join(ACTIONS)}", "InvalidWebhookAction")
    return sorted(set(value), key=ACTIONS.index)


def _scope(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 300 or any(c.isspace() for c in value):
        raise invalid("scope is 'repository:tag', with * as a wildcard, or empty for every event",
                      "InvalidWebhookScope")
    return value


def _status(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in ("enabled", "disabled"):
        raise invalid("status must be enabled or disabled")
    return value.lower()
