"""`listEnabled` (#19): a tag hidden from listings is left out of the manifests listing's tags too, as in ACR,
and stays readable by name; tag names are checked by grammar."""

from __future__ import annotations

import httpx
import pytest

from tests.support.images import make_image, push_image

pytestmark = pytest.mark.backend_independent


def test_a_hidden_tag_is_not_listed_with_its_manifest(client: httpx.Client) -> None:
    image = make_image("hidden-tag", 1)
    digest = push_image(client, "listing/app", "shown", image)
    push_image(client, "listing/app", "hidden", image)
    patched = client.patch("/acr/v1/listing/app/_tags/hidden", json={"listEnabled": False})
    assert patched.status_code == 200, patched.text

    listed = client.get("/acr/v1/listing/app/_manifests").json()["manifests"]
    assert [(m["digest"], m["tags"]) for m in listed] == [(digest, ["shown"])]
    assert [t["name"] for t in client.get("/acr/v1/listing/app/_tags").json()["tags"]] == ["shown"]
    assert client.get("/acr/v1/listing/app/_tags/hidden").json()["tag"]["changeableAttributes"]["listEnabled"] is False
    assert client.get(f"/acr/v1/listing/app/_manifests/{digest}").json()["manifest"]["tags"] == ["hidden", "shown"]


def test_overlong_tags_are_invalid(client: httpx.Client) -> None:
    for path in ("/acr/v1/listing/app/_tags/" + "a" * 129, "/acr/v1/listing/app/_manifests/" + "a" * 129):
        response = client.get(path)
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["code"] == "TAG_INVALID"
