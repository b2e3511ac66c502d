"""Log set-up for server processes: the usual text lines, or one JSON object a line (`--log-format json`).

Every record carries the request id of the request being served (see `requestid`), so a line can be matched
with the `X-Request-Id` a client saw and with the `request.id` of the events the request caused.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

from cargohold.observability.requestid import RequestIdFilter

FORMAT_ENV = "CARGOHOLD_LOG_FORMAT"
ACCESS_ENV = "CARGOHOLD_ACCESS_LOG"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
EXTRA_FIELDS = ("method", "path", "route", "status", "duration_ms", "client", "bytes_in", "bytes_out")
"""Fields the access log attaches to its records, copied into JSON lines when present."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id and request_id != "-":
            line["request_id"] = request_id
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str | None = None) -> None:
    """Configure the root logger of a server process from `log_format` or $CARGOHOLD_LOG_FORMAT (text|json)."""
    chosen = (log_format or os.environ.get(FORMAT_ENV) or "text").lower()
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)
