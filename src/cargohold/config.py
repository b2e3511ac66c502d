"""Server settings. `serve` writes them to the environment so every worker process builds the same app."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cargohold.db.engine import sqlite_url

ENV_PREFIX = "CARGOHOLD_"
DEFAULT_DOMAIN = "localhost"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str
    domain: str = DEFAULT_DOMAIN
    """Registries answer as `<name>.<domain>`."""

    @classmethod
    def for_data_dir(cls, data_dir: Path, db_url: str | None = None, domain: str = DEFAULT_DOMAIN) -> Settings:
        data_dir = data_dir.resolve()
        return cls(data_dir=data_dir, db_url=db_url or sqlite_url(data_dir), domain=domain.lower().strip("."))

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get(f"{ENV_PREFIX}DATA_DIR", "./data"))
        return cls.for_data_dir(data_dir, os.environ.get(f"{ENV_PREFIX}DB_URL") or None,
                                os.environ.get(f"{ENV_PREFIX}DOMAIN") or DEFAULT_DOMAIN)

    def to_env(self) -> dict[str, str]:
        return {f"{ENV_PREFIX}DATA_DIR": str(self.data_dir), f"{ENV_PREFIX}DB_URL": self.db_url,
                f"{ENV_PREFIX}DOMAIN": self.domain}

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "storage"
