"""Scope maps: named sets of repository actions, the system ones and a registry's own."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from cargohold.auth.permissions import SYSTEM_SCOPE_MAPS, validate_scope_map_actions
from cargohold.auth.tables import registry_tokens, scope_maps
from cargohold.kernel.clock import utcnow


@dataclass(frozen=True)
class ScopeMap:
    id: int
    name: str
    description: str | None
    actions: list[str]
    system: bool


def ensure_system_scope_maps(conn: Connection, registry_id: int) -> None:
    present = set(conn.execute(select(scope_maps.c.name).where(scope_maps.c.registry_id == registry_id)).scalars())
    for name, (description, actions) in SYSTEM_SCOPE_MAPS.items():
        if name not in present:
            conn.execute(insert(scope_maps).values(registry_id=registry_id, name=name, description=description,
                                                   actions=json.dumps(actions), system=True, created_at=utcnow()))


def create_scope_map(conn: Connection, registry_id: int, name: str, actions: list[str],
                     description: str | None = None) -> ScopeMap:
    if name.startswith("_"):
        raise ValueError("names starting with '_' are reserved for system scope maps")
    validate_scope_map_actions(actions)
    conn.execute(insert(scope_maps).values(registry_id=registry_id, name=name, description=description,
                                           actions=json.dumps(sorted(set(actions))), system=False,
                                           created_at=utcnow()))
    return get_scope_map(conn, registry_id, name)


def update_scope_map(conn: Connection, registry_id: int, name: str, add: list[str], remove: list[str],
                     description: str | None = None) -> ScopeMap:
    current = get_scope_map(conn, registry_id, name)
    if current.system:
        raise ValueError("system scope maps cannot be changed")
    actions = sorted((set(current.actions) | set(validate_scope_map_actions(add))) - set(remove))
    values: dict[str, object] = {"actions": json.dumps(actions)}
    if description is not None:
        values["description"] = description
    conn.execute(update(scope_maps).where(scope_maps.c.id == current.id).values(**values))
    return get_scope_map(conn, registry_id, name)


def delete_scope_map(conn: Connection, registry_id: int, name: str) -> None:
    current = get_scope_map(conn, registry_id, name)
    if current.system:
        raise ValueError("system scope maps cannot be deleted")
    if conn.execute(select(registry_tokens.c.name).where(registry_tokens.c.scope_map_id == current.id)).first():
        raise ValueError(f"scope map {name} is used by a token")
    conn.execute(delete(scope_maps).where(scope_maps.c.id == current.id))


def get_scope_map(conn: Connection, registry_id: int, name: str) -> ScopeMap:
    row = conn.execute(select(scope_maps).where(scope_maps.c.registry_id == registry_id,
                                                scope_maps.c.name == name)).first()
    if row is None:
        raise LookupError(f"no scope map {name}")
    return ScopeMap(row.id, row.name, row.description, json.loads(row.actions), row.system)


def list_scope_maps(conn: Connection, registry_id: int) -> list[ScopeMap]:
    rows = conn.execute(select(scope_maps).where(scope_maps.c.registry_id == registry_id).order_by(scope_maps.c.name))
    return [ScopeMap(r.id, r.name, r.description, json.loads(r.actions), r.system) for r in rows]
