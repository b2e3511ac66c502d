"""ACR's webhook payloads and scope filters. Pure functions."""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PUSH, DELETE, QUARANTINE, CHART_PUSH, CHART_DELETE, PING = (
    "push", "delete", "quarantine", "chart_push", "chart_delete", "ping")
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """The HTTP request behind a change, as ACR reports it in `request`."""

    id: str
    host: str
    method: str
    useragent: str

    @classmethod
    def internal(cls, host: str, method: str = "POST") -> RequestOrigin:
        return cls(str(uuid.uuid4()), host, method, "cargohold")


@dataclass(frozen=True, slots=True)
class Target:
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    media_type: str | None = None
    size: int | None = None
    name: str | None = None
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        fields = {"mediaType": self.media_type, "size": self.size, "digest": self.digest, "length": self.size,
                  "repository": self.repository, "tag": self.tag, "name": self.name, "version": self.version}
        return {key: value for key, value in fields.items() if value is not None}


def payload(event_id: str, at: datetime, action: str, target: Target, origin: RequestOrigin) -> dict[str, Any]:
    return {
        "id": event_id,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "action": action,
        "target": target.to_json(),
        "request": {"id": origin.id, "host": origin.host, "method": origin.method, "useragent": origin.useragent},
    }


def in_scope(scope: str, repository: str | None, tag: str | None) -> bool:
    """ACR's scope filter: empty matches everything; `repo:tag` with `*` wildcards; `repo` alone means
    `repo:latest`. An event without a tag (a delete by digest, a repository delete) matches when the repository
    part matches."""
    if not scope:
        return True
    repository_pattern, _, tag_pattern = scope.partition(":")
    if repository is None or not fnmatch.fnmatchcase(repository, repository_pattern):
        return False
    if tag is None:
        return True
    return fnmatch.fnmatchcase(tag, tag_pattern or "latest")


def is_chart(config_media_type: str | None) -> bool:
    return config_media_type == HELM_CONFIG
