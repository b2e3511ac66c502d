"""What the administrative commands share: opening the store, picking the registry, printing results.

The database side is imported only when a command opens the store, so commands that talk HTTP (the
management and repository commands) start without loading SQLAlchemy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import jmespath  # type: ignore[import-untyped]
import typer
from jmespath.exceptions import JMESPathError  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from cargohold.config import Settings
    from cargohold.kernel.tenancy import RegistryRecord
    from cargohold.security.master_key import Sealer

DataDir = Annotated[Path, typer.Option("--data-dir", help="The registry's data directory.", envvar="CARGOHOLD_DATA_DIR")]
DbUrl = Annotated[str | None, typer.Option("--db-url", help="Metadata database URL (default: SQLite in the data dir).",
                                           envvar="CARGOHOLD_DB_URL")]
RegistryName = Annotated[str | None, typer.Option("--name", "-n", help="Registry name (default: the only one).")]


class Output(str, Enum):
    table = "table"
    json = "json"
    tsv = "tsv"


OutputOption = Annotated[Output | None, typer.Option("--output", "-o", help="table in a terminal, json when piped.")]


def _compiled(query: str | None) -> str | None:
    if query is not None:
        try:
            jmespath.compile(query)
        except JMESPathError as exc:
            raise typer.BadParameter(str(exc).replace("\n", " "), param_hint="--query") from None
    return query


QueryOption = Annotated[str | None, typer.Option("--query", callback=_compiled,
                                                 help="JMESPath query over the JSON result, as az's --query.")]
View = Callable[[Any], Sequence[dict[str, Any]]]
"""Turns a command's JSON result into the flat rows its table (and tsv) shows, as az's table transformers do."""


@dataclass
class Store:
    settings: Settings
    engine: Engine
    sealer: Sealer

    @contextmanager
    def write(self) -> Iterator[Connection]:
        from cargohold.db.engine import write_transaction

        with write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def registry(self, conn: Connection, name: str | None) -> RegistryRecord:
        from cargohold.kernel.tenancy import find_registry, resolve_registry
        from cargohold.oci.errors import RegistryError

        if name is None:
            try:
                return resolve_registry(conn, None)
            except RegistryError:
                fail("there are several registries: name one with --name/-n")
        found = find_registry(conn, name)
        if found is None:
            fail(f"no registry named {name}")
        return found


def open_store(data_dir: Path, db_url: str | None) -> Store:
    from cargohold.config import Settings
    from cargohold.db.engine import make_engine
    from cargohold.security.master_key import load_sealer

    settings = Settings.for_data_dir(data_dir, db_url)
    if settings.db_url.startswith("sqlite") and not (settings.data_dir / "metadata.db").exists():
        fail(f"no registry data in {settings.data_dir}; start it once with `cargohold serve --data-dir ...`")
    return Store(settings, make_engine(settings.db_url), load_sealer(settings.data_dir))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def emit(rows: Any, output: Output | None, columns: Sequence[str] | None = None, *,
         query: str | None = None, view: View | None = None) -> None:
    """Print results as ACR's CLI does: a table on a terminal, JSON when piped or asked for. A --query applies
    to the JSON first; the table and tsv then show whatever it selected."""
    chosen = chosen_output(output)
    if query is not None:
        rows = jmespath.search(query, rows)
    if chosen is Output.json:
        typer.echo(json.dumps(rows, indent=2, default=_json_default))
        return
    if query is None and view is not None:
        rows = list(view(rows))
    elif query is not None:
        rows, columns = _flatten(rows)
    listed = [rows] if isinstance(rows, dict) else list(rows)
    names = list(columns or (listed[0].keys() if listed else []))
    if chosen is Output.tsv:
        for row in listed:
            typer.echo("\t".join(_cell(row.get(c)) for c in names))
        return
    table = Table(*[_title(c) for c in names])
    for row in listed:
        table.add_row(*[_cell(row.get(c)) for c in names])
    Console(width=None if sys.stdout.isatty() else 100_000).print(table)


def chosen_output(output: Output | None) -> Output:
    return output or (Output.table if sys.stdout.isatty() else Output.json)


def _flatten(value: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and columns for any JSON value: objects show their scalar fields (nested ones are left out, as az
    leaves them out), bare values a `Result` column."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    for item in items:
        if isinstance(item, dict):
            row = {k: v for k, v in item.items() if not isinstance(v, dict | list)}
        elif isinstance(item, list):
            row = {f"column{i + 1}": v for i, v in enumerate(item) if not isinstance(v, dict | list)}
        else:
            row = {"result": item}
        rows.append(row)
        columns.update(dict.fromkeys(row))
    return rows, list(columns)


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
