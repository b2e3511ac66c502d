"""Registry records, and choosing the registry a request addresses by its Host header."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from cargohold.db.tables import registries
from cargohold.oci.errors import RegistryError
from cargohold.kernel.clock import utcnow

REGISTRY_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
"""ACR's rule: 5 to 50 alphanumeric characters."""
BOOTSTRAP_SKU = "Premium"
"""The registry `serve` creates on first start has every feature: the operator owns the machine."""


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    id: int
    name: str
    login_server: str
    anonymous_pull_enabled: bool
    admin_user_enabled: bool
    public_network_access: bool
    network_default_action: str


_COLUMNS = (registries.c.id, registries.c.name, registries.c.login_server, registries.c.anonymous_pull_enabled,
            registries.c.admin_user_enabled, registries.c.public_network_access,
            registries.c.network_default_action)
_ALL = select(*_COLUMNS).order_by(registries.c.id).limit(2)
_BY_LOGIN_SERVER = select(*_COLUMNS).where(registries.c.login_server == bindparam("host"))


def create_registry(conn: Connection, name: str, login_server: str, location: str | None = None) -> RegistryRecord:
    if not REGISTRY_NAME.match(name):
        raise RegistryError("NAME_INVALID", "registry names are 5-50 alphanumeric characters", 400, {"name": name})
    now = utcnow()
    conn.execute(insert(registries).values(
        name=name.lower(), login_server=login_server.lower(), anonymous_pull_enabled=False, admin_user_enabled=False,
        public_network_access=True, network_default_action="Allow", created_at=now, updated_at=now,
        sku=BOOTSTRAP_SKU, **({"location": location} if location else {})))
    found = find_registry(conn, name)
    assert found is not None
    return found


def find_registry(conn: Connection, name: str) -> RegistryRecord | None:
    row = conn.execute(select(*_COLUMNS).where(registries.c.name == name.lower())).first()
    return RegistryRecord(*row) if row else None


def resolve_registry(conn: Connection, host: str | None) -> RegistryRecord:
    """The registry whose login server is the request's host; with a single registry, that one for any host."""
    if host:
        bare = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else host.lower()
        for candidate in (host.lower(), bare):
            row = conn.execute(_BY_LOGIN_SERVER, {"host": candidate}).first()
            if row is not None:
                return RegistryRecord(*row)
        regional = _regional_registry(conn, bare)
        if regional is not None:
            return regional
    rows = conn.execute(_ALL).all()
    if len(rows) == 1 and not _names_another_registry(host, RegistryRecord(*rows[0])):
        return RegistryRecord(*rows[0])
    raise RegistryError("NAME_UNKNOWN", "no registry answers on this host name", 404, {"host": (host or "")[:255]})


def _regional_registry(conn: Connection, bare: str) -> RegistryRecord | None:
    """A replica's own endpoint, `<name>.<region>.<domain>` (geo-replication): the registry, if it lives in that
    region (home, or a replication with `regionEndpointEnabled`)."""
    name, _, rest = bare.partition(".")
    region, _, domain = rest.partition(".")
    if not (name and region and domain):
        return None
    row = conn.execute(_BY_LOGIN_SERVER, {"host": f"{name}.{domain}"}).first()
    if row is None:
        return None
    record = RegistryRecord(*row)
    if conn.execute(select(registries.c.location).where(registries.c.id == record.id)).scalar_one() == region:
        return record
    replicas = registries.metadata.tables.get("replications")
    if replicas is None:
        return None
    enabled = conn.execute(select(replicas.c.region_endpoint_enabled).where(
        replicas.c.registry_id == record.id, replicas.c.location == region)).scalar_one_or_none()
    return record if enabled else None


def _names_another_registry(host: str | None, only: RegistryRecord) -> bool:
    """Whether the host is shaped like a login server of this server's domain (`<name>.<domain>`) that is not
    the sole registry's: a deleted or mistyped registry must not reach the one that is left."""
    if not host:
        return False
    bare = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else host.lower()
    _, _, domain = only.login_server.partition(".")
    return bool(domain) and bare.endswith("." + domain) and bare != only.login_server


def login_server_exists(conn: Connection, login_server: str) -> bool:
    return conn.execute(select(registries.c.id).where(registries.c.login_server == login_server.lower())
                        ).first() is not None
