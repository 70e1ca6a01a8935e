"""Function URL configuration rules and CORS (corral.model.function_url)."""

from __future__ import annotations

import re

import pytest

from corral.model.errors import InvalidParameterValueException
from corral.model.function_url import (
    Cors,
    check_auth_type,
    new_url_id,
    url_qualifier,
    without_cors_headers,
)


def test_url_ids_look_like_lambdas():
    ids = {new_url_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[a-z0-9]{32}", i) for i in ids)


def test_qualifiers():
    assert url_qualifier(None) is None
    assert url_qualifier("$LATEST") is None
    assert url_qualifier("live") == "live"
    with pytest.raises(InvalidParameterValueException):
        url_qualifier("3")


def test_aws_iam_is_refused_until_auth_exists():
    check_auth_type("NONE")
    with pytest.raises(InvalidParameterValueException, match="AWS_IAM"):
        check_auth_type("AWS_IAM")


def test_cors_round_trip_and_bad_method():
    wire = {
        "AllowOrigins": ["https://a.example"],
        "AllowMethods": ["GET", "POST"],
        "AllowHeaders": ["x-h"],
        "ExposeHeaders": ["x-e"],
        "MaxAge": 60,
        "AllowCredentials": True,
    }
    assert Cors.from_wire(wire).to_wire() == wire
    with pytest.raises(InvalidParameterValueException):
        Cors.from_wire({"AllowMethods": ["FETCH"]})


def test_cors_response_headers():
    cors = Cors.from_wire({"AllowOrigins": ["https://a.example"], "ExposeHeaders": ["x-e"]})
    assert dict(cors.response_headers("https://a.example")) == {
        "access-control-allow-origin": "https://a.example",
        "vary": "Origin",
        "access-control-expose-headers": "x-e",
    }
    assert cors.response_headers("https://evil.example") == []
    assert cors.response_headers(None) == []


def test_cors_wildcard_origin():
    cors = Cors.from_wire({"AllowOrigins": ["*"]})
    assert cors.response_headers("https://x") == [("access-control-allow-origin", "*")]
    with_credentials = Cors.from_wire({"AllowOrigins": ["*"], "AllowCredentials": True})
    assert (
        dict(with_credentials.response_headers("https://x"))["access-control-allow-origin"]
        == "https://x"
    )


def test_preflight():
    cors = Cors.from_wire(
        {
            "AllowOrigins": ["*"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["content-type", "x-h"],
            "MaxAge": 300,
        }
    )
    headers = dict(cors.preflight_headers("https://x", "POST", "x-h"))
    assert headers == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET,POST",
        "access-control-allow-headers": "content-type,x-h",
        "access-control-max-age": "300",
    }
    assert cors.preflight_headers("https://x", "DELETE", None) == []


def test_function_cors_headers_are_replaced():
    headers = [("access-control-allow-origin", "*"), ("x-a", "1")]
    assert without_cors_headers(headers) == [("x-a", "1")]
