"""Users and service principals: creation, credential checks, and whether a principal is still valid."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from cargohold.auth.passwords import check_secret, hash_secret, new_secret
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


def authenticate(conn: Connection, registry_id: int, registry_name: str, username: str, password: str,
                 now: datetime | None = None) -> Principal | None:
    """Check a user name and password against, in turn, identities, the registry's tokens and its admin user.

    The argon2 check runs whether or not the name exists, so timing does not tell which names do.
    """
    now = now or utcnow()
    identity = conn.execute(select(identities.c.id, identities.c.name, identities.c.secret_hash,
                                   identities.c.enabled).where(identities.c.client_id == username)).first()
    if identity is not None:
        ok = check_secret(identity.secret_hash, password)
        return Principal(IDENTITY, identity.id, identity.name) if ok and identity.enabled else None

    token = conn.execute(select(registry_tokens).where(registry_tokens.c.registry_id == registry_id,
                                                       registry_tokens.c.name == username)).first()
    if token is not None:
        for slot in ("password1", "password2"):
            expires = getattr(token, f"{slot}_expires_at")
            if check_secret(getattr(token, f"{slot}_hash"), password) and (expires is None or _aware(expires) > now):
                return Principal(TOKEN, token.id, token.name) if token.enabled else None
        return None

    if username.lower() == registry_name.lower():
        enabled = conn.execute(select(registries.c.admin_user_enabled)
                               .where(registries.c.id == registry_id)).scalar_one_or_none()
        hashes = conn.execute(select(admin_credentials.c.password_hash)
                              .where(admin_credentials.c.registry_id == registry_id)).scalars().all()
        matched = any([check_secret(h, password) for h in hashes]) if hashes else check_secret(None, password)
        return Principal(ADMIN, registry_id, registry_name) if matched and enabled else None

    check_secret(None, password)
    return None


def authenticate_identity(conn: Connection, client_id: str, secret: str) -> Principal | None:
    """Client credentials of a user or service principal, for the identity provider's token endpoint."""
    row = conn.execute(select(identities.c.id, identities.c.name, identities.c.secret_hash, identities.c.enabled)
                       .where(identities.c.client_id == client_id)).first()
    ok = check_secret(row.secret_hash if row else None, secret)
    return Principal(IDENTITY, row.id, row.name) if row and ok and row.enabled else None


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
