"""Server settings. `serve` writes them to the environment so every worker process builds the same app.

A data directory remembers the database and blob store it was served with (`backends.json`, mode 0600, as
the URLs may carry passwords), so commands given only `--data-dir` (fsck, the operator commands) reach the
same metadata and bytes as the server.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path



def sqlite_url(data_dir: Path) -> str:
    """The embedded database's URL, the same as `db.engine.sqlite_url` (not imported from there: that would
    load SQLAlchemy into every command that only reads settings, `serve` among them)."""
    return f"sqlite:///{data_dir / 'metadata.db'}"

ENV_PREFIX = "CARGOHOLD_"
DEFAULT_DOMAIN = "localhost"
BACKENDS_FILE = "backends.json"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str
    domain: str = DEFAULT_DOMAIN
    """Registries answer as `<name>.<domain>`."""
    storage_url: str | None = None
    """Where blobs live (see `blobs.factory`); None: the filesystem under the data directory."""
    run_worker: bool = True
    """Whether the server process also delivers webhooks and runs other background jobs."""
    redirect_downloads: bool = True
    """Whether blob GETs from a cloud store answer with a redirect to a signed URL rather than the bytes."""
    egress_allow: tuple[str, ...] = ()
    """Exceptions to the outbound policy (`--egress-allow`): addresses, CIDR ranges, host names (kernel/egress.py)."""
    region: str | None = None
    """The geo-replication region this node serves; its store is that region's (see `replication`)."""
    read_through: bool = False
    """Serve a blob this region lacks from another region's store rather than hide the manifest until the copy
    arrives."""

    @classmethod
    def for_data_dir(cls, data_dir: Path, db_url: str | None = None, domain: str = DEFAULT_DOMAIN,
                     storage_url: str | None = None, run_worker: bool = True,
                     redirect_downloads: bool = True, egress_allow: tuple[str, ...] = (),
                     region: str | None = None, read_through: bool = False) -> Settings:
        data_dir = data_dir.resolve()
        remembered = _remembered(data_dir)
        return cls(data_dir=data_dir, db_url=db_url or remembered.get("dbUrl") or sqlite_url(data_dir),
                   domain=domain.lower().strip("."), storage_url=storage_url or remembered.get("storageUrl"),
                   run_worker=run_worker, redirect_downloads=redirect_downloads,
                   egress_allow=tuple(egress_allow),
                   region=region.strip().lower() if region else None, read_through=read_through)

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get(f"{ENV_PREFIX}DATA_DIR", "./data"))
        return cls.for_data_dir(data_dir, os.environ.get(f"{ENV_PREFIX}DB_URL") or None,
                                os.environ.get(f"{ENV_PREFIX}DOMAIN") or DEFAULT_DOMAIN,
                                os.environ.get(f"{ENV_PREFIX}STORAGE_URL") or None,
                                os.environ.get(f"{ENV_PREFIX}RUN_WORKER", "true") == "true",
                                os.environ.get(f"{ENV_PREFIX}BLOB_DOWNLOADS", "redirect") != "proxy",
                                tuple(parse_allow_list(os.environ.get(f"{ENV_PREFIX}EGRESS_ALLOW", ""))),
                                os.environ.get(f"{ENV_PREFIX}REGION") or None,
                                os.environ.get(f"{ENV_PREFIX}READ_THROUGH", "false") == "true")

    def to_env(self) -> dict[str, str]:
        return {f"{ENV_PREFIX}DATA_DIR": str(self.data_dir), f"{ENV_PREFIX}DB_URL": self.db_url,
                f"{ENV_PREFIX}DOMAIN": self.domain, f"{ENV_PREFIX}STORAGE_URL": self.storage_url or "",
                f"{ENV_PREFIX}RUN_WORKER": "true" if self.run_worker else "false",
                f"{ENV_PREFIX}BLOB_DOWNLOADS": "redirect" if self.redirect_downloads else "proxy",
                f"{ENV_PREFIX}EGRESS_ALLOW": ",".join(self.egress_allow),
                f"{ENV_PREFIX}REGION": self.region or "",
                f"{ENV_PREFIX}READ_THROUGH": "true" if self.read_through else "false"}

    def remember_backends(self) -> None:
        """Record a database or store other than the defaults in the data directory."""
        backends = {key: value for key, value in (("dbUrl", self.db_url), ("storageUrl", self.storage_url))
                    if value and value != sqlite_url(self.data_dir)}
        path = self.data_dir / BACKENDS_FILE
        if not backends:
            path.unlink(missing_ok=True)
            return
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(backends, handle, indent=2)
        os.replace(temporary, path)

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "storage"


def parse_allow_list(text: str) -> list[str]:
    """`CARGOHOLD_EGRESS_ALLOW`: entries separated by commas or white space."""
    return [entry for entry in re.split(r"[,\s]+", text) if entry]


def _remembered(data_dir: Path) -> dict[str, str]:
    try:
        found = json.loads((data_dir / BACKENDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}
