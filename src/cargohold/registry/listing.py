"""Paginated listings: tags of a repository and the registry's catalog, in lexical (byte) order."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.engine import Connection

from cargohold.db.engine import binary_order
from cargohold.db.tables import manifests, repositories, tags
from cargohold.oci.errors import name_unknown
from cargohold.registry.repositories import RepositoryRef, is_repository

MAX_PAGE = 10_000
"""Largest page we return; a larger `n` gets this many and a `Link` to the rest."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    has_more: bool


def list_tags(conn: Connection, ref: RepositoryRef, n: int | None, last: str | None) -> Page:
    limit = min(n, MAX_PAGE) if n is not None else MAX_PAGE
    repository = conn.execute(select(repositories.c.id, repositories.c.list_enabled).where(is_repository(ref))).first()
    if repository is None:
        raise name_unknown(ref.name)
    if not repository.list_enabled:
        return Page([], False)
    order = binary_order(tags.c.name, conn)
    query = (select(tags.c.name).where(tags.c.repository_id == repository.id, tags.c.list_enabled.is_(True))
             .order_by(order).limit(limit + 1))
    if last:
        query = query.where(order > last)
    return _page(list(conn.execute(query).scalars()), limit)


def list_repositories(conn: Connection, registry_id: int, n: int | None, last: str | None) -> Page:
    """Repositories holding at least one manifest; ones with only uploads or blobs are not listed."""
    limit = min(n, MAX_PAGE) if n is not None else MAX_PAGE
    order = binary_order(repositories.c.name, conn)
    query = (select(repositories.c.name)
             .where(repositories.c.registry_id == registry_id, repositories.c.list_enabled.is_(True),
                    exists().where(manifests.c.repository_id == repositories.c.id))
             .order_by(order).limit(limit + 1))
    if last:
        query = query.where(order > last)
    return _page(list(conn.execute(query).scalars()), limit)


def _page(names: list[str], limit: int) -> Page:
    """A page of at most `limit` names; `has_more` only when this page holds something to continue after."""
    return Page(names[:limit], limit > 0 and len(names) > limit)
