"""Finding a registry by its name alone, as `az acr` does (names are unique across the server), and showing
ARM resources the way az shows them: with a `resourceGroup` read from the id."""

from __future__ import annotations

from typing import Any

from cargohold.cli.arm_client import ArmClient
from cargohold.cli.errors import ArmFailure


def find_registry(arm: ArmClient, name: str | None, resource_group: str | None = None) -> dict[str, Any]:
    """The registry named, or the only one the caller can see when no name is given."""
    if name is not None and resource_group is not None:
        return with_resource_group(arm.get(f"{arm.group_path(resource_group)}/registries/{name}"))
    visible = arm.list(f"{arm.provider_path}/registries")
    if name is None:
        if len(visible) == 1:
            return with_resource_group(visible[0])
        names = ", ".join(sorted(r["name"] for r in visible)) or "none"
        raise ArmFailure("RegistryNameRequired", f"give the registry's name (-n): subscription "
                         f"'{arm.subscription}' has {len(visible)} registries you can read ({names})")
    for registry in visible:
        if str(registry.get("name", "")).lower() == name.lower():
            return with_resource_group(registry)
    raise ArmFailure("ResourceNotFound", f"The registry '{name}' could not be found in subscription "
                     f"'{arm.subscription}'.")


def registry_id(arm: ArmClient, name_or_id: str) -> str:
    """A registry's resource id from its id or its name."""
    if name_or_id.lower().startswith("/subscriptions/"):
        return name_or_id
    return str(find_registry(arm, name_or_id)["id"])


def resource_group_of(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    if "resourcegroups" in lowered:
        index = lowered.index("resourcegroups")
        return parts[index + 1] if index + 1 < len(parts) else None
    return None


def with_resource_group(resource: dict[str, Any]) -> dict[str, Any]:
    """az adds `resourceGroup` to every resource it prints; scripts query it."""
    group = resource_group_of(str(resource.get("id", "")))
    return {**resource, "resourceGroup": group} if group is not None else resource
