"""Function logs through the CloudWatch Logs API (boto3 `logs`): log groups and streams as
Lambda names them, GetLogEvents paging, FilterLogEvents patterns, retention, bad input."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support import logs_client, make_zip, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
INIT_START = re.compile(
    r"^INIT_START Runtime Version: python:3\.11\.\S+\t"
    r"Runtime Version ARN: arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}$"
)
STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
HANDLER = """
import os

def handler(event, context):
    for line in event.get("say", []):
        print(line)
    return {
        "group": os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
        "stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
        "context": [context.log_group_name, context.log_stream_name],
    }
"""


@pytest.fixture(scope="module")
def logs(corral_url):
    return logs_client(corral_url)


def _create(lam, source: str = HANDLER, **kw) -> str:
    name = f"logs-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
        **kw,
    )
    return name


def _invoke(lam, name: str, **event) -> dict:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


def _messages(logs, group: str, reports: int) -> list[str]:
    """Every message of the group, once it holds `reports` REPORT lines."""

    def ready():
        events = logs.filter_log_events(logGroupName=group)["events"]
        found = [e["message"] for e in events]
        return found if sum(m.startswith("REPORT") for m in found) >= reports else None

    return wait_until(ready, what=f"{reports} REPORT events in {group}")


def _error(call, **params) -> str:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response["Error"]["Code"]


def test_invocation_is_logged_in_the_function_group_and_environment_stream(lam, logs):
    name = _create(lam)
    got = _invoke(lam, name, say=["hello from the function"])
    group = f"/aws/lambda/{name}"
    assert got["group"] == group and STREAM.match(got["stream"])
    assert got["context"] == [group, got["stream"]]
    messages = _messages(logs, group, 1)

    # A cold start: INIT_START first, as Lambda writes it.
    assert INIT_START.match(messages[0]), messages[0]
    assert messages[1].startswith("START RequestId: ")
    assert messages[2:4] == ["hello from the function", messages[3]]
    assert messages[3].startswith("END RequestId: ")
    assert messages[4].startswith("REPORT RequestId: ")
    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    assert groups[0]["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:*"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [got["stream"]]
    assert streams[0]["firstEventTimestamp"] <= streams[0]["lastEventTimestamp"]
    events = logs.get_log_events(
        logGroupName=group, logStreamName=got["stream"], startFromHead=True
    )["events"]
    assert [e["message"] for e in events] == messages
    assert all(e["ingestionTime"] >= e["timestamp"] > 0 for e in events)


def test_get_log_events_pages_both_ways_and_repeats_the_token_at_the_end(lam, logs):
    name = _create(lam)
    stream = _invoke(lam, name, say=[f"line {i}" for i in range(7)])["stream"]
    group = f"/aws/lambda/{name}"
    everything = _messages(logs, group, 1)
    assert len(everything) == 11  # INIT_START, START, 7 lines, END, REPORT

    seen, token, kw = [], None, {"startFromHead": True}
    for _ in range(20):
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=3, **kw)
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
        kw = {"nextToken": token}
    assert seen == everything

    latest = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=3)
    assert [e["message"] for e in latest["events"]] == everything[-3:]
    older = logs.get_log_events(
        logGroupName=group, logStreamName=stream, limit=3, nextToken=latest["nextBackwardToken"]
    )
    assert [e["message"] for e in older["events"]] == everything[-6:-3]

    # Following the forward token picks up what the next invocation logs.
    _invoke(lam, name, say=["later"])
    follow = wait_until(
        lambda: (
            logs.get_log_events(
                logGroupName=group, logStreamName=stream, nextToken=latest["nextForwardToken"]
            )["events"]
            or None
        ),
        what="events after the forward token",
    )
    assert follow[0]["message"].startswith("START") and follow[1]["message"] == "later"


def test_filter_log_events_matches_terms_phrases_and_alternatives(lam, logs):
    name = _create(lam)
    _invoke(lam, name, say=["alpha beta", "alpha gamma", "delta"])
    group = f"/aws/lambda/{name}"
    _messages(logs, group, 1)

    def matching(pattern: str) -> list[str]:
        events = logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"]
        return [e["message"] for e in events]

    assert matching("alpha beta") == ["alpha beta"]
    assert matching("beta alpha") == ["alpha beta"]
    assert matching('"alpha gamma"') == ["alpha gamma"]
    assert matching('"gamma alpha"') == []
    assert matching("?beta ?delta") == ["alpha beta", "delta"]
    assert matching("alpha -gamma") == ["alpha beta"]


def test_filter_log_events_pages_interleaved_streams(lam, logs):
    name = _create(lam)
    _invoke(lam, name, say=["one"])
    lam.publish_version(FunctionName=name)
    lam.invoke(FunctionName=name, Qualifier="1", Payload=b'{"say": ["two"]}')
    group = f"/aws/lambda/{name}"
    everything = _messages(logs, group, 2)

    paged = logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 2}
    )
    events = [e for page in paged for e in page["events"]]
    assert [e["message"] for e in events] == everything
    assert len({e["eventId"] for e in events}) == len(events)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    streams = {e["logStreamName"] for e in events}
    assert len(streams) == 2 and any("[1]" in s for s in streams)

    by_time = logs.describe_log_streams(
        logGroupName=group, orderBy="LastEventTime", descending=True
    )["logStreams"]
    assert "[1]" in by_time[0]["logStreamName"]
    only = [s for s in streams if "[1]" in s]
    picked = logs.filter_log_events(logGroupName=group, logStreamNames=only)["events"]
    assert {e["logStreamName"] for e in picked} == set(only)
    assert "two" in [e["message"] for e in picked]


def test_log_group_from_logging_config(lam, logs):
    group = f"/custom/{uuid.uuid4().hex[:8]}"
    name = _create(lam, LoggingConfig={"LogFormat": "Text", "LogGroup": group})
    assert lam.get_function_configuration(FunctionName=name)["LoggingConfig"]["LogGroup"] == group
    got = _invoke(lam, name, say=["to the custom group"])
    assert got["group"] == group
    assert "to the custom group" in _messages(logs, group, 1)
    assert logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"] == []


def test_log_group_life_cycle_and_retention(logs):
    group = f"/corral/test/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    assert _error(logs.create_log_group, logGroupName=group) == "ResourceAlreadyExistsException"
    logs.put_retention_policy(logGroupName=group, retentionInDays=14)
    (described,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described["retentionInDays"] == 14
    logs.delete_retention_policy(logGroupName=group)
    (described,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert "retentionInDays" not in described
    logs.delete_log_group(logGroupName=group)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []


def test_describe_log_groups_pages(logs):
    prefix = f"/corral/paged/{uuid.uuid4().hex[:8]}/"
    for i in range(5):
        logs.create_log_group(logGroupName=f"{prefix}{i}")
    pages = logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=prefix, PaginationConfig={"PageSize": 2}
    )
    names = [g["logGroupName"] for page in pages for g in page["logGroups"]]
    assert names == [f"{prefix}{i}" for i in range(5)]


def test_deleted_group_is_created_again_by_the_next_invocation(lam, logs):
    name = _create(lam)
    _invoke(lam, name, say=["first"])
    group = f"/aws/lambda/{name}"
    _messages(logs, group, 1)
    logs.delete_log_group(logGroupName=group)
    _invoke(lam, name, say=["second"])
    messages = _messages(logs, group, 1)
    assert "second" in messages and "first" not in messages


def test_long_line_is_cut_at_the_event_limit(lam, logs):
    name = _create(lam)
    _invoke(lam, name, say=["x" * 300_000])
    messages = _messages(logs, f"/aws/lambda/{name}", 1)
    assert [len(m) for m in messages if m.startswith("xxx")] == [256 * 1024 - 26]


# ---- bad input ------------------------------------------------------------------------


def test_unknown_group_or_stream_is_resource_not_found(logs):
    missing = "/aws/lambda/no-such-function-anywhere"
    assert _error(logs.describe_log_streams, logGroupName=missing) == "ResourceNotFoundException"
    assert _error(logs.filter_log_events, logGroupName=missing) == "ResourceNotFoundException"
    assert _error(logs.delete_log_group, logGroupName=missing) == "ResourceNotFoundException"
    assert (
        _error(logs.put_retention_policy, logGroupName=missing, retentionInDays=1)
        == "ResourceNotFoundException"
    )
    assert (
        _error(logs.get_log_events, logGroupName=missing, logStreamName="x")
        == "ResourceNotFoundException"
    )
    group = f"/corral/test/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    with pytest.raises(ClientError) as caught:
        logs.get_log_events(logGroupName=group, logStreamName="no-such-stream")
    assert caught.value.response["Error"] == {
        "Code": "ResourceNotFoundException",
        "Message": "The specified log stream does not exist.",
    }


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("put_retention_policy", {"retentionInDays": 2}),
        ("describe_log_streams", {"limit": 51}),
        ("describe_log_streams", {"orderBy": "LastEventTime", "logStreamNamePrefix": "2026"}),
        ("filter_log_events", {"filterPattern": "{ $.level = ERROR }"}),
        ("filter_log_events", {"nextToken": "garbage"}),
        ("filter_log_events", {"logStreamNames": ["a"], "logStreamNamePrefix": "a"}),
        ("filter_log_events", {"startTime": 10, "endTime": 5}),
        ("get_log_events", {"logStreamName": "s", "nextToken": "f/x"}),
        ("get_log_events", {"logStreamName": "s", "limit": 10_001}),
    ],
)
def test_bad_parameters_are_invalid_parameter(logs, operation, params):
    group = f"/corral/test/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    assert _error(getattr(logs, operation), logGroupName=group, **params) == (
        "InvalidParameterException"
    )


def test_bad_group_name_is_invalid_parameter(logs):
    assert _error(logs.create_log_group, logGroupName="bad name!") == "InvalidParameterException"


def _post(url: str, target: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/",
        data=body,
        method="POST",
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_wire_errors_are_json_with_type(corral_url):
    status, body = _post(corral_url, "Logs_20140328.PutLogEvents", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body = _post(corral_url, "Logs_20140328.DescribeLogGroups", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = _post(corral_url, "Logs_20140328.DescribeLogGroups", b'{"limit": "x"}')
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = _post(corral_url, "Logs_20140328.DescribeLogGroups", b"{}")
    assert status == 200 and isinstance(body["logGroups"], list)


def test_out_of_range_tokens_and_offsets_are_refused(lam, logs, corral_url):
    """Numbers past 64 bits in a token or cursor are a bad token, not a server error."""
    name = _create(lam)
    stream = _invoke(lam, name)["stream"]
    group = f"/aws/lambda/{name}"
    _messages(logs, group, 1)
    huge = "99999999999999999999999"
    invalid = {
        "Code": "InvalidParameterException",
        "Message": "The specified nextToken is invalid.",
    }
    for token in (f"f/1/{huge}/1", f"b/{huge}/1/1", f"f/1/1/-{huge}"):
        with pytest.raises(ClientError) as caught:
            logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=token)
        assert caught.value.response["Error"] == invalid, token
    for token in (f"n/{huge}/1/1", f"n/1/{huge}/1", f"n/1/1/{huge}"):
        with pytest.raises(ClientError) as caught:
            logs.filter_log_events(logGroupName=group, nextToken=token)
        assert caught.value.response["Error"] == invalid, token
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{corral_url}/corral/v1/functions/{name}/logs?offset={huge}")
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["Type"] == "User"
