"""Run the HTTP server. `cargohold serve` prepares the data directory, then replaces itself with this module
(exec), so the long-lived parent process holds only the server, not the migration and CLI machinery.

    python -m cargohold.server --host H --port P [--workers N] [--cert F --key F] [--kind granian|uvicorn]

The app's settings come from the environment `serve` prepared (see `cargohold.config`).
"""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

APP = "cargohold.app:create_app_from_env"


def _without_httpx_command_line() -> None:
    """httpx imports its command-line tool (`httpx._main`) whenever rich, click and pygments are installed
    (typer brings them), which costs the server ~15 MB and a tenth of its start-up; it never runs that tool."""
    if "httpx._main" not in sys.modules:
        stub = types.ModuleType("httpx._main")
        stub.main = lambda: None  # type: ignore[attr-defined]
        sys.modules["httpx._main"] = stub


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cargohold.server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--kind", choices=["granian", "uvicorn"], default="granian")
    args = parser.parse_args(argv)
    _start_metrics_listener()
    _without_httpx_command_line()
    if args.kind == "granian" and args.workers == 1 and os.environ.get("CARGOHOLD_GRANIAN_PROCESSES") != "1":
        run_granian_embedded(args.host, args.port, args.cert, args.key)
    elif args.kind == "granian":
        run_granian(args.host, args.port, args.workers, args.cert, args.key)
    else:
        run_uvicorn(args.host, args.port, args.workers, args.cert, args.key)


def _start_metrics_listener() -> None:
    """With `--metrics-port`, this process (granian's supervisor, or the one process serving alone) answers
    /metrics on that port."""
    if os.environ.get("CARGOHOLD_METRICS", "on") == "off" or not os.environ.get("CARGOHOLD_METRICS_PORT"):
        return
    from cargohold.observability import listener
    from cargohold.observability.settings import ObservabilitySettings

    listener.start(ObservabilitySettings.from_env())


def run_granian(host: str, port: int, workers: int, cert: Path | None, key: Path | None) -> None:
    from granian.constants import Interfaces, SSLProtocols
    from granian.server import Server

    os.chdir(os.environ.get("CARGOHOLD_DATA_DIR", "/"))
    Server(APP, address=host, port=port, interface=Interfaces.ASGI, factory=True, workers=workers,
           ssl_cert=cert, ssl_key=key, ssl_protocol_min=SSLProtocols.tls12, log_access=False, backlog=2048,
           log_dictconfig=_granian_log_config()).serve()


def _granian_log_config() -> dict[str, object] | None:
    """With `--log-format json`, granian's own lines (start-up, workers) are JSON lines too."""
    if os.environ.get("CARGOHOLD_LOG_FORMAT") != "json":
        return None
    json_formatter = {"()": "cargohold.observability.logs.JsonFormatter"}
    return {"formatters": {"generic": json_formatter, "access": json_formatter}}


def run_granian_embedded(host: str, port: int, cert: Path | None, key: Path | None) -> None:
    """One worker: granian inside this very process, on uvloop, rather than a supervising process that spawns
    a worker process. Saves the supervisor's memory (~30 MB) and the worker's start."""
    import asyncio
    import signal

    import uvloop
    from granian.constants import Interfaces, SSLProtocols
    from granian.server.embed import Server

    from cargohold.app import create_app_from_env
    from cargohold.prepare import prepare_from_env

    prepare_from_env()
    os.chdir(os.environ.get("CARGOHOLD_DATA_DIR", "/"))
    server = Server(create_app_from_env, address=host, port=port, interface=Interfaces.ASGI, factory=True,
                    ssl_cert=cert, ssl_key=key, ssl_protocol_min=SSLProtocols.tls12, log_access=False, backlog=2048,
                    log_dictconfig=_granian_log_config())

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()

    uvloop.run(serve())


def run_uvicorn(host: str, port: int, workers: int, cert: Path | None, key: Path | None) -> None:
    import uvicorn

    uvicorn.run(APP, factory=True, host=host, port=port, workers=workers,
                ssl_certfile=str(cert) if cert else None, ssl_keyfile=str(key) if key else None,
                access_log=False, log_level="warning", loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
