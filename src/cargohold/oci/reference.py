"""Repository name and tag grammar from the OCI Distribution Spec, with our length limits."""

from __future__ import annotations

import re

from cargohold.oci.errors import name_invalid, tag_invalid

MAX_NAME_LENGTH = 256
"""Longest repository name we accept, matching ACR's documented limit; the spec suggests clients keep under 255."""
MAX_NAME_DEPTH = 16
"""Most path components in a repository name; ACR does not publish one, five is too few for real monorepos."""

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise name_invalid(name[:MAX_NAME_LENGTH], f"longer than {MAX_NAME_LENGTH} characters")
    if not NAME_RE.match(name):
        raise name_invalid(name, "does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/...)*")
    if name.count("/") + 1 > MAX_NAME_DEPTH:
        raise name_invalid(name, f"more than {MAX_NAME_DEPTH} path components")
    return name


def is_valid_tag(tag: str) -> bool:
    return TAG_RE.match(tag) is not None


def validate_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise tag_invalid(tag[:200])
    return tag
