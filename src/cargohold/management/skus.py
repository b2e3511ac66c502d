"""ACR's SKUs and their limits, as published on "Azure Container Registry SKU features and limits"
(learn.microsoft.com/azure/container-registry/container-registry-skus, read 2026-11). Pure data and checks.

Read and write operations per minute are published as approximate throughput, not as refusals, so they are
not enforced; storage beyond the included amount is billed, not refused, up to the 40 TiB maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
TIB = 1024**4


@dataclass(frozen=True)
class Sku:
    name: str
    included_storage: int
    max_storage: int
    webhooks: int
    scope_maps: int
    tokens: int
    premium_features: bool
    """Geo-replication, private endpoints, customer-managed keys, content trust and the export policy."""


SKUS: dict[str, Sku] = {
    "Basic": Sku("Basic", 10 * GIB, 40 * TIB, 2, 100, 100, False),
    "Standard": Sku("Standard", 100 * GIB, 40 * TIB, 10, 500, 500, False),
    "Premium": Sku("Premium", 500 * GIB, 40 * TIB, 500, 50_000, 50_000, True),
}

REPLICATIONS_PREMIUM = 72
"""Premium may replicate to any number of regions in principle; this bounds it at the number of Azure regions
listed for ACR, so a loop in a script cannot create rows without end."""


def sku_named(name: str) -> Sku | None:
    """Case-insensitive, as ARM treats SKU names."""
    for sku in SKUS.values():
        if sku.name.lower() == name.lower():
            return sku
    return None
