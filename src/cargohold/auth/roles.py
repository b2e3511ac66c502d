"""Role assignments, and what a principal may do in a registry."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.engine import Connection

from cargohold.auth.permissions import (
    CATALOG_ROLES,
    METADATA_READ,
    PULL,
    REPOSITORY_ACTIONS,
    ROLES,
    RepositoryGrant,
    is_valid_pattern,
    scope_map_grants,
)
from cargohold.auth.principals import ADMIN, ANONYMOUS, IDENTITY, TOKEN, Principal
from cargohold.auth.tables import identities, registry_tokens, role_assignments, scope_maps
from cargohold.kernel.clock import utcnow


@dataclass(frozen=True)
class Grants:
    repositories: list[RepositoryGrant]
    catalog: bool


NOTHING = Grants([], False)
ANONYMOUS_ACTIONS = frozenset({PULL, METADATA_READ})
"""With anonymous pull on, anyone may pull and read metadata (the SDK's anonymous mode lists repositories,
tags and manifests); never push, delete or change attributes."""


def assign_role(conn: Connection, identity_id: int, role: str, registry_id: int | None,
                repository: str | None = None) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if repository is not None and (registry_id is None or not is_valid_pattern(repository)):
        raise ValueError("a repository scope needs a registry and a name, 'prefix/*' or '*'")
    conn.execute(insert(role_assignments).values(identity_id=identity_id, registry_id=registry_id,
                                                 repository=repository, role=role, created_at=utcnow()))


def remove_role(conn: Connection, identity_id: int, role: str, registry_id: int | None,
                repository: str | None = None) -> None:
    removed = conn.execute(delete(role_assignments).where(
        role_assignments.c.identity_id == identity_id, role_assignments.c.role == role,
        role_assignments.c.registry_id.is_(None) if registry_id is None else role_assignments.c.registry_id == registry_id,
        role_assignments.c.repository.is_(None) if repository is None else role_assignments.c.repository == repository,
    )).rowcount
    if not removed:
        raise LookupError("no such role assignment")


def list_roles(conn: Connection, registry_id: int | None = None) -> list[dict[str, object]]:
    query = (select(identities.c.name, identities.c.client_id, role_assignments.c.role,
                    role_assignments.c.registry_id, role_assignments.c.repository)
             .join(identities, identities.c.id == role_assignments.c.identity_id).order_by(role_assignments.c.id))
    if registry_id is not None:
        query = query.where(or_(role_assignments.c.registry_id.is_(None), role_assignments.c.registry_id == registry_id))
    return [dict(row._mapping) for row in conn.execute(query)]


def grants_for(conn: Connection, principal: Principal, registry_id: int, anonymous_pull: bool) -> Grants:
    if principal.kind == ADMIN:
        return Grants([RepositoryGrant("*", REPOSITORY_ACTIONS)], True)
    if principal.kind == ANONYMOUS:
        return Grants([RepositoryGrant("*", ANONYMOUS_ACTIONS)], True) if anonymous_pull else NOTHING
    if principal.kind == TOKEN:
        actions = conn.execute(select(scope_maps.c.actions).join(registry_tokens,
                                                                 registry_tokens.c.scope_map_id == scope_maps.c.id)
                               .where(registry_tokens.c.id == principal.id)).scalar_one_or_none()
        if actions is None:
            return NOTHING
        grants = scope_map_grants(json.loads(actions))
        catalog = any(g.pattern == "*" and METADATA_READ in g.actions for g in grants)
        return Grants(grants, catalog)
    if principal.kind == IDENTITY:
        rows = conn.execute(select(role_assignments.c.role, role_assignments.c.repository).where(
            role_assignments.c.identity_id == principal.id,
            or_(role_assignments.c.registry_id.is_(None), role_assignments.c.registry_id == registry_id))).all()
        grants = [RepositoryGrant(row.repository or "*", ROLES[row.role]) for row in rows if ROLES[row.role]]
        catalog = any(row.repository is None and row.role in CATALOG_ROLES for row in rows)
        return Grants(grants, catalog)
    return NOTHING


def has_role(conn: Connection, principal: Principal, registry_id: int | None, roles: frozenset[str]) -> bool:
    """Management-plane check: does the identity hold one of `roles` at this registry's scope or wider."""
    if principal.kind != IDENTITY:
        return False
    scope = role_assignments.c.registry_id.is_(None)
    if registry_id is not None:
        scope = or_(scope, role_assignments.c.registry_id == registry_id)
    return conn.execute(select(role_assignments.c.id).where(
        role_assignments.c.identity_id == principal.id, role_assignments.c.repository.is_(None),
        role_assignments.c.role.in_(roles), scope).limit(1)).first() is not None
