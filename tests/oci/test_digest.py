import hashlib

import pytest

from cargohold.oci.digest import Digest, compute, is_digest
from cargohold.oci.errors import RegistryError


def test_parses_sha256_and_sha512() -> None:
    hex256 = hashlib.sha256(b"x").hexdigest()
    hex512 = hashlib.sha512(b"x").hexdigest()
    assert Digest.parse(f"sha256:{hex256}") == Digest("sha256", hex256)
    assert str(Digest.parse(f"sha512:{hex512}")) == f"sha512:{hex512}"


@pytest.mark.parametrize("text", [
    "sha256:abc",                         # too short
    "sha256:" + "A" * 64,                 # upper case
    "sha256:" + "g" * 64,                 # not hex
    "md5:" + "0" * 32,                    # unsupported algorithm
    "sha512:" + "0" * 64,                 # wrong length for the algorithm
    "sha256" + "0" * 64,                  # no separator
    "../../etc/passwd",
    "",
])
def test_refuses_digests_it_cannot_verify(text: str) -> None:
    with pytest.raises(RegistryError) as caught:
        Digest.parse(text)
    assert caught.value.code == "DIGEST_INVALID"
    assert caught.value.status == 400


def test_compute_and_is_digest() -> None:
    assert str(compute(b"")) == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert is_digest("sha256:00") and not is_digest("latest")
