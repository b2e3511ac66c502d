"""The one parser for JSON that clients send: request bodies (manifests, /acr/v1 PATCHes, ARM bodies) and the
image configs a manifest PUT reads back.

Python's decoder recurses once per nesting level, so a body of a few thousand `[` ends in a RecursionError deep
inside whatever touches the document next; and it accepts `NaN` and `Infinity`, which are not JSON and which no
JSON response can carry back; and `\\ud800` escaped alone decodes to a surrogate that no database, log or UTF-8
response can hold. `loads` refuses all three before anything else sees the document, with a `ValueError` every
caller already turns into its own 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted. Manifests, image configs and ARM bodies need well under 16."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnacceptableJSON(ValueError):
    """Well-formed enough to parse, but refused: too deep, or holding what is not a character."""


class JSONTooDeep(UnacceptableJSON):
    """The document nests arrays and objects deeper than the limit."""


def loads(body: bytes | bytearray | memoryview | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text (UTF-8, -16 or -32 as `json.loads` detects it), refusing documents nested deeper than
    `max_depth`, lone surrogates and the non-standard constants. Raises `ValueError` (`UnacceptableJSON` for a
document that parses but is refused)."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if too_deep(data, max_depth):
        raise JSONTooDeep(f"the document nests arrays and objects deeper than {max_depth} levels")
    try:
        document = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONTooDeep("the document nests arrays and objects too deeply") from None
    if (_SURROGATE_ESCAPE.search(data) or b"\x00" in data) and _has_lone_surrogate(document):
        raise UnacceptableJSON("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a character")
    return document


def too_deep(data: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than `max_depth`. Counting brackets is enough for the common
    case; only a document with more brackets than the limit is scanned."""
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    depth = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _has_lone_surrogate(document: Any) -> bool:
    """Whether any key or string in the document holds a surrogate code point: `\\ud800` escaped without its
    pair decodes to one, and no database, log or UTF-8 response can carry it."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
