"""What the administrative commands share: opening the store, picking the registry, printing results."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Connection, Engine

from cargohold.config import Settings
from cargohold.db.engine import make_engine, write_transaction
from cargohold.management.registries import RegistryRecord, find_registry, resolve_registry
from cargohold.security.master_key import Sealer, load_sealer

DataDir = Annotated[Path, typer.Option("--data-dir", help="The registry's data directory.", envvar="CARGOHOLD_DATA_DIR")]
DbUrl = Annotated[str | None, typer.Option("--db-url", help="Metadata database URL (default: SQLite in the data dir).",
                                           envvar="CARGOHOLD_DB_URL")]
RegistryName = Annotated[str | None, typer.Option("--name", "-n", help="Registry name (default: the only one).")]


class Output(str, Enum):
    table = "table"
    json = "json"
    tsv = "tsv"


OutputOption = Annotated[Output | None, typer.Option("--output", "-o", help="table in a terminal, json when piped.")]


@dataclass
class Store:
    settings: Settings
    engine: Engine
    sealer: Sealer

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def registry(self, conn: Connection, name: str | None) -> RegistryRecord:
        if name is None:
            return resolve_registry(conn, None)
        found = find_registry(conn, name)
        if found is None:
            fail(f"no registry named {name}")
        return found


def open_store(data_dir: Path, db_url: str | None) -> Store:
    settings = Settings.for_data_dir(data_dir, db_url)
    if db_url is None and not (settings.data_dir / "metadata.db").exists():
        fail(f"no registry data in {settings.data_dir}; start it once with `cargohold serve --data-dir ...`")
    return Store(settings, make_engine(settings.db_url), load_sealer(settings.data_dir))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def emit(rows: Sequence[dict[str, Any]] | dict[str, Any], output: Output | None,
         columns: Sequence[str] | None = None) -> None:
    """Print results as ACR's CLI does: a table on a terminal, JSON when piped or asked for."""
    chosen = output or (Output.table if sys.stdout.isatty() else Output.json)
    if chosen is Output.json:
        typer.echo(json.dumps(rows, indent=2, default=_json_default))
        return
    listed = [rows] if isinstance(rows, dict) else list(rows)
    names = list(columns or (listed[0].keys() if listed else []))
    if chosen is Output.tsv:
        for row in listed:
            typer.echo("\t".join(_cell(row.get(c)) for c in names))
        return
    table = Table(*[_title(c) for c in names])
    for row in listed:
        table.add_row(*[_cell(row.get(c)) for c in names])
    Console().print(table)


def _title(column: str) -> str:
    return column[0].upper() + column[1:]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__}")
