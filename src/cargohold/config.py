"""Server settings. `serve` writes them to the environment so every worker process builds the same app."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cargohold.db.engine import sqlite_url

ENV_PREFIX = "CARGOHOLD_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str

    @classmethod
    def for_data_dir(cls, data_dir: Path, db_url: str | None = None) -> Settings:
        data_dir = data_dir.resolve()
        return cls(data_dir=data_dir, db_url=db_url or sqlite_url(data_dir))

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get(f"{ENV_PREFIX}DATA_DIR", "./data"))
        return cls.for_data_dir(data_dir, os.environ.get(f"{ENV_PREFIX}DB_URL") or None)

    def to_env(self) -> dict[str, str]:
        return {f"{ENV_PREFIX}DATA_DIR": str(self.data_dir), f"{ENV_PREFIX}DB_URL": self.db_url}

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "storage"
