import pytest

from cargohold.oci.errors import RegistryError
from cargohold.oci.reference import MAX_NAME_DEPTH, MAX_NAME_LENGTH, is_valid_tag, validate_name


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b_c__d-e---f/g0", "x/" * 5 + "y"])
def test_accepts_names_of_the_grammar(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", [
    "", "A", "a/", "/a", "a//b", "a..b", "a_-b", "-a", "a-", "../x", "a/./b", "ａ", "a b",
    "a" * (MAX_NAME_LENGTH + 1), "/".join(["a"] * (MAX_NAME_DEPTH + 1)),
])
def test_refuses_names_outside_the_grammar(name: str) -> None:
    with pytest.raises(RegistryError) as caught:
        validate_name(name)
    assert (caught.value.code, caught.value.status) == ("NAME_INVALID", 400)


@pytest.mark.parametrize("tag,valid", [
    ("latest", True), ("v1.2.3-rc_1", True), ("_x", True), ("A" * 128, True),
    ("A" * 129, False), (".hidden", False), ("-x", False), ("a/b", False), ("", False), ("a:b", False),
])
def test_tag_grammar(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid
