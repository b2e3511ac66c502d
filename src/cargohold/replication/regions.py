"""Regions and their stores: registering the region a node serves, opening any region's store, and which
regions a registry lives in."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from cargohold.blobs.factory import AZURE_ACCOUNT_ENV, AZURE_CONNECTION_STRING_ENV, AZURE_KEY_ENV, store_from_url
from cargohold.blobs.store import BlobStore
from cargohold.db.engine import insert_missing, lock_name, write_transaction
from cargohold.db.tables import blobs, registries, repositories, repository_blobs
from cargohold.kernel.clock import utcnow
from cargohold.management.tables import replications
from cargohold.oci.digest import Digest
from cargohold.replication.tables import blob_locations, regions
from cargohold.security.master_key import Sealer

log = logging.getLogger(__name__)

_STORE_SECRETS = {"azure": (AZURE_CONNECTION_STRING_ENV, AZURE_KEY_ENV, AZURE_ACCOUNT_ENV),
                  "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                         "AWS_DEFAULT_REGION")}
"""What a store URL of each scheme takes from the environment: sealed with the region so other nodes, whose
environment names their own store, can open this one."""


@dataclass(frozen=True)
class RegionStore:
    url: str
    environment: dict[str, str]


def store_record(storage_url: str, blob_root: Path) -> RegionStore:
    """What another node needs to open this node's store: a filesystem store under the data directory is named
    by its absolute path; a cloud store keeps the secrets it takes from the environment."""
    url = storage_url or blob_root.resolve().as_uri()
    scheme = urlsplit(url).scheme.lower()
    environment = {name: os.environ[name] for name in _STORE_SECRETS.get(scheme, ()) if os.environ.get(name)}
    return RegionStore(url, environment)


def register_region(conn: Connection, sealer: Sealer, name: str, record: RegionStore) -> bool:
    """Record (or update) the region's store. True if the region is new."""
    sealed = sealer.seal(json.dumps({"url": record.url, "environment": record.environment}).encode())
    now = utcnow()
    found = conn.execute(select(regions.c.name).where(regions.c.name == name)).first()
    if found is None:
        conn.execute(insert(regions).values(name=name, store_sealed=sealed, created_at=now, updated_at=now))
        return True
    conn.execute(update(regions).where(regions.c.name == name).values(store_sealed=sealed, updated_at=now))
    return False


def adopt_present_blobs(conn: Connection, store: BlobStore, region: str) -> int:
    """Record the blobs the metadata knows that the region's store already holds (content pushed before the
    region was registered). Reads every known digest once: run when a region is first registered."""
    known = conn.execute(select(blobs.c.digest)).scalars().all()
    present = [digest for digest in known if store.stat(Digest.parse(digest)) is not None]
    now = utcnow()
    insert_missing(conn, blob_locations, [{"digest": d, "region": region, "created_at": now} for d in present],
                   ["digest", "region"])
    return len(present)


def registered_regions(conn: Connection) -> set[str]:
    return set(conn.execute(select(regions.c.name)).scalars())


def registry_locations(conn: Connection, registry_id: int) -> tuple[str, list[str]]:
    """The registry's home location and its replicas' locations."""
    home = conn.execute(select(registries.c.location).where(registries.c.id == registry_id)).scalar_one()
    replicas = list(conn.execute(select(replications.c.location)
                                 .where(replications.c.registry_id == registry_id)
                                 .order_by(replications.c.location)).scalars())
    return home, replicas


def registry_regions(conn: Connection, registry_id: int) -> list[str]:
    """The registry's locations that have a store of their own: where its content is kept and copied to."""
    home, replicas = registry_locations(conn, registry_id)
    known = registered_regions(conn)
    return [location for location in [home, *replicas] if location in known]


def regions_needing(conn: Connection, digest: str) -> set[str]:
    """The regions some registry holding this blob lives in: where copies of it belong."""
    holders = select(repositories.c.registry_id).join(repository_blobs).where(
        repository_blobs.c.digest == digest).distinct()
    homes = set(conn.execute(select(registries.c.location).where(registries.c.id.in_(holders))).scalars())
    replicas = set(conn.execute(select(replications.c.location)
                                .where(replications.c.registry_id.in_(holders))).scalars())
    return (homes | replicas) & registered_regions(conn)


def count_regions(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(regions)).scalar_one())


class RegionStores:
    """Every region's store, opened from its sealed record on first use and kept. A record changed by a node
    registering again is picked up by `forget`."""

    def __init__(self, engine: Engine, sealer: Sealer, own_region: str | None = None,
                 own_store: BlobStore | None = None) -> None:
        self.engine = engine
        self.sealer = sealer
        self.own_region = own_region
        self.own_store = own_store
        self._stores: dict[str, BlobStore] = {}
        self._lock = threading.Lock()

    def get(self, region: str) -> BlobStore:
        """The region's store. KeyError if the region is not registered."""
        if region == self.own_region and self.own_store is not None:
            return self.own_store
        with self._lock:
            found = self._stores.get(region)
        if found is not None:
            return found
        with self.engine.connect() as conn:
            sealed = conn.execute(select(regions.c.store_sealed).where(regions.c.name == region)).scalar_one_or_none()
        if sealed is None:
            raise KeyError(region)
        record = json.loads(self.sealer.unseal(sealed))
        store = _open_store(record["url"], record.get("environment") or {})
        with self._lock:
            self._stores[region] = store
        return store

    def forget(self, region: str) -> None:
        with self._lock:
            self._stores.pop(region, None)


_ENVIRONMENT_LOCK = threading.Lock()


def _open_store(url: str, environment: dict[str, str]) -> BlobStore:
    """Open a store with the secrets it was registered with in place of this process's own for a moment: the
    store factory reads them from the environment, and this node's environment names its own store."""
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for names in _STORE_SECRETS.values() for name in names}
        try:
            for name in saved:
                os.environ.pop(name, None)
            os.environ.update(environment)
            return store_from_url(url, Path("/nonexistent"))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def register_serving_region(engine: Engine, sealer: Sealer, name: str, store: BlobStore, record: RegionStore) -> None:
    """At a node's start: register its region; if new, adopt what its store already holds and owe the region
    a backfill of every registry that lives there."""
    from cargohold.replication.copying import enqueue_backfills_for_region

    with write_transaction(engine) as conn:
        lock_name(conn, f"region:{name}")
        created = register_region(conn, sealer, name, record)
        if created:
            adopted = adopt_present_blobs(conn, store, name)
            log.info("registered region %s (%d blobs already in its store)", name, adopted)
        enqueue_backfills_for_region(conn, name)


class ReadThrough:
    """`RegistryContext.read_through`: the store of another region that holds a blob this region lacks."""

    def __init__(self, engine: Engine, stores: RegionStores) -> None:
        self.engine = engine
        self.stores = stores

    def __call__(self, digest: Digest) -> BlobStore | None:
        with self.engine.connect() as conn:
            holders = conn.execute(select(blob_locations.c.region).where(blob_locations.c.digest == str(digest))
                                   .order_by(blob_locations.c.region)).scalars().all()
        for region in holders:
            if region == self.stores.own_region:
                continue
            try:
                return self.stores.get(region)
            except Exception:  # noqa: BLE001 - a region that cannot be opened: try the next
                log.warning("cannot open the store of region %s to read %s through", region, digest)
        return None
