"""A registry's usage against its SKU's limits, as ACR's listUsages reports it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.engine import Connection

from cargohold.db.tables import blobs, manifests, repositories, repository_blobs
from cargohold.management import skus
from cargohold.management.resources import MAX_IP_RULES, Registry, resource_counts


def storage_used(conn: Connection, registry_pk: int) -> int:
    """Bytes the registry holds, each blob and manifest counted once however many repositories use it."""
    layer_digests = (select(distinct(repository_blobs.c.digest).label("digest"))
                     .join(repositories, repositories.c.id == repository_blobs.c.repository_id)
                     .where(repositories.c.registry_id == registry_pk).subquery())
    layer_bytes = conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0))
                               .join(layer_digests, layer_digests.c.digest == blobs.c.digest)).scalar_one()
    manifest_sizes = (select(manifests.c.digest, func.max(manifests.c.size).label("size"))
                      .join(repositories, repositories.c.id == manifests.c.repository_id)
                      .where(repositories.c.registry_id == registry_pk).group_by(manifests.c.digest).subquery())
    manifest_bytes = conn.execute(select(func.coalesce(func.sum(manifest_sizes.c.size), 0))).scalar_one()
    return int(layer_bytes) + int(manifest_bytes)


def usages(conn: Connection, registry: Registry) -> list[dict[str, Any]]:
    sku = skus.SKUS[registry.sku]
    counts = resource_counts(conn, registry.id)
    replication_limit = skus.REPLICATIONS_PREMIUM if sku.premium_features else 0
    ip_rule_limit = MAX_IP_RULES if sku.premium_features else 0
    return [
        {"name": "Size", "limit": sku.included_storage, "currentValue": storage_used(conn, registry.id),
         "unit": "Bytes"},
        {"name": "Webhooks", "limit": sku.webhooks, "currentValue": counts["webhooks"], "unit": "Count"},
        {"name": "Geo-replications", "limit": replication_limit, "currentValue": counts["replications"],
         "unit": "Count"},
        {"name": "IPRules", "limit": ip_rule_limit, "currentValue": counts["ipRules"], "unit": "Count"},
        {"name": "ScopeMaps", "limit": sku.scope_maps, "currentValue": counts["scopeMaps"], "unit": "Count"},
        {"name": "Tokens", "limit": sku.tokens, "currentValue": counts["tokens"], "unit": "Count"},
    ]
