"""Route keys and API Gateway's choice of route (corral.model.http_route)."""

from __future__ import annotations

import pytest

from corral.model.errors import InvalidParameterValueException
from corral.model.http_route import Route, RouteTable, check_route


def _table(*keys: str) -> RouteTable:
    return RouteTable([Route(f"r{i}", key, "fn") for i, key in enumerate(keys)])


def _pick(table: RouteTable, method: str, path: str):
    found = table.match(method, path)
    return None if found is None else (found[0].route_key, found[1])


def test_exact_beats_parameter_beats_greedy():
    table = _table("GET /items/{proxy+}", "GET /items/{id}", "GET /items/special")
    assert _pick(table, "GET", "/items/special") == ("GET /items/special", {})
    assert _pick(table, "GET", "/items/7") == ("GET /items/{id}", {"id": "7"})
    assert _pick(table, "GET", "/items/7/parts") == (
        "GET /items/{proxy+}",
        {"proxy": "7/parts"},
    )


def test_literal_segment_first_wins():
    table = _table("GET /{a}/b", "GET /a/{b}")
    assert _pick(table, "GET", "/a/b") == ("GET /a/{b}", {"b": "b"})


def test_method_beats_any_and_default_catches_the_rest():
    table = _table("ANY /x", "POST /x", "$default")
    assert _pick(table, "POST", "/x")[0] == "POST /x"
    assert _pick(table, "DELETE", "/x")[0] == "ANY /x"
    assert _pick(table, "GET", "/nowhere") == ("$default", {})


def test_no_match_without_default():
    table = _table("GET /x")
    assert _pick(table, "POST", "/x") is None
    assert _pick(table, "GET", "/x/y") is None
    assert _pick(table, "GET", "/") is None


def test_root_and_decoded_parameters():
    table = _table("GET /", "GET /files/{name}")
    assert _pick(table, "GET", "/") == ("GET /", {})
    assert _pick(table, "GET", "/files/a%20b") == ("GET /files/{name}", {"name": "a b"})


def test_longer_greedy_prefix_wins():
    table = _table("ANY /{proxy+}", "ANY /api/{proxy+}")
    assert _pick(table, "GET", "/api/x")[0] == "ANY /api/{proxy+}"
    assert _pick(table, "GET", "/other/x")[0] == "ANY /{proxy+}"


def test_a_greedy_variable_needs_a_child_resource():
    table = _table("ANY /items/{proxy+}", "ANY /{all+}")
    assert _pick(table, "GET", "/items/") == ("ANY /{all+}", {"all": "items/"})
    assert _pick(table, "GET", "/items/a") == ("ANY /items/{proxy+}", {"proxy": "a"})
    assert _pick(table, "GET", "/") is None  # the root is no child of /{all+}


def test_check_route_canonical_form():
    assert check_route("get /items/{id}", "2.0", 30000) == "GET /items/{id}"
    assert check_route("$default", "1.0", 50) == "$default"


@pytest.mark.parametrize(
    ("key", "fmt", "timeout"),
    [
        ("FETCH /x", "2.0", 30000),
        ("GET x", "2.0", 30000),
        ("GET /{a+}/b", "2.0", 30000),
        ("GET /{a}/{a}", "2.0", 30000),
        ("GET //x", "2.0", 30000),
        ("GET /x", "3.0", 30000),
        ("GET /x", "2.0", 49),
        ("GET /x", "2.0", 30001),
        ("", "2.0", 30000),
        ("GET /" + "a" * 600, "2.0", 30000),
    ],
)
def test_check_route_refuses(key, fmt, timeout):
    with pytest.raises(InvalidParameterValueException):
        check_route(key, fmt, timeout)
