"""Payload format 1.0/2.0 events and Lambda's reading of results (corral.model.http_event)."""

from __future__ import annotations

import base64

import orjson
import pytest

from corral.model.http_event import (
    EventContext,
    HttpRequest,
    MalformedResponse,
    event_v1,
    event_v2,
    is_text,
    response_v1,
    response_v2,
)

CTX = EventContext("anonymous", "abc", "abc.lambda-url.us-east-1.localhost", "req-1", now_s=0)


def _request(**kw) -> HttpRequest:
    fields = {
        "method": "GET",
        "raw_path": "/a%20b/c",
        "raw_query": "",
        "headers": [("user-agent", "ua"), ("host", "h")],
        "body": b"",
        "source_ip": "10.0.0.1",
    }
    fields.update(kw)
    return HttpRequest(**fields)


def test_v2_minimal_event():
    event = event_v2(_request(), CTX)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/a%20b/c"
    assert event["rawQueryString"] == ""
    assert "cookies" not in event and "queryStringParameters" not in event
    assert "body" not in event and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/a b/c",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.1",
        "userAgent": "ua",
    }
    assert context["domainPrefix"] == "abc"
    assert context["stage"] == "$default"
    assert context["time"] == "01/Jan/1970:00:00:00 +0000"
    assert context["timeEpoch"] == 0


def test_v2_repeated_headers_query_and_cookies():
    request = _request(
        raw_query="a=1&a=2&b=x%20y&empty=",
        headers=[
            ("x-r", "1"),
            ("x-r", "2"),
            ("cookie", "c1=v1; c2=v2"),
            ("cookie", "c3=v3"),
        ],
    )
    event = event_v2(request, CTX)
    assert event["headers"] == {"x-r": "1,2"}
    assert event["cookies"] == ["c1=v1", "c2=v2", "c3=v3"]
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/plain; charset=utf-8", True),
        ("application/json", True),
        ("application/vnd.api+json", True),
        ("application/xml", True),
        ("application/octet-stream", False),
        ("image/png", False),
        (None, False),
    ],
)
def test_text_content_types(content_type, text):
    assert is_text(content_type) is text


def test_binary_body_is_base64():
    body = bytes(range(256))
    event = event_v2(_request(body=body, headers=[("content-type", "image/png")]), CTX)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_text_body_that_is_not_utf8_is_base64():
    event = event_v2(_request(body=b"\xff", headers=[("content-type", "text/plain")]), CTX)
    assert event["isBase64Encoded"] is True


def test_v2_route_fields():
    ctx = EventContext(
        "000000000000",
        "corral",
        "localhost",
        "r",
        route_key="GET /items/{id}",
        stage="api",
        path_parameters={"id": "7"},
    )
    event = event_v2(_request(raw_path="/api/items/7"), ctx)
    assert event["routeKey"] == "GET /items/{id}"
    assert event["pathParameters"] == {"id": "7"}
    assert event["requestContext"]["stage"] == "api"


def test_v1_event():
    request = _request(
        method="POST",
        raw_query="a=1&a=2",
        headers=[("x-r", "1"), ("x-r", "2")],
        body=b'{"k": 1}',
    )
    ctx = EventContext(
        "000000000000",
        "corral",
        "localhost",
        "r",
        route_key="POST /items/{id}",
        stage="api",
        resource_path="/items/{id}",
        path_parameters={"id": "7"},
    )
    event = event_v1(request, ctx)
    assert event["version"] == "1.0"
    assert event["resource"] == "/items/{id}"
    assert event["httpMethod"] == "POST"
    assert event["headers"] == {"x-r": "2"}
    assert event["multiValueHeaders"] == {"x-r": ["1", "2"]}
    assert event["queryStringParameters"] == {"a": "2"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["pathParameters"] == {"id": "7"}
    assert event["body"] == "eyJrIjogMX0="  # no content type: binary, base64
    assert event["isBase64Encoded"] is True
    assert event["requestContext"]["resourcePath"] == "/items/{id}"


def test_v1_without_query_has_nulls():
    event = event_v1(_request(), CTX)
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["body"] is None


# ---- responses ----------------------------------------------------------------------------


def test_v2_structured_response():
    payload = orjson.dumps(
        {
            "statusCode": 201,
            "headers": {"X-A": "1", "X-N": 2},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": "hi",
        }
    )
    response = response_v2(payload)
    assert response.status == 201
    assert response.headers == [
        ("x-a", "1"),
        ("x-n", "2"),
        ("set-cookie", "a=1; Path=/"),
        ("set-cookie", "b=2"),
    ]
    assert response.body == b"hi"


def test_v2_base64_body():
    body = bytes(range(256))
    payload = orjson.dumps(
        {"statusCode": 200, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    )
    assert response_v2(payload).body == body


@pytest.mark.parametrize(
    "payload", [b'"Hello, world!"', b'{"message": "hi"}', b"[1, 2]", b"42", b"null"]
)
def test_v2_other_results_are_json_bodies(payload):
    response = response_v2(payload)
    assert response.status == 200
    assert response.headers == [("content-type", "application/json")]
    assert response.body == payload


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "200"},
        {"statusCode": 99},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
    ],
)
def test_v2_malformed(result):
    with pytest.raises(MalformedResponse):
        response_v2(orjson.dumps(result))


def test_v1_response_merges_headers():
    payload = orjson.dumps(
        {
            "statusCode": 200,
            "headers": {"a": "1", "b": "2"},
            "multiValueHeaders": {"b": ["x", "y"]},
            "body": "ok",
        }
    )
    response = response_v1(payload)
    assert response.headers == [("b", "x"), ("b", "y"), ("a", "1")]
    assert response.body == b"ok"


@pytest.mark.parametrize("payload", [b'"text"', b'{"body": "x"}', b"not json"])
def test_v1_requires_status_code(payload):
    with pytest.raises(MalformedResponse):
        response_v1(payload)


@pytest.mark.parametrize("status", [299, 420, 499, 599])
def test_unnamed_final_statuses_pass_through(status):
    assert response_v2(orjson.dumps({"statusCode": status})).status == status
    assert response_v1(orjson.dumps({"statusCode": status})).status == status


@pytest.mark.parametrize("status", [100, 101, 199, 600])
def test_interim_and_out_of_range_statuses_are_malformed(status):
    with pytest.raises(MalformedResponse):
        response_v2(orjson.dumps({"statusCode": status}))
