"""ACR's repository-scoped tokens: a name and a scope map, two passwords that may expire, enabled or not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from cargohold.auth.passwords import hash_secret, new_secret
from cargohold.auth.scope_maps import get_scope_map
from cargohold.auth.tables import registry_tokens, scope_maps
from cargohold.kernel.clock import utcnow

PASSWORD_SLOTS = ("password1", "password2")


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope_map: str
    enabled: bool
    passwords: list[dict[str, object]]
    created_at: datetime


def create_token(conn: Connection, registry_id: int, name: str, scope_map: str) -> TokenInfo:
    mapping = get_scope_map(conn, registry_id, scope_map)
    conn.execute(insert(registry_tokens).values(registry_id=registry_id, name=name, scope_map_id=mapping.id,
                                                enabled=True, created_at=utcnow()))
    return get_token(conn, registry_id, name)


def generate_password(conn: Connection, registry_id: int, name: str, slot: str,
                      expires_at: datetime | None = None) -> str:
    if slot not in PASSWORD_SLOTS:
        raise ValueError(f"password slots are {PASSWORD_SLOTS}")
    password = new_secret()
    changed = conn.execute(update(registry_tokens).where(registry_tokens.c.registry_id == registry_id,
                                                         registry_tokens.c.name == name).values(**{
        f"{slot}_hash": hash_secret(password), f"{slot}_created_at": utcnow(), f"{slot}_expires_at": expires_at,
    })).rowcount
    if not changed:
        raise LookupError(f"no token {name}")
    return password


def update_token(conn: Connection, registry_id: int, name: str, *, enabled: bool | None = None,
                 scope_map: str | None = None) -> TokenInfo:
    values: dict[str, object] = {}
    if enabled is not None:
        values["enabled"] = enabled
    if scope_map is not None:
        values["scope_map_id"] = get_scope_map(conn, registry_id, scope_map).id
    if values and not conn.execute(update(registry_tokens).where(registry_tokens.c.registry_id == registry_id,
                                                                 registry_tokens.c.name == name)
                                   .values(**values)).rowcount:
        raise LookupError(f"no token {name}")
    return get_token(conn, registry_id, name)


def delete_token(conn: Connection, registry_id: int, name: str) -> None:
    if not conn.execute(delete(registry_tokens).where(registry_tokens.c.registry_id == registry_id,
                                                      registry_tokens.c.name == name)).rowcount:
        raise LookupError(f"no token {name}")


def get_token(conn: Connection, registry_id: int, name: str) -> TokenInfo:
    tokens = [t for t in list_tokens(conn, registry_id) if t.name == name]
    if not tokens:
        raise LookupError(f"no token {name}")
    return tokens[0]


def list_tokens(conn: Connection, registry_id: int) -> list[TokenInfo]:
    rows = conn.execute(select(registry_tokens, scope_maps.c.name.label("scope_map_name"))
                        .join(scope_maps, scope_maps.c.id == registry_tokens.c.scope_map_id)
                        .where(registry_tokens.c.registry_id == registry_id).order_by(registry_tokens.c.name))
    infos = []
    for row in rows:
        passwords = [{"name": slot, "created": getattr(row, f"{slot}_created_at"),
                      "expiry": getattr(row, f"{slot}_expires_at")}
                     for slot in PASSWORD_SLOTS if getattr(row, f"{slot}_hash")]
        infos.append(TokenInfo(row.name, row.scope_map_name, row.enabled, passwords, row.created_at))
    return infos
