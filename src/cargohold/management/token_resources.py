"""Scope maps and tokens as ARM resources, over the auth feature's own functions, with ACR's SKU limits."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cargohold.auth import registry_tokens, scope_maps
from cargohold.auth.tables import registry_tokens as token_table
from cargohold.auth.tables import scope_maps as scope_map_table
from cargohold.management import skus
from cargohold.management.arm import ArmError, invalid, not_found
from cargohold.management.fields import choice, iso
from cargohold.management.resources import REGISTRY_TYPE, Registry

SCOPE_MAP_TYPE = f"{REGISTRY_TYPE}/scopeMaps"
TOKEN_TYPE = f"{REGISTRY_TYPE}/tokens"
NAME = re.compile(r"^[a-zA-Z0-9_-]{5,50}$")
"""ACR's rule for scope map and token names."""
SLOT_NAMES = {"password1": "password1", "password2": "password2"}


def scope_map_json(registry: Registry, mapping: scope_maps.ScopeMap, created: datetime) -> dict[str, Any]:
    return {
        "id": f"{registry.resource_id}/scopeMaps/{mapping.name}",
        "name": mapping.name,
        "type": SCOPE_MAP_TYPE,
        "properties": {
            "description": mapping.description,
            "type": "SystemDefined" if mapping.system else "UserDefined",
            "creationDate": iso(created),
            "provisioningState": "Succeeded",
            "actions": mapping.actions,
        },
    }


def scope_map_created(conn: Connection, mapping: scope_maps.ScopeMap) -> datetime:
    return conn.execute(select(scope_map_table.c.created_at).where(scope_map_table.c.id == mapping.id)).scalar_one()


def get_scope_map(conn: Connection, registry: Registry, name: str) -> scope_maps.ScopeMap:
    try:
        return scope_maps.get_scope_map(conn, registry.id, name)
    except LookupError:
        raise not_found("scope map", name) from None


def put_scope_map(conn: Connection, registry: Registry, name: str,
                  body: dict[str, Any]) -> tuple[scope_maps.ScopeMap, bool]:
    properties = _properties(body)
    try:
        current = scope_maps.get_scope_map(conn, registry.id, name)
    except LookupError:
        return _create_scope_map(conn, registry, name, properties), True
    return _change_scope_map(conn, registry, current, properties), False


def update_scope_map(conn: Connection, registry: Registry, name: str, body: dict[str, Any]) -> scope_maps.ScopeMap:
    return _change_scope_map(conn, registry, get_scope_map(conn, registry, name), _properties(body))


def _create_scope_map(conn: Connection, registry: Registry, name: str,
                      properties: dict[str, Any]) -> scope_maps.ScopeMap:
    if not NAME.match(name) or name.startswith("_"):
        raise invalid("Scope map names are 5-50 letters, digits, '-' or '_', not starting with '_'.",
                      "InvalidScopeMapName")
    limit = skus.SKUS[registry.sku].scope_maps
    count = conn.execute(select(func.count()).select_from(scope_map_table).where(
        scope_map_table.c.registry_id == registry.id, scope_map_table.c.system.is_(False))).scalar_one()
    if count >= limit:
        raise ArmError(409, "QuotaExceeded",
                       f"The registry already has {count} scope maps, the most the {registry.sku} SKU allows.")
    try:
        return scope_maps.create_scope_map(conn, registry.id, name, _actions(properties),
                                           _description(properties))
    except ValueError as exc:
        raise invalid(str(exc), "InvalidScopeMapActions") from None


def _change_scope_map(conn: Connection, registry: Registry, current: scope_maps.ScopeMap,
                      properties: dict[str, Any]) -> scope_maps.ScopeMap:
    if current.system:
        raise ArmError(400, "SystemScopeMapCannotBeChanged", f"The scope map {current.name} is defined by the system.")
    wanted = _actions(properties) if properties.get("actions") is not None else current.actions
    try:
        return scope_maps.update_scope_map(conn, registry.id, current.name, add=wanted,
                                           remove=sorted(set(current.actions) - set(wanted)),
                                           description=_description(properties))
    except ValueError as exc:
        raise invalid(str(exc), "InvalidScopeMapActions") from None


def delete_scope_map(conn: Connection, registry: Registry, name: str) -> bool:
    try:
        scope_maps.delete_scope_map(conn, registry.id, name)
    except LookupError:
        return False
    except ValueError as exc:
        raise ArmError(409, "ScopeMapInUse" if "used by" in str(exc) else "SystemScopeMapCannotBeChanged",
                       str(exc)) from None
    return True


def token_json(registry: Registry, token: registry_tokens.TokenInfo,
               passwords: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": f"{registry.resource_id}/tokens/{token.name}",
        "name": token.name,
        "type": TOKEN_TYPE,
        "properties": {
            "creationDate": iso(token.created_at),
            "provisioningState": "Succeeded",
            "scopeMapId": f"{registry.resource_id}/scopeMaps/{token.scope_map}",
            "status": "enabled" if token.enabled else "disabled",
            "credentials": {"certificates": [], "passwords": passwords if passwords is not None else [
                _password_json(p) for p in token.passwords]},
        },
    }


def _password_json(password: dict[str, Any]) -> dict[str, Any]:
    shown = {"name": password["name"], "creationTime": iso(password["created"])}
    if password.get("expiry") is not None:
        shown["expiry"] = iso(password["expiry"])
    if password.get("value") is not None:
        shown["value"] = password["value"]
    return shown


def get_token(conn: Connection, registry: Registry, name: str) -> registry_tokens.TokenInfo:
    try:
        return registry_tokens.get_token(conn, registry.id, name)
    except LookupError:
        raise not_found("token", name) from None


def put_token(conn: Connection, registry: Registry, name: str,
              body: dict[str, Any]) -> tuple[registry_tokens.TokenInfo, bool]:
    properties = _properties(body)
    try:
        registry_tokens.get_token(conn, registry.id, name)
    except LookupError:
        return _create_token(conn, registry, name, properties), True
    return update_token(conn, registry, name, body), False


def _create_token(conn: Connection, registry: Registry, name: str,
                  properties: dict[str, Any]) -> registry_tokens.TokenInfo:
    if not NAME.match(name):
        raise invalid("Token names are 5-50 letters, digits, '-' or '_'.", "InvalidTokenName")
    limit = skus.SKUS[registry.sku].tokens
    count = conn.execute(select(func.count()).select_from(token_table)
                         .where(token_table.c.registry_id == registry.id)).scalar_one()
    if count >= limit:
        raise ArmError(409, "QuotaExceeded",
                       f"The registry already has {count} tokens, the most the {registry.sku} SKU allows.")
    scope_map = _scope_map_name(registry, properties.get("scopeMapId"))
    get_scope_map(conn, registry, scope_map)
    registry_tokens.create_token(conn, registry.id, name, scope_map)
    if properties.get("status") is not None:
        return update_token(conn, registry, name, {"properties": {"status": properties["status"]}})
    return registry_tokens.get_token(conn, registry.id, name)


def update_token(conn: Connection, registry: Registry, name: str, body: dict[str, Any]) -> registry_tokens.TokenInfo:
    properties = _properties(body)
    get_token(conn, registry, name)
    enabled = None
    if properties.get("status") is not None:
        enabled = choice("status", properties["status"], ("enabled", "disabled")) == "enabled"
    scope_map = None
    if properties.get("scopeMapId") is not None:
        scope_map = _scope_map_name(registry, properties["scopeMapId"])
        get_scope_map(conn, registry, scope_map)
    return registry_tokens.update_token(conn, registry.id, name, enabled=enabled, scope_map=scope_map)


def delete_token(conn: Connection, registry: Registry, name: str) -> bool:
    try:
        registry_tokens.delete_token(conn, registry.id, name)
    except LookupError:
        return False
    return True


def generate_credentials(conn: Connection, registry: Registry, body: dict[str, Any]) -> dict[str, Any]:
    """ACR's generateCredentials: new passwords for a token (both, or the one named), shown once."""
    token_id = body.get("tokenId")
    prefix = f"{registry.resource_id}/tokens/"
    if not isinstance(token_id, str) or not token_id.lower().startswith(prefix.lower()):
        raise invalid(f"tokenId must be the resource id of one of this registry's tokens ({prefix}<name>)")
    token = get_token(conn, registry, token_id[len(prefix):])
    expiry = _expiry(body.get("expiry"))
    slots = [SLOT_NAMES[body["name"]]] if body.get("name") in SLOT_NAMES else list(SLOT_NAMES.values())
    if body.get("name") is not None and body["name"] not in SLOT_NAMES:
        raise invalid("name must be password1 or password2")
    passwords = []
    for slot in slots:
        value = registry_tokens.generate_password(conn, registry.id, token.name, slot, expiry)
        created = next(p["created"] for p in registry_tokens.get_token(conn, registry.id, token.name).passwords
                       if p["name"] == slot)
        passwords.append(_password_json({"name": slot, "created": created, "expiry": expiry, "value": value}))
    return {"username": token.name, "passwords": passwords}


def _expiry(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid("expiry must be an ISO 8601 date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _scope_map_name(registry: Registry, scope_map_id: Any) -> str:
    prefix = f"{registry.resource_id}/scopeMaps/"
    if not isinstance(scope_map_id, str) or not scope_map_id.lower().startswith(prefix.lower()):
        raise invalid(f"scopeMapId must be the resource id of one of this registry's scope maps ({prefix}<name>)",
                      "InvalidScopeMapId")
    return scope_map_id[len(prefix):]


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise invalid("properties must be an object")
    return properties


def _actions(properties: dict[str, Any]) -> list[str]:
    actions = properties.get("actions")
    if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
        raise invalid("actions must be a non-empty list such as 'repositories/app/content/read'",
                      "InvalidScopeMapActions")
    return actions


def _description(properties: dict[str, Any]) -> str | None:
    description = properties.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 256):
        raise invalid("description must be a string of at most 256 characters")
    return description
