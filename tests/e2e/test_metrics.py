"""Metrics (/metrics), metering (/corral/v1/usage, .../stats) and the `corral stats` and
`corral usage` commands, after known sequences of invocations against a real server."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from email.message import Message
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from corral.store.metering import MeteringStore
from tests.e2e.test_cli import corral_cli, ok
from tests.support import CorralProcess, lambda_client, make_zip, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
HANDLER = """
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""
BILLED = re.compile(r"^REPORT RequestId: \S+\t.*Billed Duration: (\d+) ms", re.MULTILINE)
GB_SECOND_USD = 0.0000166667
MILLION_REQUESTS_USD = 0.20


def _create(client, memory_mb: int = 128) -> str:
    name = f"met-{uuid.uuid4().hex[:10]}"
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
        MemorySize=memory_mb,
    )
    return name


def _invoke(client, name: str, fail: bool = False, **kw) -> dict:
    return client.invoke(FunctionName=name, Payload=json.dumps({"fail": fail}).encode(), **kw)


def _get(url: str) -> tuple[int, Message, bytes]:
    """Status, headers (case-insensitive) and body, for error statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _scrape(url: str) -> dict[tuple[str, frozenset], float]:
    status, _, body = _get(f"{url}/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _billed_in_reports(url: str, name: str, count: int) -> list[int]:
    """The Billed Duration of each REPORT line, once the log holds `count` of them."""

    def reports():
        _, _, log = _get(f"{url}/corral/v1/functions/{name}/logs")
        found = [int(b) for b in BILLED.findall(log.decode())]
        return found if len(found) == count else None

    return wait_until(reports, what=f"{count} REPORT lines of {name}")


def _usage(url: str, **params: str) -> dict:
    status, _, body = _get(f"{url}/corral/v1/usage?{urlencode(params)}")
    assert status == 200, body
    return json.loads(body)


def _sequence(client, name: str, successes: int, failures: int) -> None:
    for _ in range(successes):
        assert "FunctionError" not in _invoke(client, name)
    for _ in range(failures):
        assert _invoke(client, name, fail=True)["FunctionError"] == "Unhandled"


# ---- /metrics -----------------------------------------------------------------------

REPORT = re.compile(
    r"^REPORT RequestId: \S+\tDuration: ([\d.]+) ms\tBilled Duration: (\d+) ms\t.*?"
    r"(?:Init Duration: ([\d.]+) ms)?\t$",
    re.MULTILINE,
)


def test_cold_start_bills_the_init_phase_everywhere(corral_url, lam):
    """Lambda bills INIT on on-demand cold starts (since August 2025): REPORT, the usage
    bill and the billed-duration metric all include it."""
    name = _create(lam)
    _invoke(lam, name)
    _invoke(lam, name)
    billed = _billed_in_reports(corral_url, name, 2)
    _, _, log = _get(f"{corral_url}/corral/v1/functions/{name}/logs")
    (cold, warm) = REPORT.findall(log.decode())
    duration, cold_billed, init = float(cold[0]), int(cold[1]), float(cold[2])
    # REPORT prints two decimals: allow their rounding either way.
    assert duration + init - 0.01 <= cold_billed < duration + init + 1.01
    assert warm[2] == "" and float(warm[0]) - 0.01 <= int(warm[1]) < float(warm[0]) + 1.01
    fv = {"function": name, "version": "$LATEST"}
    assert _value(_scrape(corral_url), "corral_billed_duration_milliseconds_total", **fv) == sum(
        billed
    )
    assert _usage(corral_url, function=name)["totals"]["billed_ms"] == sum(billed)


def test_metrics_count_a_known_sequence_exactly(corral_url, lam):
    name = _create(lam)
    _sequence(lam, name, successes=5, failures=2)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as caught:
        _invoke(lam, name)
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    lam.delete_function_concurrency(FunctionName=name)
    billed = _billed_in_reports(corral_url, name, 7)

    s = _scrape(corral_url)
    fv = {"function": name, "version": "$LATEST"}
    assert _value(s, "corral_invocations_total", **fv, type="sync", result="success") == 5
    assert _value(s, "corral_invocations_total", **fv, type="sync", result="error") == 2
    assert _value(s, "corral_invocations_total", **fv, type="event", result="success") == 0
    assert _value(s, "corral_errors_total", **fv) == 2
    assert _value(s, "corral_throttles_total", function=name, type="sync") == 1
    assert _value(s, "corral_duration_seconds_count", **fv) == 7
    assert _value(s, "corral_duration_seconds_bucket", **fv, le="+Inf") == 7
    assert _value(s, "corral_billed_duration_milliseconds_total", **fv) == sum(billed)
    assert _value(s, "corral_cold_starts_total", **fv) == 1
    assert _value(s, "corral_init_duration_seconds_count", **fv) == 1
    assert _value(s, "corral_concurrent_executions", function=name) == 0
    assert _value(s, "corral_environments", **fv, state="idle") == 1
    assert _value(s, "corral_environments", **fv, state="busy") == 0


def test_metrics_count_event_invocations_by_type(corral_url, lam):
    name = _create(lam)
    for _ in range(2):
        assert _invoke(lam, name, InvocationType="Event")["StatusCode"] == 202

    def events_counted():
        s = _scrape(corral_url)
        labels = {"function": name, "version": "$LATEST", "type": "event"}
        return _value(s, "corral_invocations_total", **labels, result="success") == 2 and s

    s = wait_until(events_counted, what="2 event invocations in /metrics")
    labels = {"function": name, "version": "$LATEST", "type": "sync"}
    assert _value(s, "corral_invocations_total", **labels, result="success") == 0
    fn = {"function": name, "target": "function"}
    assert _value(s, "corral_async_queue_depth", **fn) == 0
    assert _value(s, "corral_async_queue_oldest_event_age_seconds", **fn) == 0


def test_async_queue_gauges_are_per_function(corral_url, lam):
    """Events held back (no concurrency for the function) count in its own series only."""
    held, other = _create(lam), _create(lam)
    lam.put_function_concurrency(FunctionName=held, ReservedConcurrentExecutions=0)
    try:
        for _ in range(3):
            assert _invoke(lam, held, InvocationType="Event")["StatusCode"] == 202
        assert _invoke(lam, other, InvocationType="Event")["StatusCode"] == 202

        def settled():
            s = _scrape(corral_url)
            done = _value(
                s, "corral_invocations_total", function=other, version="$LATEST",
                type="event", result="success",
            )  # fmt: skip
            return s if done == 1 else None

        s = wait_until(settled, what="the other function's event to run")
        held_labels = {"function": held, "target": "function"}
        assert _value(s, "corral_async_queue_depth", **held_labels) == 3
        assert _value(s, "corral_async_queue_running", **held_labels) == 0
        assert _value(s, "corral_async_queue_oldest_event_age_seconds", **held_labels) > 0
        other_labels = {"function": other, "target": "function"}
        assert _value(s, "corral_async_queue_depth", **other_labels) == 0
    finally:
        lam.delete_function(FunctionName=held)


def test_metrics_is_prometheus_text_format(corral_url):
    status, headers, _ = _get(f"{corral_url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_deleted_function_leaves_metrics(corral_url, lam):
    name = _create(lam)
    _invoke(lam, name)
    assert _value(_scrape(corral_url), "corral_errors_total", function=name, version="$LATEST") == 0
    lam.delete_function(FunctionName=name)
    assert not any(dict(labels).get("function") == name for _, labels in _scrape(corral_url))


# ---- usage --------------------------------------------------------------------------


def test_usage_totals_match_report_lines(corral_url, lam):
    name = _create(lam, memory_mb=256)
    _sequence(lam, name, successes=3, failures=1)
    billed = sum(_billed_in_reports(corral_url, name, 4))

    bill = _usage(corral_url, function=name)
    assert [f["function"] for f in bill["functions"]] == [name]
    line = bill["functions"][0]
    assert (line["requests"], line["billed_ms"]) == (4, billed)
    gb_seconds = 256 / 1024 * billed / 1000
    assert line["gb_seconds"] == pytest.approx(gb_seconds)
    cost = 4 * MILLION_REQUESTS_USD / 1e6 + gb_seconds * GB_SECOND_USD
    assert line["cost_usd"] == pytest.approx(cost)
    assert bill["totals"] == {k: v for k, v in line.items() if k != "function"}
    assert bill["prices"] == {
        "gb_second_usd": GB_SECOND_USD,
        "million_requests_usd": MILLION_REQUESTS_USD,
    }


def test_usage_window_excludes_invocations_outside_it(corral_url, lam):
    name = _create(lam)
    before = datetime.now(UTC) - timedelta(seconds=1)
    _invoke(lam, name)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _usage(corral_url, function=name, since=before.isoformat())["totals"]["requests"] == 1
    assert _usage(corral_url, function=name, since=later)["functions"] == []
    earlier = (before - timedelta(hours=1)).isoformat()
    assert _usage(corral_url, function=name, until=earlier)["totals"]["requests"] == 0


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-02-01&until=2026-01-01", "since"),
        ("function=no/such!name", "function"),
        ("from=2026-01-01", "from"),
    ],
)
def test_usage_bad_query_is_invalid_parameter_value(corral_url, query, mentions):
    status, headers, body = _get(f"{corral_url}/corral/v1/usage?{query}")
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    error = json.loads(body)
    assert error["Type"] == "User"
    assert mentions in error["message"]


def test_usage_survives_restart(tmp_path):
    with CorralProcess(tmp_path) as server:
        client = lambda_client(server.url)
        name = _create(client)
        _sequence(client, name, successes=2, failures=0)
        billed = sum(_billed_in_reports(server.url, name, 2))
    # SIGTERM: the server writes what it had pending before it exits
    with CorralProcess(tmp_path) as server:
        line = _usage(server.url, function=name)["totals"]
    assert (line["requests"], line["billed_ms"]) == (2, billed)


def test_usage_uses_configured_prices(tmp_path):
    prices = ["--price-gb-second", "2", "--price-million-requests", "1000000"]
    with CorralProcess(tmp_path, *prices) as server:
        client = lambda_client(server.url)
        name = _create(client, memory_mb=512)
        _sequence(client, name, successes=3, failures=0)
        billed = sum(_billed_in_reports(server.url, name, 3))
        line = _usage(server.url)["totals"]
    assert line["request_cost_usd"] == pytest.approx(3.0)
    assert line["compute_cost_usd"] == pytest.approx(2 * 0.5 * billed / 1000)


# ---- stats, and the commands --------------------------------------------------------


def test_stats_of_last_hour(corral_url, lam):
    name = _create(lam)
    _sequence(lam, name, successes=3, failures=1)
    status, _, body = _get(f"{corral_url}/corral/v1/functions/{name}/stats")
    assert status == 200
    stats = json.loads(body)
    assert (stats["invocations"], stats["errors"], stats["cold_starts"]) == (4, 1, 1)
    assert stats["cold_start_ratio"] == 0.25
    assert 0 < stats["p50_ms"] <= stats["p99_ms"]


@pytest.mark.parametrize(
    "query",
    ["window_s=inf", "window_s=nan", "window_s=-1", "window_s=x"],
)
def test_stats_window_must_be_positive_and_finite(corral_url, lam, query):
    name = _create(lam)
    status, headers, body = _get(f"{corral_url}/corral/v1/functions/{name}/stats?{query}")
    assert status == 400, body
    assert headers["x-amzn-ErrorType"] == "InvalidParameterValueException"


def test_log_follow_wait_must_be_a_number(corral_url, lam):
    name = _create(lam)
    status, _, _ = _get(f"{corral_url}/corral/v1/functions/{name}/logs?wait_s=nan")
    assert status == 400


def test_stats_command_prints_last_hour(corral_url, lam):
    name = _create(lam)
    _sequence(lam, name, successes=3, failures=1)
    lines = ok(corral_url, "stats", name).splitlines()
    assert lines[0].split() == [
        "INVOCATIONS", "ERRORS", "P50", "(ms)", "P99", "(ms)", "COLD", "STARTS",
    ]  # fmt: skip
    invocations, errors, p50, p99, cold, ratio = lines[1].split()
    assert (invocations, errors, cold, ratio) == ("4", "1", "1", "(25.0%)")
    assert 0 < float(p50) <= float(p99)


def test_stats_command_of_unknown_function_fails(corral_url):
    result = corral_cli(corral_url, "stats", "met-no-such-function")
    assert result.returncode == 2
    assert "ResourceNotFoundException" in result.stderr


def test_usage_command_prints_bill_with_total(corral_url, lam):
    name = _create(lam, memory_mb=1024)
    _sequence(lam, name, successes=2, failures=1)
    billed = sum(_billed_in_reports(corral_url, name, 3))
    lines = ok(corral_url, "usage", "--function", name).splitlines()
    assert lines[0].split() == [
        "FUNCTION",
        "REQUESTS",
        "BILLED",
        "MS",
        "GB-SECONDS",
        "COST",
        "(USD)",
    ]
    row, total = lines[1].split(), lines[2].split()
    assert row[:3] == [name, "3", str(billed)]
    assert total[:3] == ["TOTAL", "3", str(billed)]
    assert float(row[3]) == pytest.approx(billed / 1000, abs=1e-6)
    assert float(row[4]) == pytest.approx(
        3 * MILLION_REQUESTS_USD / 1e6 + billed / 1000 * GB_SECOND_USD, abs=1e-8
    )


def test_usage_command_rejects_bad_time(corral_url):
    result = corral_cli(corral_url, "usage", "--since", "last tuesday")
    assert result.returncode == 2
    assert "InvalidParameterValueException" in result.stderr


def test_old_metering_records_are_rolled_up_and_still_billed(tmp_path):
    """Past --metering-retention-days, per-invocation records become hourly sums: the
    database stops growing with them, and `usage` bills them all the same."""
    now = time.time()
    store = MeteringStore.sqlite(tmp_path / "metering.db")
    old = [
        (now - 30 * 86_400 + i, "ancient", "$LATEST", f"r{i}", "sync", 1.5, 2, 128, None, None)
        for i in range(5)
    ]
    recent = [(now - 86_400, "ancient", "$LATEST", "r9", "sync", 1.5, 3, 256, None, None)]
    store.insert(old + recent)
    store.close()
    with CorralProcess(tmp_path, "--metering-retention-days", "2") as server:

        def rows() -> int | None:
            with sqlite3.connect(tmp_path / "metering.db") as db:
                (count,) = db.execute("SELECT count(*) FROM invocation_records").fetchone()
            return count if count == 1 else None

        wait_until(rows, what="old records rolled up")
        bill = _usage(server.url, function="ancient")
        assert (bill["totals"]["requests"], bill["totals"]["billed_ms"]) == (6, 5 * 2 + 3)
        since = datetime.fromtimestamp(now - 2 * 86_400, UTC).isoformat()
        assert _usage(server.url, function="ancient", since=since)["totals"]["requests"] == 1


def test_a_failed_init_is_a_cold_start_with_its_init_duration(corral_url, lam):
    name = f"met-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "raise RuntimeError('init fails')\n"})},
    )
    assert _invoke(lam, name)["FunctionError"] == "Unhandled"
    fv = {"function": name, "version": "$LATEST"}

    def counted():
        s = _scrape(corral_url)
        return (
            s if _value(s, "corral_invocations_total", **fv, type="sync", result="error") else None
        )

    s = wait_until(counted, what="the failed invocation in /metrics")
    assert _value(s, "corral_cold_starts_total", **fv) == 1
    assert _value(s, "corral_init_duration_seconds_count", **fv) == 1
    _, _, log = _get(f"{corral_url}/corral/v1/functions/{name}/logs")
    (report,) = [line for line in log.decode().splitlines() if line.startswith("REPORT")]
    init = re.search(r"\tInit Duration: ([\d.]+) ms\t", report)
    billed = re.search(r"\tBilled Duration: (\d+) ms\t", report)
    assert init and billed and int(billed.group(1)) >= float(init.group(1))
