"""First start: a default registry with its signing key and system scope maps, the identity provider's key,
and an Owner service principal whose credentials are written to `<data-dir>/initial-credentials` (0600).

The Owner's id and secret may instead come from CARGOHOLD_BOOTSTRAP_CLIENT_ID / _SECRET; then nothing is
written. Running again changes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from cargohold.auth import keys
from cargohold.auth.identities import SERVICE_PRINCIPAL, create_identity
from cargohold.auth.roles import assign_role
from cargohold.auth.scope_maps import ensure_system_scope_maps
from cargohold.auth.tables import identities, signing_keys
from cargohold.db.engine import lock_name, write_transaction
from cargohold.db.tables import registries
from cargohold.kernel.tenancy import RegistryRecord, create_registry, find_registry
from cargohold.security.master_key import Sealer

TENANT = "cargohold"
CREDENTIALS_FILE = "initial-credentials"


@dataclass(frozen=True)
class BootstrapResult:
    registry: RegistryRecord
    credentials_file: Path | None


def bootstrap(engine: Engine, sealer: Sealer, data_dir: Path, registry_name: str, login_server: str,
              location: str | None = None) -> BootstrapResult:
    credentials_file: Path | None = None
    with write_transaction(engine) as conn:
        lock_name(conn, "bootstrap")
        if conn.execute(select(func.count()).select_from(registries)).scalar_one() == 0:
            registry = create_registry(conn, registry_name, login_server, location)
            ensure_system_scope_maps(conn, registry.id)
            keys.create_key(conn, sealer, registry.id)
        if conn.execute(select(signing_keys.c.kid).where(signing_keys.c.registry_id.is_(None))).first() is None:
            keys.create_key(conn, sealer, None)
        if conn.execute(select(identities.c.id).limit(1)).first() is None:
            client_id = os.environ.get("CARGOHOLD_BOOTSTRAP_CLIENT_ID")
            client_secret = os.environ.get("CARGOHOLD_BOOTSTRAP_CLIENT_SECRET")
            owner = create_identity(conn, SERVICE_PRINCIPAL, "owner", client_id, client_secret)
            assign_role(conn, owner.id, "Owner", None)
            registry = find_registry(conn, registry_name) or _first_registry(conn)
            if client_secret is None:
                credentials_file = data_dir / CREDENTIALS_FILE
                _write_private(credentials_file, {
                    "clientId": owner.client_id, "clientSecret": owner.client_secret, "tenantId": TENANT,
                    "role": "Owner", "registry": registry.name, "loginServer": registry.login_server,
                })
        registry = find_registry(conn, registry_name) or _first_registry(conn)
    return BootstrapResult(registry, credentials_file)


def _first_registry(conn: Connection) -> RegistryRecord:
    name = conn.execute(select(registries.c.name).order_by(registries.c.id).limit(1)).scalar_one()
    found = find_registry(conn, name)
    assert found is not None
    return found


def _write_private(path: Path, content: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle, indent=2)
        handle.write("\n")
