"""Users and service principals: creation, credential checks, and whether a principal is still valid."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from cargohold.auth.passwords import hash_secret, new_secret
from cargohold.auth.principals import ADMIN, IDENTITY, TOKEN, Principal
from cargohold.auth.tables import admin_credentials, identities, registry_tokens
from cargohold.db.tables import registries
from cargohold.kernel.clock import utcnow

USER, SERVICE_PRINCIPAL = "user", "service_principal"
KINDS = (USER, SERVICE_PRINCIPAL)


@dataclass(frozen=True)
class NewIdentity:
    id: int
    kind: str
    name: str
    client_id: str
    client_secret: str


def create_identity(conn: Connection, kind: str, name: str, client_id: str | None = None,
                    client_secret: str | None = None) -> NewIdentity:
    if kind not in KINDS:
        raise ValueError(f"kind is one of {KINDS}")
    client_id = client_id or str(uuid.uuid4())
    client_secret = client_secret or new_secret()
    identity_id = conn.execute(insert(identities).values(
        kind=kind, name=name, client_id=client_id, secret_hash=hash_secret(client_secret), enabled=True,
        created_at=utcnow()).returning(identities.c.id)).scalar_one()
    return NewIdentity(identity_id, kind, name, client_id, client_secret)


def reset_identity_secret(conn: Connection, client_id: str) -> str:
    secret = new_secret()
    changed = conn.execute(update(identities).where(identities.c.client_id == client_id)
                           .values(secret_hash=hash_secret(secret))).rowcount
    if not changed:
        raise LookupError(f"no identity {client_id}")
    return secret


def set_identity_enabled(conn: Connection, client_id: str, enabled: bool) -> None:
    if not conn.execute(update(identities).where(identities.c.client_id == client_id)
                        .values(enabled=enabled)).rowcount:
        raise LookupError(f"no identity {client_id}")


def delete_identity(conn: Connection, client_id: str) -> None:
    if not conn.execute(delete(identities).where(identities.c.client_id == client_id)).rowcount:
        raise LookupError(f"no identity {client_id}")


def find_identity(conn: Connection, client_id_or_name: str) -> Principal | None:
    row = conn.execute(select(identities.c.id, identities.c.name).where(
        (identities.c.client_id == client_id_or_name) | (identities.c.name == client_id_or_name))).first()
    return Principal(IDENTITY, row.id, row.name) if row else None


def list_identities(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(select(identities.c.kind, identities.c.name, identities.c.client_id, identities.c.enabled,
                               identities.c.created_at).order_by(identities.c.id))
    return [dict(row._mapping) for row in rows]


@dataclass(frozen=True)
class Credential:
    """What a user name may log in as, and the hashes its password is checked against in order; matching
    `hashes[i]` lets it in only if `usable[i]` (enabled, not expired). A name that matches nothing has one
    `None` hash, checked all the same, so the time spent does not tell which names exist."""

    principal: Principal | None
    hashes: tuple[str | None, ...]
    usable: tuple[bool, ...]


_NOBODY = Credential(None, (None,), (False,))


def find_credential(conn: Connection, registry_id: int, registry_name: str, username: str,
                    now: datetime | None = None) -> Credential:
    """The credential a user name names: in turn an identity, one of the registry's tokens, its admin user."""
    now = now or utcnow()
    identity = find_identity_credential(conn, username)
    if identity.principal is not None:
        return identity

    token = conn.execute(select(registry_tokens).where(registry_tokens.c.registry_id == registry_id,
                                                       registry_tokens.c.name == username)).first()
    if token is not None:
        slots = ("password1", "password2")
        hashes = tuple(getattr(token, f"{slot}_hash") for slot in slots)
        expiries = [getattr(token, f"{slot}_expires_at") for slot in slots]
        return Credential(Principal(TOKEN, token.id, token.name), hashes,
                          tuple(bool(token.enabled) and (e is None or _aware(e) > now) for e in expiries))

    if username.lower() == registry_name.lower():
        enabled = conn.execute(select(registries.c.admin_user_enabled)
                               .where(registries.c.id == registry_id)).scalar_one_or_none()
        hashes = tuple(conn.execute(select(admin_credentials.c.password_hash)
                                    .where(admin_credentials.c.registry_id == registry_id)).scalars().all())
        if hashes:
            return Credential(Principal(ADMIN, registry_id, registry_name), hashes, (bool(enabled),) * len(hashes))
    return _NOBODY


def find_identity_credential(conn: Connection, client_id: str) -> Credential:
    """A user's or service principal's client secret, for the identity provider's token endpoint."""
    row = conn.execute(select(identities.c.id, identities.c.name, identities.c.secret_hash, identities.c.enabled)
                       .where(identities.c.client_id == client_id)).first()
    if row is None:
        return _NOBODY
    return Credential(Principal(IDENTITY, row.id, row.name), (row.secret_hash,), (bool(row.enabled),))


_IDENTITY_VALID = select(identities.c.enabled).where(identities.c.id == bindparam("id"))
_TOKEN_VALID = select(registry_tokens.c.enabled).where(registry_tokens.c.id == bindparam("id"),
                                                       registry_tokens.c.registry_id == bindparam("registry"))
_ADMIN_VALID = select(registries.c.admin_user_enabled).where(registries.c.id == bindparam("registry"),
                                                            registries.c.id == bindparam("id"))


def is_still_valid(conn: Connection, principal: Principal, registry_id: int) -> bool:
    """Per request: the identity or token behind a token still exists and is enabled; the admin user is on."""
    if principal.kind == IDENTITY:
        statement = _IDENTITY_VALID
    elif principal.kind == TOKEN:
        statement = _TOKEN_VALID
    elif principal.kind == ADMIN:
        statement = _ADMIN_VALID
    else:
        return True
    return bool(conn.execute(statement, {"id": principal.id, "registry": registry_id}).scalar_one_or_none())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
