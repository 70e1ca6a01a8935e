"""CloudWatch Logs' pure rules: filter patterns, line events, retention values, tokens."""

from __future__ import annotations

import pytest

from corral.model import logs


@pytest.mark.parametrize(
    ("pattern", "message", "matches"),
    [
        ("ERROR", "an ERROR here", True),
        ("ERROR", "an error here", False),  # case-sensitive, as CloudWatch
        ("ERROR timeout", "timeout then ERROR", True),
        ("ERROR timeout", "ERROR only", False),
        ('"Task timed out"', "x Task timed out after", True),
        ('"Task timed out"', "Task out timed", False),
        ("?alpha ?beta", "beta", True),
        ("?alpha ?beta", "gamma", False),
        ("ERROR -retry", "ERROR final", True),
        ("ERROR -retry", "ERROR retry 2", False),
        ('"say \\"hi\\""', 'they say "hi"', True),
    ],
)
def test_filter_pattern_terms(pattern, message, matches):
    assert logs.parse_filter_pattern(pattern).matches(message) is matches


@pytest.mark.parametrize("pattern", ["", "   ", None])
def test_empty_filter_pattern_matches_everything(pattern):
    assert logs.parse_filter_pattern(pattern) is None


@pytest.mark.parametrize("pattern", ['{ $.level = "ERROR" }', "[ip, user]", '"open', "%reg%"])
def test_unsupported_filter_patterns_are_invalid_parameter(pattern):
    with pytest.raises(logs.InvalidParameterException):
        logs.parse_filter_pattern(pattern)


def test_split_lines_keeps_the_incomplete_rest_and_drops_empty_lines():
    messages, rest = logs.split_lines(b"one\r\n\ntwo\nthr")
    assert (messages, rest) == (["one", "two"], b"thr")


def test_split_lines_cuts_at_the_event_limit():
    (message,), _ = logs.split_lines(b"y" * (logs.EVENT_MAX_BYTES + 10) + b"\n")
    assert len(message) == logs.EVENT_MAX_BYTES


@pytest.mark.parametrize("days", [2, 0, 4000, "7", 7.0, None])
def test_retention_outside_lambda_values_is_invalid(days):
    with pytest.raises(logs.InvalidParameterException, match="retentionInDays"):
        logs.check_retention(days)


def test_tokens_round_trip_and_refuse_garbage():
    token = logs.encode_token("f", (1700000000000, 12, 3))
    assert logs.decode_token(token, "fb") == ("f", (1700000000000, 12, 3))
    for bad in ("garbage", "x/1/2/3", "f/1/2", "n/a/b/c"):
        with pytest.raises(logs.InvalidParameterException):
            logs.decode_token(bad, "fb")
    assert logs.decode_page_token(logs.encode_page_token(100)) == 100
    with pytest.raises(logs.InvalidParameterException):
        logs.decode_page_token("!!")


def test_drop_below_level_counts_lines_without_a_level_as_info():
    lines = (
        b'{"level": "debug", "m": 1}\n'
        b'{"level": "ERROR", "m": 2}\n'
        b"plain\n"
        b'{"level": "bogus", "m": 3}\n'
        b'{"level": 5}\n'
    )
    kept = logs.drop_below_level(lines, logs.level_rank("WARN"))
    assert kept == b'{"level": "ERROR", "m": 2}\n'
    kept = logs.drop_below_level(lines, logs.level_rank("INFO"))
    assert kept == b'{"level": "ERROR", "m": 2}\nplain\n{"level": "bogus", "m": 3}\n{"level": 5}\n'
    assert logs.level_filter_needed(b"plain\n", logs.level_rank("WARN"))
    assert not logs.level_filter_needed(b"plain\n", logs.level_rank("INFO"))
    assert not logs.level_filter_needed(b'{"level": "debug"}\n', logs.level_rank("TRACE"))


def test_level_filter_works_on_output_in_pieces():
    level = logs.LevelFilter(logs.level_rank("WARN"))
    kept = level.feed(b'{"level": "ERR')
    kept += level.feed(b'OR", "m": 1}\nplain\n{"level": "debug"}\n{"level": "WARN"}')
    assert kept == b'{"level": "ERROR", "m": 1}\n'
    assert level.end() == b'{"level": "WARN"}'
    assert level.feed(b"x") == b"" and level.end() == b""  # "x" has no level: INFO
