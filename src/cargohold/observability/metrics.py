"""Prometheus metrics, correct with several server worker processes.

Every worker writes its values to files in a shared directory (prometheus-client's multiprocess mode, the
directory `serve` names in PROMETHEUS_MULTIPROC_DIR); a scrape, answered by whichever worker gets it, reads
them all. Writing a value there costs a few microseconds, too much for the hot path (~55 µs a request), so
requests are tallied in plain Python first and written out about once a second (`Metrics.flush`) and before
each scrape. Queue depth and open uploads are read from the database when scraped.

prometheus-client is imported only here and only when metrics are on.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cargohold.kernel.context import RegistryContext

log = logging.getLogger("cargohold.metrics")

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    float("inf"))
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, float("inf"))
FLUSH_SECONDS = 1.0
AUTH_FAILURE_REASONS = ("no_credentials", "invalid_token", "insufficient_scope", "network_rule", "bad_credentials",
                        "throttled")
"""Reasons reported from the start (at 0); see `cargohold.auth.service.failure_reason`."""
REPORTED_KINDS = ("webhook", "import")
"""Job kinds reported even when idle (0), so dashboards have a series; other kinds appear while they have jobs."""
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")

_active: Metrics | None = None


def active() -> Metrics | None:
    """This process's metrics, or None when they are off (or this is not a server process)."""
    return _active


def auth_failure(reason: str) -> None:
    if _active is not None:
        _active.auth_failures.labels(reason).inc()


def webhook_delivered(lag_seconds: float) -> None:
    if _active is not None:
        _active.webhook_lag.observe(max(0.0, lag_seconds))


class Metrics:
    """The metrics of one server process. Create one with `install`."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        labels = ["route", "method", "status"]
        self.request_seconds = Histogram("cargohold_http_request_duration_seconds",
                                         "Time from request to the end of the response, by route template.",
                                         labels, buckets=DURATION_BUCKETS)
        self.request_bytes = Counter("cargohold_http_request_bytes", "Request body bytes received.", labels)
        self.response_bytes = Counter("cargohold_http_response_bytes", "Response body bytes sent.", labels)
        self.auth_failures = Counter("cargohold_auth_failures", "Refused authentications and authorizations.",
                                     ["reason"])
        self.uploads_in_flight = Gauge("cargohold_uploads_in_flight",
                                       "Blob upload requests (POST, PATCH, PUT) currently receiving bytes.",
                                       multiprocess_mode="livesum")
        self.webhook_lag = Histogram("cargohold_webhook_delivery_lag_seconds",
                                     "Time from an event to its successful delivery to a webhook.",
                                     buckets=LAG_BUCKETS)
        self.cache_lookups = Counter("cargohold_cache_lookups", "Lookups in the metadata cache (FreshCache).",
                                     ["result"])
        self.cache_entries = Gauge("cargohold_cache_entries", "Entries in the metadata caches.",
                                   multiprocess_mode="livesum")
        self.pool_checked_out = Gauge("cargohold_db_pool_checked_out",
                                      "Database connections in use (checked out of the pools).",
                                      multiprocess_mode="livesum")
        self.pool_size = Gauge("cargohold_db_pool_size", "Database connections the pools hold open.",
                               multiprocess_mode="livesum")
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        for result in ("hit", "miss"):
            self.cache_lookups.labels(result)
        self._upper = DURATION_BUCKETS
        self._width = len(DURATION_BUCKETS)
        self._pending: dict[tuple[str, str, int], list[float]] = {}
        self._cache_seen = (0, 0)
        self._flushed_at = time.monotonic()

    def record(self, route: str, method: str, status: int, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """Tally one request (hot path: a dict lookup and four additions)."""
        key = (route, method, status)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = [0.0] * (self._width + 3)
        tally[bisect.bisect_left(self._upper, seconds)] += 1
        width = self._width
        tally[width] += seconds
        tally[width + 1] += bytes_in
        tally[width + 2] += bytes_out

    def due(self, now: float) -> bool:
        return now - self._flushed_at >= FLUSH_SECONDS

    def flush(self, ctx: RegistryContext | None = None) -> None:
        """Write what was tallied since the last flush to the shared files; sample the cache and pool gauges."""
        self._flushed_at = time.monotonic()
        pending, self._pending = self._pending, {}
        width = self._width
        for (route, method, status), tally in pending.items():
            labels = (route, method, str(status))
            child = self.request_seconds.labels(*labels)
            # prometheus-client has no "observe n times": add the tallied counts to its bucket and sum values.
            for index in range(width):
                if tally[index]:
                    child._buckets[index].inc(tally[index])  # noqa: SLF001
            child._sum.inc(tally[width])  # noqa: SLF001
            if tally[width + 1]:
                self.request_bytes.labels(*labels).inc(tally[width + 1])
            if tally[width + 2]:
                self.response_bytes.labels(*labels).inc(tally[width + 2])
        if ctx is not None:
            self._sample(ctx)

    def _sample(self, ctx: RegistryContext) -> None:
        hits, misses = ctx.cache.hits, ctx.cache.misses
        seen_hits, seen_misses = self._cache_seen
        if hits > seen_hits:
            self.cache_lookups.labels("hit").inc(hits - seen_hits)
        if misses > seen_misses:
            self.cache_lookups.labels("miss").inc(misses - seen_misses)
        self._cache_seen = (hits, misses)
        self.cache_entries.set(ctx.cache.size())
        pool: Any = ctx.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        size = getattr(pool, "checkedin", None)
        if callable(checked_out) and callable(size):
            self.pool_checked_out.set(checked_out())
            self.pool_size.set(checked_out() + size())


def install() -> Metrics:
    """Create this process's metrics (once)."""
    global _active
    if _active is None:
        _active = Metrics()
    return _active


def collector_registry(engine_source: Any) -> Any:
    """A registry that reads every process's values and, at scrape time, the database.

    `engine_source` is an Engine or a callable returning one (the supervisor process opens it lazily).
    """
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)
    registry.register(DatabaseCollector(engine_source))
    return registry


def forget_dead_processes(directory: str | None = None) -> None:
    """Drop the live gauges of worker processes that are gone (a respawned granian worker), so `livesum`
    gauges count only processes that are running."""
    from prometheus_client.multiprocess import mark_process_dead

    path = Path(directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if not path.is_dir():
        return
    for entry in path.iterdir():
        match = _LIVE_GAUGE_FILE.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(path))
        except PermissionError:
            pass


def render(engine_source: Any) -> bytes:
    """The exposition text of a scrape (blocking: run it off the event loop)."""
    from prometheus_client import generate_latest

    forget_dead_processes()
    return generate_latest(collector_registry(engine_source))


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DatabaseCollector:
    """Series read from the metadata database when scraped: the job queue by kind and the open uploads."""

    def __init__(self, engine_source: Any) -> None:
        self._engine_source = engine_source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("cargohold_metrics_database_up",
                               "1 if the queue and upload series below could be read from the database.")
        depth = GaugeMetricFamily("cargohold_jobs_queued", "Background jobs waiting or running, by kind.",
                                  labels=["kind"])
        oldest = GaugeMetricFamily("cargohold_jobs_oldest_age_seconds",
                                   "Age of the oldest unfinished background job, by kind.", labels=["kind"])
        uploads = GaugeMetricFamily("cargohold_upload_sessions_open", "Blob upload sessions started and not "
                                                                      "yet completed or cancelled.")
        try:
            engine: Engine = self._engine_source() if callable(self._engine_source) else self._engine_source
            rows, open_uploads, now = _read_database(engine)
        except Exception:  # noqa: BLE001 - a scrape must still answer when the database does not
            log.warning("metrics: cannot read the job queue", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        found = {kind: (count, created) for kind, count, created in rows}
        for kind in sorted(set(REPORTED_KINDS) | set(found)):
            count, created = found.get(kind, (0, None))
            depth.add_metric([kind], count)
            oldest.add_metric([kind], max(0.0, (now - created).total_seconds()) if created else 0.0)
        uploads.add_metric([], open_uploads)
        yield from (up, depth, oldest, uploads)


def _read_database(engine: Engine) -> tuple[list[tuple[str, int, Any]], int, Any]:
    from sqlalchemy import func, select

    from cargohold.db.tables import uploads
    from cargohold.jobs.queue import PENDING
    from cargohold.jobs.tables import jobs
    from cargohold.kernel.clock import utcnow

    with engine.connect() as conn:
        rows = conn.execute(select(jobs.c.kind, func.count(), func.min(jobs.c.created_at))
                            .where(jobs.c.status == PENDING).group_by(jobs.c.kind)).all()
        open_uploads = conn.execute(select(func.count()).select_from(uploads)).scalar_one()
    now = utcnow()
    return [(kind, int(count), _aware(created)) for kind, count, created in rows], int(open_uploads), now


def _aware(value: Any) -> Any:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    from datetime import UTC, datetime

    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
