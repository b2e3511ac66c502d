"""Wires the features into one ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from cargohold.acr.routes import AcrRoutes
from cargohold.auth.audit import AuditLog
from cargohold.auth.routes import AuthRoutes
from cargohold.auth.service import AuthService
from cargohold.background import build_worker
from cargohold.blobs.factory import store_from_url
from cargohold.config import Settings
from cargohold.db.engine import make_engine
from cargohold.lifecycle.routes import RecycleBinRoutes
from cargohold.management.routes import ManagementRoutes
from cargohold.oci.errors import RegistryError
from cargohold.kernel.context import RegistryContext
from cargohold.kernel.egress import EgressPolicy
from cargohold.observability import logs, metrics
from cargohold.observability.middleware import ObservabilityMiddleware
from cargohold.observability.settings import ObservabilitySettings
from cargohold.registry.http import (
    client_disconnect_handler,
    http_error_handler,
    registry_error_handler,
    unexpected_error_handler,
)
from cargohold.registry.routes import RegistryRoutes
from cargohold.replication.regions import ReadThrough, RegionStores
from cargohold.replication.routes import ReplicationRoutes
from cargohold.security.master_key import load_sealer
from cargohold.tasks.routes import TaskRoutes


def build_context(settings: Settings) -> RegistryContext:
    return RegistryContext(engine=make_engine(settings.db_url),
                           store=store_from_url(settings.storage_url, settings.blob_root),
                           redirect_downloads=settings.redirect_downloads, region=settings.region,
                           egress=EgressPolicy.from_allow_list(settings.egress_allow))


def create_app(settings: Settings, observability: ObservabilitySettings | None = None) -> ObservabilityMiddleware:
    """The registry's routes inside the observability layer (request ids, metrics, health endpoints)."""
    observability = observability or ObservabilitySettings.from_env()
    ctx = build_context(settings)
    audit = AuditLog(ctx.engine)
    auth = AuthService(ctx, load_sealer(settings.data_dir), audit)
    if settings.region is not None and settings.read_through:
        ctx.read_through = ReadThrough(ctx.engine, RegionStores(ctx.engine, auth.sealer, ctx.region, ctx.store))

    worker, delivery = build_worker(ctx, auth.sealer, data_dir=settings.data_dir)
    management = ManagementRoutes(ctx, auth, settings.domain, worker.wake)
    registry_routes = RegistryRoutes(ctx, auth)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        working = asyncio.create_task(worker.run()) if settings.run_worker else None
        yield
        if working is not None:
            worker.stop()
            await working
            await delivery.close()
        audit.flush()
        registry_routes.pulls.flush()

    starlette = Starlette(
        # /v2/ first, manifest reads at its head: Starlette tries routes in order, and that is the pull hot path.
        routes=[*registry_routes.routes(), *AuthRoutes(auth).routes(), *RecycleBinRoutes(ctx, auth).routes(),
                *ReplicationRoutes(ctx, auth).routes(), *AcrRoutes(ctx, auth).routes(),
                *TaskRoutes(ctx, auth, management, worker.wake).routes(), *management.routes()],
        exception_handlers={
            RegistryError: registry_error_handler,
            HTTPException: http_error_handler,
            ClientDisconnect: client_disconnect_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )
    return ObservabilityMiddleware(starlette, ctx, observability,
                                   metrics.install() if observability.metrics else None)


def create_app_from_env() -> ObservabilityMiddleware:
    """Factory for server workers: the settings come from the environment `serve` prepared."""
    logs.configure()
    return create_app(Settings.from_env())
