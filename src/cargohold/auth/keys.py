"""Token signing keys: ES256 key pairs per registry (and one for the identity provider), rotated without downtime.

The newest live key signs. Every key stays valid for verification until `ROTATION_OVERLAP` after it was
retired, longer than any token it signed can live, so tokens issued before a rotation keep working.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection

from cargohold.auth.tables import signing_keys
from cargohold.kernel.clock import utcnow
from cargohold.security.master_key import Sealer

ALGORITHM = "ES256"
ROTATION_OVERLAP = timedelta(hours=4)
"""How long a retired key still verifies: more than the longest-lived token (refresh tokens, 3 hours)."""


@dataclass(frozen=True)
class KeySet:
    signing_kid: str
    signing_key: ec.EllipticCurvePrivateKey
    verifying: dict[str, ec.EllipticCurvePublicKey]


def create_key(conn: Connection, sealer: Sealer, registry_id: int | None) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    kid = secrets.token_hex(12)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    conn.execute(insert(signing_keys).values(
        kid=kid, registry_id=registry_id, algorithm=ALGORITHM, private_key_sealed=sealer.seal(private_pem),
        public_key_pem=public_pem.decode(), created_at=utcnow()))
    return kid


def rotate(conn: Connection, sealer: Sealer, registry_id: int | None) -> str:
    """Retire the current keys and start signing with a new one."""
    now = utcnow()
    conn.execute(update(signing_keys).where(_owned_by(registry_id), signing_keys.c.retired_at.is_(None))
                 .values(retired_at=now))
    return create_key(conn, sealer, registry_id)


def load_keyset(conn: Connection, sealer: Sealer, registry_id: int | None, now: datetime | None = None) -> KeySet:
    now = now or utcnow()
    rows = conn.execute(
        select(signing_keys).where(_owned_by(registry_id),
                                   or_(signing_keys.c.retired_at.is_(None),
                                       signing_keys.c.retired_at > now - ROTATION_OVERLAP))
        .order_by(signing_keys.c.created_at)
    ).all()
    live = [row for row in rows if row.retired_at is None]
    if not live:
        raise LookupError(f"no signing key for registry {registry_id}")
    signer = live[-1]
    private = serialization.load_pem_private_key(sealer.unseal(signer.private_key_sealed), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    verifying = {}
    for row in rows:
        public = serialization.load_pem_public_key(row.public_key_pem.encode())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        verifying[row.kid] = public
    return KeySet(signer.kid, private, verifying)


def _owned_by(registry_id: int | None):  # type: ignore[no-untyped-def]
    if registry_id is None:
        return signing_keys.c.registry_id.is_(None)
    return signing_keys.c.registry_id == registry_id
