"""The request bodies of the management API as JSON Schemas, and the one check every handler runs on its body.

The shapes follow the published API definition of Microsoft.ContainerRegistry (api-version 2025-11-01): which
fields exist, their types, enumerations and what is required. As in ARM, objects stay open (a client may echo
read-only fields from a GET, or send fields of a newer API version), and an optional field may be `null`,
meaning "not given". Limits that keep a value storable (lengths, no control characters) are ours.

A refused body answers 400 naming the field (`properties.policies must be an object`), with the code the field
declares in `x-code` (`InvalidServiceUri`…) or else `InvalidParameter`. The resource modules keep the checks a
schema cannot make (SKU rules, resource ids, names in paths).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from cargohold.management.arm import ArmError

Schema = dict[str, Any]

_SINGLE_LINE = r"^[^\x00-\x1f\x7f]*$"
_NO_NUL = r"^[^\x00]*$"


def _text(max_length: int, *, lines: bool = False, min_length: int = 0, code: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "maxLength": max_length, "pattern": _NO_NUL if lines else _SINGLE_LINE}
    if min_length:
        schema["minLength"] = min_length
    if code:
        schema["x-code"] = code
    return schema


def _choice(*values: str, code: str | None = None) -> Schema:
    """An enumeration; ARM compares these case-insensitively."""
    schema: Schema = {"type": "string", "pattern": f"^(?i:{'|'.join(values)})$", "x-choices": list(values)}
    if code:
        schema["x-code"] = code
    return schema


def _object(properties: dict[str, Schema], required: Iterable[str] = (), **extra: Any) -> Schema:
    required = list(required)
    shown = {name: schema if name in required else _nullable(schema) for name, schema in properties.items()}
    return {"type": "object", "properties": shown, "required": required, **extra}


def _nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if kind is None or kind == "null":
        return schema
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def _list(items: Schema, max_items: int, **extra: Any) -> Schema:
    return {"type": "array", "items": items, "maxItems": max_items, **extra}


def _status() -> Schema:
    return _choice("enabled", "disabled")


def _map(values: Schema, max_properties: int, code: str | None = None) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": values, "maxProperties": max_properties}
    if code:
        schema["x-code"] = code
    return schema


LOCATION = _text(64, min_length=1, code="LocationRequired")
TAGS = {**_map(_text(256, lines=True, code="InvalidTag"), 50, code="InvalidTag"),
        "propertyNames": _text(512, lines=True, min_length=1, code="InvalidTag")}
RESOURCE_ID = _text(1024)
DAYS = {"type": "integer"}
IDENTITY = _object({"type": _text(64), "userAssignedIdentities": {"type": "object", "maxProperties": 64}})

SKU = _object({"name": _choice("Classic", "Basic", "Standard", "Premium", code="InvalidSku")}, ["name"],
              **{"x-code": "InvalidSku"})

POLICIES = _object({
    "quarantinePolicy": _object({"status": _status()}),
    "trustPolicy": _object({"type": _choice("Notary"), "status": _status()}),
    "retentionPolicy": _object({"days": DAYS, "status": _status()}),
    "exportPolicy": _object({"status": _status()}),
    "azureADAuthenticationAsArmPolicy": _object({"status": _status()}),
    "softDeletePolicy": _object({"retentionDays": DAYS, "status": _status()}),
})

ENCRYPTION = _object({
    "status": _status(),
    "keyVaultProperties": _object({"keyIdentifier": _text(1024), "identity": _text(256)}),
})

NETWORK_RULE_SET = _object({
    "defaultAction": _choice("Allow", "Deny"),
    "ipRules": _list(_object({"action": _choice("Allow"), "value": _text(64)}, ["value"]), 200),
})

_REGISTRY_SETTINGS: dict[str, Schema] = {
    "adminUserEnabled": {"type": "boolean"},
    "networkRuleSet": NETWORK_RULE_SET,
    "policies": POLICIES,
    "encryption": ENCRYPTION,
    "dataEndpointEnabled": {"type": "boolean"},
    "publicNetworkAccess": _choice("Enabled", "Disabled"),
    "networkRuleBypassOptions": _choice("AzureServices", "None"),
    "networkRuleBypassAllowedForTasks": {"type": "boolean"},
    "anonymousPullEnabled": {"type": "boolean"},
    "roleAssignmentMode": _choice("LegacyRegistryPermissions", "AbacRepositoryPermissions"),
}

REGISTRY = _object({
    "location": LOCATION,
    "tags": TAGS,
    "sku": SKU,
    "identity": IDENTITY,
    "properties": _object({**_REGISTRY_SETTINGS, "zoneRedundancy": _choice("Enabled", "Disabled")}),
}, ["location", "sku"])
"""PUT of a registry (`Registry`): the whole resource, so location and SKU are required."""

REGISTRY_UPDATE = _object({
    "location": LOCATION,
    "tags": TAGS,
    "sku": SKU,
    "identity": IDENTITY,
    "properties": _object({**_REGISTRY_SETTINGS, "zoneRedundancy": _choice("Enabled", "Disabled")}),
})
"""PATCH of a registry (`RegistryUpdateParameters`). `location` is not part of it, but a client that sends the
resource's own location back is answered by the registry's rules, not by a schema error."""

REPLICATION = _object({
    "location": LOCATION,
    "tags": TAGS,
    "properties": _object({"regionEndpointEnabled": {"type": "boolean"},
                           "zoneRedundancy": _choice("Enabled", "Disabled")}),
}, ["location"])

REPLICATION_UPDATE = _object({
    "location": LOCATION,
    "tags": TAGS,
    "properties": _object({"regionEndpointEnabled": {"type": "boolean"}}),
})

_WEBHOOK_FIELDS: dict[str, Schema] = {
    "serviceUri": _text(2048, code="InvalidServiceUri"),
    "customHeaders": _map({"type": "string", "maxLength": 4096}, 30, code="InvalidCustomHeaders"),
    "status": _status(),
    "scope": _text(300, code="InvalidWebhookScope"),
    "actions": _list(_choice("push", "delete", "quarantine", "chart_push", "chart_delete",
                             code="InvalidWebhookAction"), 5, minItems=1, **{"x-code": "InvalidWebhookAction"}),
}

WEBHOOK = _object({
    "location": LOCATION,
    "tags": TAGS,
    "properties": _object(_WEBHOOK_FIELDS, ["serviceUri", "actions"]),
}, ["properties"])
"""PUT of a webhook (`WebhookCreateParameters`). The location may be left out: it defaults to the registry's."""

WEBHOOK_UPDATE = _object({
    "location": LOCATION,
    "tags": TAGS,
    "properties": _object(_WEBHOOK_FIELDS),
})

_SCOPE_MAP_FIELDS: dict[str, Schema] = {
    "description": _text(256, lines=True),
    "actions": _list(_text(1024, min_length=1, code="InvalidScopeMapActions"), 500, minItems=1,
                     **{"x-code": "InvalidScopeMapActions"}),
}

SCOPE_MAP = _object({"properties": _object(_SCOPE_MAP_FIELDS, ["actions"])}, ["properties"])
SCOPE_MAP_UPDATE = _object({"properties": _object(_SCOPE_MAP_FIELDS)})

_TOKEN_FIELDS: dict[str, Schema] = {
    "scopeMapId": {**RESOURCE_ID, "x-code": "InvalidScopeMapId"},
    "status": _status(),
    "credentials": _object({"certificates": {"type": "array", "maxItems": 2},
                            "passwords": {"type": "array", "maxItems": 2}}),
}

TOKEN = _object({"properties": _object(_TOKEN_FIELDS)})
TOKEN_UPDATE = TOKEN

GENERATE_CREDENTIALS = _object({
    "tokenId": RESOURCE_ID,
    "expiry": _text(64),
    "name": _choice("password1", "password2"),
})

REGENERATE_CREDENTIAL = _object({"name": _choice("password", "password2")}, ["name"])

CHECK_NAME = _object({"name": _text(1024), "type": _text(256)}, ["name"])
"""`RegistryNameCheckRequest`. A name of the wrong form is not an error: the answer says it is invalid."""

IMPORT_IMAGE = _object({
    "source": _object({
        "resourceId": RESOURCE_ID,
        "registryUri": _text(2048),
        "credentials": _object({"username": _text(1024), "password": {"type": "string", "maxLength": 16384}},
                               ["password"]),
        "sourceImage": _text(1024, min_length=1),
    }, ["sourceImage"]),
    "targetTags": _list(_text(1024), 100),
    "untaggedTargetRepositories": _list(_text(1024), 100),
    "mode": _choice("NoForce", "Force"),
}, ["source"])

_VALIDATORS: dict[int, Draft202012Validator] = {}


def check(body: Any, schema: Schema) -> dict[str, Any]:
    """`body` if it fits `schema`; else an `ArmError` (400) naming the first field that does not."""
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        Draft202012Validator.check_schema(schema)
        validator = _VALIDATORS.setdefault(id(schema), Draft202012Validator(schema))
    error = best_match(validator.iter_errors(body))
    if error is None:
        return body
    raise _refusal(error)


def _refusal(error: ValidationError) -> ArmError:
    path = _path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    code = schema.get("x-code") or "InvalidParameter"
    kind = error.validator
    if kind == "required":
        missing = next((name for name in error.validator_value if name not in error.instance), "?")
        field = f"{path}.{missing}" if path else str(missing)
        declared = schema.get("properties", {}).get(missing, {})
        return ArmError(400, declared.get("x-code") or "InvalidParameter", f"{field} is required.")
    subject = path or "The request body"
    if kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = [_TYPE_NAMES.get(t, t) for t in wanted if t != "null"]
        message = f"{subject} must be {' or '.join(names)}."
    elif kind == "pattern" and "x-choices" in schema:
        message = f"{subject} must be one of {', '.join(schema['x-choices'])}."
    elif kind == "pattern":
        message = f"{subject} must not contain control characters."
    elif kind == "maxLength":
        message = f"{subject} must be at most {error.validator_value} characters."
    elif kind == "minLength":
        message = f"{subject} must not be empty."
    elif kind == "maxItems":
        message = f"{subject} must have at most {error.validator_value} items."
    elif kind == "minItems":
        message = f"{subject} must have at least {error.validator_value} item."
    elif kind == "maxProperties":
        message = f"{subject} must have at most {error.validator_value} entries."
    else:
        message = f"{subject} is not valid."
    return ArmError(400, code, message)


_TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string", "boolean": "true or false",
               "integer": "a whole number", "number": "a number"}


def _path(parts: Iterable[Any]) -> str:
    shown = ""
    for part in parts:
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            text = str(part)
            name = text if text.isidentifier() and len(text) <= 64 else repr(text[:64])
            shown += f".{name}" if shown else name
    return shown
