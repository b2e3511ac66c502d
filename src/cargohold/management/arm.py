"""The shapes ARM clients expect: `{"error": {"code", "message"}}` errors, resource ids and list pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROVIDER = "Microsoft.ContainerRegistry"


@dataclass
class ArmError(Exception):
    """An ARM error answer. `code` is one of ARM's or ACR's codes (`ResourceNotFound`, `InvalidParameter`…)."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(kind: str, name: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"The {kind} '{name}' could not be found.")


def invalid(message: str, code: str = "InvalidParameter") -> ArmError:
    return ArmError(400, code, message)


def registry_id(subscription: str, resource_group: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{PROVIDER}/registries/{name}"


def page(values: list[dict[str, Any]], next_link: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"value": values}
    if next_link:
        body["nextLink"] = next_link
    return body
