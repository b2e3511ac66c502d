"""Checking and rendering the values ARM bodies carry: tags, booleans, enumerations, timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cargohold.management.arm import invalid


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment.tzinfo else moment.isoformat() + "Z"


def tags_of(body: dict[str, Any]) -> dict[str, str]:
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or len(tags) > 50 or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 512 and len(v) <= 256
            for k, v in tags.items()):
        raise invalid("tags must be an object of at most 50 string names (up to 512 characters) and string values "
                      "(up to 256 characters)", "InvalidTag")
    return dict(tags)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"{name} must be true or false")
    return value


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    for option in allowed:
        if isinstance(value, str) and value.lower() == option.lower():
            return option
    raise invalid(f"{name} must be one of {', '.join(allowed)}")
