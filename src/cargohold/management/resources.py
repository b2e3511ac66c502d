"""Registries as ARM resources: reading, creating and changing them with ACR's rules, and their JSON.

Requests arrive as ARM JSON already parsed into dicts; everything here runs inside one write transaction per
request, so a refused change (a SKU limit, a bad value) leaves nothing half-done.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Row

from cargohold.auth import admin_user, keys, network
from cargohold.auth.scope_maps import ensure_system_scope_maps
from cargohold.auth.tables import network_rules, registry_tokens, scope_maps
from cargohold.db.tables import registries
from cargohold.management import skus
from cargohold.management.arm import PROVIDER, ArmError, invalid, not_found, registry_id
from cargohold.management.fields import boolean, choice, iso, tags_of
from cargohold.kernel.tenancy import REGISTRY_NAME
from cargohold.management.tables import replications, webhooks
from cargohold.kernel.clock import utcnow
from cargohold.security.master_key import Sealer

REGISTRY_TYPE = f"{PROVIDER}/registries"
MAX_IP_RULES = 200
ENABLED, DISABLED = "enabled", "disabled"

DEFAULT_POLICIES: dict[str, dict[str, Any]] = {
    "quarantinePolicy": {"status": DISABLED},
    "trustPolicy": {"type": "Notary", "status": DISABLED},
    "retentionPolicy": {"days": 7, "status": DISABLED},
    "exportPolicy": {"status": ENABLED},
    "azureADAuthenticationAsArmPolicy": {"status": ENABLED},
    "softDeletePolicy": {"retentionDays": 7, "status": DISABLED},
}
"""ACR's defaults for a new registry. `softDeletePolicy` is from ACR's preview API versions; it is kept so
the soft-delete feature has a home, and ignored by clients that do not know it."""

DEFAULT_SETTINGS: dict[str, Any] = {
    "policies": DEFAULT_POLICIES,
    "encryption": {"status": DISABLED},
    "dataEndpointEnabled": False,
    "networkRuleBypassOptions": "AzureServices",
    "networkRuleBypassAllowedForTasks": False,
    "zoneRedundancy": "Disabled",
    "roleAssignmentMode": "LegacyRegistryPermissions",
}


@dataclass(frozen=True)
class Registry:
    """A registry row with everything its ARM JSON shows."""

    id: int
    name: str
    login_server: str
    subscription: str
    resource_group: str
    location: str
    sku: str
    tags: dict[str, str]
    settings: dict[str, Any]
    admin_user_enabled: bool
    anonymous_pull_enabled: bool
    public_network_access: bool
    network_default_action: str
    created_at: datetime

    @property
    def resource_id(self) -> str:
        return registry_id(self.subscription, self.resource_group, self.name)

    @property
    def policies(self) -> dict[str, dict[str, Any]]:
        return {**DEFAULT_POLICIES, **self.settings.get("policies", {})}


def _from_row(row: Row[Any]) -> Registry:
    return Registry(row.id, row.name, row.login_server, row.subscription, row.resource_group, row.location, row.sku,
                    json.loads(row.tags), {**DEFAULT_SETTINGS, **json.loads(row.settings)}, row.admin_user_enabled,
                    row.anonymous_pull_enabled, row.public_network_access, row.network_default_action,
                    row.created_at)


def get_registry(conn: Connection, name: str) -> Registry | None:
    row = conn.execute(select(registries).where(registries.c.name == name.lower())).first()
    return _from_row(row) if row else None


def registry_in(conn: Connection, subscription: str, resource_group: str, name: str) -> Registry:
    """The registry at an ARM path; resource group names compare case-insensitively, as in ARM."""
    found = get_registry(conn, name)
    if found is None or found.subscription != subscription or found.resource_group.lower() != resource_group.lower():
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{REGISTRY_TYPE}/{name}' under resource group '{resource_group}' was not found.")
    return found


def list_registries(conn: Connection, subscription: str, resource_group: str | None = None) -> list[Registry]:
    query = select(registries).where(registries.c.subscription == subscription).order_by(registries.c.name)
    if resource_group is not None:
        query = query.where(func.lower(registries.c.resource_group) == resource_group.lower())
    return [_from_row(row) for row in conn.execute(query)]


def name_status(conn: Connection, name: str) -> dict[str, Any]:
    """ACR's checkNameAvailability answer."""
    if not REGISTRY_NAME.match(name or ""):
        return {"nameAvailable": False, "reason": "Invalid",
                "message": "The registry name must be 5-50 alphanumeric characters."}
    if get_registry(conn, name) is not None:
        return {"nameAvailable": False, "reason": "AlreadyExists",
                "message": f"The registry {name} is already in use."}
    return {"nameAvailable": True}


def create_registry(conn: Connection, sealer: Sealer, subscription: str, resource_group: str, name: str,
                    body: dict[str, Any], domain: str) -> Registry:
    if not REGISTRY_NAME.match(name):
        raise invalid("The registry name must be 5-50 alphanumeric characters.", "InvalidRegistryName")
    if get_registry(conn, name) is not None:
        raise ArmError(409, "AlreadyInUse", f"The registry {name} is already in use.")
    location = body.get("location")
    if not isinstance(location, str) or not location.strip():
        raise invalid("The location of the registry is required.", "LocationRequired")
    sku = _sku_of(body)
    if sku is None:
        raise invalid("The SKU of the registry is required: Basic, Standard or Premium.", "InvalidSku")
    now = utcnow()
    conn.execute(insert(registries).values(
        name=name.lower(), login_server=f"{name}.{domain}".lower(), anonymous_pull_enabled=False,
        admin_user_enabled=False, public_network_access=True, network_default_action="Allow", created_at=now,
        updated_at=now, subscription=subscription, resource_group=resource_group, location=location.strip().lower(),
        sku=sku.name, tags=json.dumps(tags_of(body)), settings="{}"))
    created = get_registry(conn, name)
    assert created is not None
    ensure_system_scope_maps(conn, created.id)
    keys.create_key(conn, sealer, created.id)
    return update_registry(conn, sealer, created, {**body, "sku": None, "tags": None})


def update_registry(conn: Connection, sealer: Sealer, current: Registry, body: dict[str, Any]) -> Registry:
    """Apply an ARM PATCH (or a PUT on an existing registry): only the fields present change. The result is
    checked as a whole against the SKU it ends with."""
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise invalid("properties must be an object")
    if body.get("location") and str(body["location"]).strip().lower() != current.location:
        raise ArmError(409, "InvalidResourceLocation",
                       f"The registry {current.name} already exists in location '{current.location}'.")
    sku = _sku_of(body) if body.get("sku") is not None else skus.SKUS[current.sku]
    if sku is None:
        raise invalid("The SKU must be Basic, Standard or Premium.", "InvalidSku")
    values: dict[str, Any] = {"updated_at": utcnow(), "sku": sku.name}
    if body.get("tags") is not None:
        values["tags"] = json.dumps(tags_of(body))
    settings = dict(current.settings)
    policies = dict(current.policies)
    for key, value in (properties.get("policies") or {}).items():
        policies[key] = _policy(key, value, policies.get(key, {}))
    settings["policies"] = policies
    if "encryption" in properties:
        settings["encryption"] = _encryption(properties["encryption"])
    for key, allowed in (("networkRuleBypassOptions", ("AzureServices", "None")),
                         ("zoneRedundancy", ("Enabled", "Disabled")),
                         ("roleAssignmentMode", ("LegacyRegistryPermissions", "AbacRepositoryPermissions"))):
        if key in properties and properties[key] is not None:
            settings[key] = choice(key, properties[key], allowed)
    for key in ("dataEndpointEnabled", "networkRuleBypassAllowedForTasks"):
        if key in properties and properties[key] is not None:
            settings[key] = boolean(key, properties[key])
    values["settings"] = json.dumps({k: v for k, v in settings.items() if DEFAULT_SETTINGS.get(k) != v})
    if properties.get("anonymousPullEnabled") is not None:
        values["anonymous_pull_enabled"] = boolean("anonymousPullEnabled", properties["anonymousPullEnabled"])
    if properties.get("publicNetworkAccess") is not None:
        values["public_network_access"] = choice("publicNetworkAccess", properties["publicNetworkAccess"],
                                                  ("Enabled", "Disabled")) == "Enabled"
    rule_set = properties.get("networkRuleSet")
    if rule_set is not None:
        values["network_default_action"], allowed_ranges = _network_rule_set(rule_set)
        _replace_ip_rules(conn, current.id, allowed_ranges)
    conn.execute(update(registries).where(registries.c.id == current.id).values(**values))
    if properties.get("adminUserEnabled") is not None:
        admin_user.set_admin_enabled(conn, sealer, current.id, boolean("adminUserEnabled",
                                                                        properties["adminUserEnabled"]))
    changed = get_registry(conn, current.name)
    assert changed is not None
    check_sku_rules(conn, changed)
    return changed


def check_sku_rules(conn: Connection, registry: Registry) -> None:
    """Refuse a registry state its SKU does not allow, with ACR's error codes."""
    sku = skus.SKUS[registry.sku]
    counts = resource_counts(conn, registry.id)
    if counts["webhooks"] > sku.webhooks:
        raise _sku_error("WebhookCountExceedsSkuLimit",
                         f"The registry has {counts['webhooks']} webhooks; the {sku.name} SKU allows {sku.webhooks}.")
    if counts["scopeMaps"] > sku.scope_maps or counts["tokens"] > sku.tokens:
        raise _sku_error("ScopeMapOrTokenCountExceedsSkuLimit",
                         f"The {sku.name} SKU allows {sku.scope_maps} scope maps and {sku.tokens} tokens.")
    if registry.anonymous_pull_enabled and sku.name == "Basic":
        raise _sku_error("AnonymousPullNotSupported",
                         "Anonymous pull is not supported for the SKU Basic; use Standard or Premium.")
    if sku.premium_features:
        return
    if counts["replications"]:
        raise _sku_error("CannotDowngradeWithReplications",
                         f"The registry has {counts['replications']} replications; only the Premium SKU supports "
                         "geo-replication. Delete the replications first.")
    if not registry.public_network_access:
        raise _sku_error("DisablingPublicNetworkAccessNotSupported",
                         f"Disabling public network access is not supported for the SKU {sku.name}.")
    if registry.network_default_action != "Allow" or counts["ipRules"]:
        raise _sku_error("NetworkRuleSetNotSupported",
                         f"Network rules are not supported for the SKU {sku.name}; they need Premium.")
    if registry.settings["encryption"].get("status") == ENABLED:
        raise _sku_error("CustomerManagedKeyNotSupported",
                         f"Encryption with a customer-managed key is not supported for the SKU {sku.name}.")
    policies = registry.policies
    for key, label in (("trustPolicy", "Content trust"), ("retentionPolicy", "The retention policy")):
        if policies[key].get("status") == ENABLED:
            raise _sku_error("PolicyNotSupported", f"{label} is not supported for the SKU {sku.name}.")
    if policies["exportPolicy"].get("status") == DISABLED:
        raise _sku_error("PolicyNotSupported", f"Disabling exports is not supported for the SKU {sku.name}.")
    if registry.settings["zoneRedundancy"] == "Enabled":
        raise _sku_error("ZoneRedundancyNotSupported", f"Zone redundancy is not supported for the SKU {sku.name}.")


def resource_counts(conn: Connection, registry_pk: int) -> dict[str, int]:
    def count(table: Any, *conditions: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(table)
                                .where(table.c.registry_id == registry_pk, *conditions)).scalar_one())

    return {
        "webhooks": count(webhooks),
        "replications": count(replications),
        "scopeMaps": count(scope_maps, scope_maps.c.system.is_(False)),
        "tokens": count(registry_tokens),
        "ipRules": count(network_rules, network_rules.c.kind == network.ALLOW),
    }


def registry_json(conn: Connection, registry: Registry) -> dict[str, Any]:
    rules = [{"action": "Allow", "value": rule["cidr"]} for rule in network.list_rules(conn, registry.id)
             if rule["kind"] == network.ALLOW]
    settings = registry.settings
    return {
        "id": registry.resource_id,
        "name": registry.name,
        "type": REGISTRY_TYPE,
        "location": registry.location,
        "tags": registry.tags,
        "sku": {"name": registry.sku, "tier": registry.sku},
        "properties": {
            "loginServer": registry.login_server,
            "creationDate": iso(registry.created_at),
            "provisioningState": "Succeeded",
            "adminUserEnabled": registry.admin_user_enabled,
            "networkRuleSet": {"defaultAction": registry.network_default_action, "ipRules": rules},
            "policies": registry.policies,
            "encryption": settings["encryption"],
            "dataEndpointEnabled": settings["dataEndpointEnabled"],
            "dataEndpointHostNames": [],
            "privateEndpointConnections": [],
            "publicNetworkAccess": "Enabled" if registry.public_network_access else "Disabled",
            "networkRuleBypassOptions": settings["networkRuleBypassOptions"],
            "networkRuleBypassAllowedForTasks": settings["networkRuleBypassAllowedForTasks"],
            "zoneRedundancy": settings["zoneRedundancy"],
            "anonymousPullEnabled": registry.anonymous_pull_enabled,
            "roleAssignmentMode": settings["roleAssignmentMode"],
        },
    }




def _sku_error(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def _sku_of(body: dict[str, Any]) -> skus.Sku | None:
    sku = body.get("sku")
    name = sku.get("name") if isinstance(sku, dict) else None
    return skus.sku_named(name) if isinstance(name, str) else None








def _status(name: str, value: Any) -> str:
    return choice(f"{name}.status", value, (ENABLED, DISABLED))


def _policy(key: str, value: Any, current: dict[str, Any]) -> dict[str, Any]:
    if key not in DEFAULT_POLICIES:
        raise invalid(f"unknown policy {key!r}; policies are {', '.join(DEFAULT_POLICIES)}")
    if not isinstance(value, dict):
        raise invalid(f"{key} must be an object")
    merged = {**current}
    if value.get("status") is not None:
        merged["status"] = _status(key, value["status"])
    if key == "trustPolicy" and value.get("type") is not None:
        merged["type"] = choice("trustPolicy.type", value["type"], ("Notary",))
    if key == "retentionPolicy" and value.get("days") is not None:
        merged["days"] = _days("retentionPolicy.days", value["days"], 0, 365)
    if key == "retentionPolicy":
        merged["lastUpdatedTime"] = iso(utcnow())
    if key == "softDeletePolicy" and value.get("retentionDays") is not None:
        merged["retentionDays"] = _days("softDeletePolicy.retentionDays", value["retentionDays"], 1, 90)
    if key == "softDeletePolicy":
        merged["lastUpdatedTime"] = iso(utcnow())
    return merged


def _days(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(f"{name} must be a whole number of days from {low} to {high}")
    return value


def _encryption(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("encryption must be an object")
    status = _status("encryption", value.get("status", DISABLED))
    if status == DISABLED:
        return {"status": DISABLED}
    return {"status": ENABLED, "keyVaultProperties": value.get("keyVaultProperties") or {}}


def _network_rule_set(value: Any) -> tuple[str, list[str]]:
    if not isinstance(value, dict):
        raise invalid("networkRuleSet must be an object")
    action = choice("networkRuleSet.defaultAction", value.get("defaultAction", "Allow"), ("Allow", "Deny"))
    rules = value.get("ipRules") or []
    if not isinstance(rules, list) or len(rules) > MAX_IP_RULES:
        raise invalid(f"networkRuleSet.ipRules must be a list of at most {MAX_IP_RULES} rules")
    ranges = []
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("action", "Allow") != "Allow":
            raise invalid("each IP rule is {\"action\": \"Allow\", \"value\": \"<address or CIDR>\"}")
        try:
            ranges.append(str(ipaddress.ip_network(str(rule.get("value", "")).strip(), strict=False)))
        except ValueError:
            raise invalid(f"{str(rule.get('value'))[:60]!r} is not an IP address or CIDR range") from None
    return action, sorted(set(ranges))


def _replace_ip_rules(conn: Connection, registry_pk: int, ranges: list[str]) -> None:
    present = {rule["cidr"] for rule in network.list_rules(conn, registry_pk) if rule["kind"] == network.ALLOW}
    for cidr in present - set(ranges):
        network.remove_rule(conn, registry_pk, network.ALLOW, cidr)
    for cidr in set(ranges) - present:
        network.add_rule(conn, registry_pk, network.ALLOW, cidr)


def not_found_registry(name: str) -> ArmError:
    return not_found("registry", name)
