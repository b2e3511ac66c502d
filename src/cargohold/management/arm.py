"""The shapes ARM clients expect: `{"error": {"code", "message"}}` errors, resource ids and list pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROVIDER = "Microsoft.ContainerRegistry"

API_VERSIONS = frozenset({
    "2016-06-27-preview", "2017-03-01", "2017-06-01-preview", "2017-10-01", "2018-02-01-preview", "2018-09-01",
    "2019-04-01", "2019-05-01", "2019-05-01-preview", "2019-06-01-preview", "2019-12-01-preview",
    "2020-11-01-preview", "2021-06-01-preview", "2021-08-01-preview", "2021-09-01", "2021-12-01-preview",
    "2022-02-01-preview", "2022-12-01", "2023-01-01-preview", "2023-06-01-preview", "2023-07-01",
    "2023-08-01-preview", "2023-11-01-preview", "2024-11-01-preview", "2025-03-01-preview", "2025-04-01",
    "2025-05-01-preview", "2025-06-01-preview", "2025-11-01",
})
"""The api-versions Microsoft.ContainerRegistry publishes (registries, replications, webhooks, tokens, tasks and
runs). `azure-mgmt-containerregistry` 15 sends 2025-11-01 for every operation; older clients send older ones.
One server answers every version in the shape of the newest, whose fields are a superset of the older ones'."""


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


def check_api_version(value: str | None) -> None:
    """ARM's answer to a missing or unknown `api-version` query parameter."""
    if not value:
        raise ArmError(400, "MissingApiVersionParameter",
                       "The api-version query parameter (?api-version=) is required for all requests.")
    if value not in API_VERSIONS:
        shown = value[:40] if value[:40].isascii() and value[:40].isprintable() else repr(value[:40])
        raise ArmError(400, "InvalidApiVersionParameter",
                       f"The api-version '{shown}' is invalid. The supported versions are "
                       f"'{','.join(sorted(API_VERSIONS, reverse=True))}'.")
