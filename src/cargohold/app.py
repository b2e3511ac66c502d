"""Wires the features into one ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from cargohold.acr.routes import AcrRoutes
from cargohold.auth.audit import AuditLog
from cargohold.auth.routes import AuthRoutes
from cargohold.auth.service import AuthService
from cargohold.background import build_worker
from cargohold.blobs.factory import store_from_url
from cargohold.config import Settings
from cargohold.db.engine import make_engine
from cargohold.management.routes import ManagementRoutes
from cargohold.oci.errors import RegistryError
from cargohold.kernel.context import RegistryContext
from cargohold.registry.http import http_error_handler, registry_error_handler, unexpected_error_handler
from cargohold.registry.routes import RegistryRoutes
from cargohold.security.master_key import load_sealer


def build_context(settings: Settings) -> RegistryContext:
    return RegistryContext(engine=make_engine(settings.db_url),
                           store=store_from_url(settings.storage_url, settings.blob_root),
                           redirect_downloads=settings.redirect_downloads)


def create_app(settings: Settings) -> Starlette:
    ctx = build_context(settings)
    audit = AuditLog(ctx.engine)
    auth = AuthService(ctx, load_sealer(settings.data_dir), audit)

    worker, delivery = build_worker(ctx, auth.sealer)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        working = asyncio.create_task(worker.run()) if settings.run_worker else None
        yield
        if working is not None:
            worker.stop()
            await working
            await delivery.close()
        audit.flush()

    return Starlette(
        # /v2/ first, manifest reads at its head: Starlette tries routes in order, and that is the pull hot path.
        routes=[*RegistryRoutes(ctx, auth).routes(), *AuthRoutes(auth).routes(), *AcrRoutes(ctx, auth).routes(),
                *ManagementRoutes(ctx, auth, settings.domain, worker.wake).routes()],
        exception_handlers={
            RegistryError: registry_error_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )


def create_app_from_env() -> Starlette:
    """Factory for server workers: the settings come from the environment `serve` prepared."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return create_app(Settings.from_env())
