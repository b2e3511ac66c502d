"""The registry's admin user: off by default, two passwords that can each be regenerated and shown back."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from cargohold.auth.passwords import hash_secret, new_secret
from cargohold.auth.tables import admin_credentials
from cargohold.db.tables import registries
from cargohold.kernel.clock import utcnow
from cargohold.security.master_key import Sealer

SLOTS = ("password", "password2")


def set_admin_enabled(conn: Connection, sealer: Sealer, registry_id: int, enabled: bool) -> None:
    conn.execute(update(registries).where(registries.c.id == registry_id)
                 .values(admin_user_enabled=enabled, updated_at=utcnow()))
    if enabled and not conn.execute(select(admin_credentials.c.slot)
                                    .where(admin_credentials.c.registry_id == registry_id)).first():
        for slot in SLOTS:
            regenerate_password(conn, sealer, registry_id, slot)


def regenerate_password(conn: Connection, sealer: Sealer, registry_id: int, slot: str) -> str:
    if slot not in SLOTS:
        raise ValueError(f"the admin passwords are named {SLOTS}")
    password = new_secret()
    conn.execute(delete(admin_credentials).where(admin_credentials.c.registry_id == registry_id,
                                                 admin_credentials.c.slot == slot))
    conn.execute(insert(admin_credentials).values(
        registry_id=registry_id, slot=slot, password_hash=hash_secret(password),
        password_sealed=sealer.seal(password.encode()), created_at=utcnow()))
    return password


def show_passwords(conn: Connection, sealer: Sealer, registry_id: int) -> list[tuple[str, str]]:
    rows = conn.execute(select(admin_credentials.c.slot, admin_credentials.c.password_sealed)
                        .where(admin_credentials.c.registry_id == registry_id)).all()
    by_slot = {row.slot: sealer.unseal(row.password_sealed).decode() for row in rows}
    return [(slot, by_slot[slot]) for slot in SLOTS if slot in by_slot]
