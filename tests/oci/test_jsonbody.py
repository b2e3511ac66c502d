"""The one parser of client JSON: bounded nesting, no NaN or Infinity, and no cost for ordinary documents."""

from __future__ import annotations

import json
import time

import pytest

from cargohold.oci import jsonbody

pytestmark = pytest.mark.backend_independent


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


@pytest.mark.parametrize("body", [
    nested(jsonbody.MAX_DEPTH + 1),
    nested(100_000),
    ('{"a":' * 1000 + "1" + "}" * 1000).encode(),
    b'{"x": ' + nested(5_000) + b"}",
])
def test_documents_nested_too_deeply_are_refused(body: bytes) -> None:
    with pytest.raises(jsonbody.JSONTooDeep):
        jsonbody.loads(body)
    with pytest.raises(ValueError):
        jsonbody.loads(body)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert jsonbody.loads(nested(jsonbody.MAX_DEPTH)) == json.loads(nested(jsonbody.MAX_DEPTH))


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 10_000, "t": 'quote \\" and ' + "{" * 500, "list": [[1], [2]]})
    assert jsonbody.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("body", [b"NaN", b'{"days": Infinity}', b"[-Infinity]"])
def test_non_json_constants_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        jsonbody.loads(body)


def test_strings_and_other_encodings_parse_as_json_does() -> None:
    document = {"name": "zürich", "n": [1, 2.5, None, True]}
    assert jsonbody.loads(json.dumps(document)) == document
    assert jsonbody.loads(json.dumps(document).encode("utf-16")) == document


def test_a_large_flat_document_is_checked_quickly() -> None:
    body = json.dumps({"layers": [{"digest": f"sha256:{i:064x}", "size": i} for i in range(20_000)]}).encode()
    started = time.perf_counter()
    jsonbody.loads(body)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("body", [b'"\\ud800"', b'{"\\udfff": 1}', b'["ok", {"a": "x\\uDBFFy"}]',
                                  '"\\ud800"'.encode("utf-16")])
def test_lone_surrogates_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        jsonbody.loads(body)


def test_escaped_surrogate_pairs_are_characters() -> None:
    assert jsonbody.loads(b'{"emoji": "\\ud83d\\ude00", "text": "\\\\ud800 is text"}') == {
        "emoji": "\U0001f600", "text": "\\ud800 is text"}
