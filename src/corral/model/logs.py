"""CloudWatch Logs as Corral serves it: errors, limits, filter patterns, paging tokens,
and the platform's JSON log records. Pure: no I/O.

Errors are CloudWatch Logs' (JSON 1.1: `{"__type": ..., "message": ...}`, HTTP 400 for
every client error), not Lambda's; shapes and limits from botocore's
logs/2014-03-28/service-2.json.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass

import orjson

# PutRetentionPolicy's allowed values (the `Days` shape's documentation).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)
RETENTION_DAYS += (2192, 2557, 2922, 3288, 3653)
# CloudWatch Logs' largest event: 256 KB including 26 bytes of per-event overhead
# (PutLogEvents quotas); Lambda cuts longer lines there.
EVENT_MAX_BYTES = 256 * 1024 - 26
GET_EVENTS_MAX_BYTES = 1024 * 1024  # GetLogEvents/FilterLogEvents answer at most 1 MB
EVENTS_LIMIT_MAX = 10_000
DESCRIBE_LIMIT_MAX = 50
LOG_GROUP_NAME = re.compile(r"[\.\-_/#A-Za-z0-9]{1,512}")
LOG_LEVELS_APPLICATION = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LOG_LEVELS_SYSTEM = ("DEBUG", "INFO", "WARN")


class LogsError(Exception):
    """An error of the CloudWatch Logs API: `error_type` is the wire `__type`."""

    error_type = "ServiceUnavailableException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameterException(LogsError):
    error_type = "InvalidParameterException"
    status = 400


class ResourceNotFoundException(LogsError):
    error_type = "ResourceNotFoundException"
    status = 400


class ResourceAlreadyExistsException(LogsError):
    error_type = "ResourceAlreadyExistsException"
    status = 400


class SerializationException(LogsError):
    error_type = "SerializationException"
    status = 400


class UnknownOperationException(LogsError):
    error_type = "UnknownOperationException"
    status = 400


def group_not_found() -> ResourceNotFoundException:
    return ResourceNotFoundException("The specified log group does not exist.")


def stream_not_found() -> ResourceNotFoundException:
    return ResourceNotFoundException("The specified log stream does not exist.")


def check_retention(days: object) -> int:
    if type(days) is not int or days not in RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in RETENTION_DAYS)
        raise InvalidParameterException(
            f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to "
            f"satisfy constraint: Member must satisfy enum value set: [{allowed}]"
        )
    return days


def now_ms() -> int:
    return int(time.time() * 1000)


# ---- events ---------------------------------------------------------------------------


def split_lines(data: bytes) -> tuple[list[str], bytes]:
    """Complete lines of `data` as event messages (empty ones dropped, each cut at
    EVENT_MAX_BYTES), and the incomplete rest after the last newline."""
    *lines, rest = data.split(b"\n")
    messages = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line:
            messages.append(line[:EVENT_MAX_BYTES].decode("utf-8", "replace"))
    return messages, rest


# ---- filter patterns ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterPattern:
    """CloudWatch's plain-term patterns: every term must occur (`ERROR timeout`), a
    quoted phrase counts as one term (`"Task timed out"`), `?a ?b` matches events with
    any of them, and `-term` excludes. Case-sensitive, as CloudWatch's. JSON (`{ ... }`)
    and space-delimited (`[...]`) patterns are refused."""

    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()

    def matches(self, message: str) -> bool:
        if any(term not in message for term in self.all_of):
            return False
        if self.any_of and not any(term in message for term in self.any_of):
            return False
        return not any(term in message for term in self.none_of)


_TERM = re.compile(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')


def parse_filter_pattern(text: str | None) -> FilterPattern | None:
    """None for an empty pattern (everything matches). Raises InvalidParameterException."""
    if not text or not text.strip():
        return None
    stripped = text.strip()
    if stripped[0] in "{[" or stripped.startswith("%"):
        raise InvalidParameterException(
            "Invalid filter pattern: Corral supports plain terms, quoted phrases, ?term "
            "and -term; JSON, space-delimited and regular-expression patterns are not supported"
        )
    all_of, any_of, none_of = [], [], []
    pos = 0
    while pos < len(stripped):
        if stripped[pos].isspace():
            pos += 1
            continue
        m = _TERM.match(stripped, pos)
        if m is None or (m.group(2) is None and m.group(3) is None):
            raise InvalidParameterException(f"Invalid filter pattern: {text!r}")
        term = m.group(2) if m.group(2) is not None else m.group(3)
        if m.group(2) is not None:
            term = re.sub(r"\\(.)", r"\1", term)
        elif '"' in term:
            raise InvalidParameterException(f"Invalid filter pattern: unbalanced quote in {text!r}")
        if term:
            {"?": any_of, "-": none_of, "": all_of}[m.group(1)].append(term)
        pos = m.end()
    return FilterPattern(tuple(all_of), tuple(any_of), tuple(none_of))


# ---- paging tokens --------------------------------------------------------------------
# An event's position is (timestamp, chunk id, index in chunk): one order for every stream.

Position = tuple[int, int, int]
# Every part of a position a token names lies within this: well inside SQLite's signed
# 64 bits, with room for the +-1 that paging adds (Corral's own tokens stay within it).
TOKEN_PART_MAX = 1 << 62


def encode_token(prefix: str, position: Position) -> str:
    return f"{prefix}/{position[0]:013d}/{position[1]}/{position[2]}"


def decode_token(token: str, prefixes: str) -> tuple[str, Position]:
    """`prefixes`: the token kinds this operation accepts ("fb" or "n")."""
    try:
        prefix, ts, chunk, index = token.split("/")
        position = (int(ts), int(chunk), int(index))
        if prefix not in prefixes or not prefix:
            raise ValueError
        if any(abs(part) > TOKEN_PART_MAX for part in position):
            raise ValueError  # SQLite takes 64-bit integers only
        return prefix, position
    except ValueError:
        raise InvalidParameterException("The specified nextToken is invalid.") from None


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"p:{offset}".encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("p:"):
            raise ValueError
        return max(0, int(text[2:]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidParameterException("The specified nextToken is invalid.") from None


# ---- the platform's records in JSON log format ----------------------------------------
# "Lambda Telemetry API schema reference" and "Log-level filtering" (system log levels):
# platform.start and platform.report are INFO, platform.runtimeDone DEBUG,
# platform.logsDropped WARN; the text format writes START, END and REPORT instead.

_LEVEL_ORDER = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "WARNING": 3, "ERROR": 4}
_LEVEL_ORDER |= {"FATAL": 5, "CRITICAL": 5}


_INFO_RANK = _LEVEL_ORDER["INFO"]


def level_rank(level: str | None) -> int:
    """A level's rank; no level, or one Lambda does not know, is INFO."""
    return _LEVEL_ORDER.get((level or "INFO").upper(), _INFO_RANK)


def level_filter_needed(lines: bytes, min_rank: int) -> bool:
    """Whether `drop_below_level` could drop any of `lines` (a cheap test for the common
    case: at INFO and below only lines naming a lower "level" can go)."""
    return min_rank > _INFO_RANK or (min_rank > 0 and b'"level"' in lines)


def drop_below_level(lines: bytes, min_rank: int) -> bytes:
    """`lines` without those whose level ranks below `min_rank`: Lambda's filtering of
    application logs ("Log-level filtering"). A line's level is the "level" of the JSON
    object it holds; a line with none, or an invalid one (plain print() output, stderr,
    other JSON), is INFO."""
    kept = []
    for line in lines.split(b"\n"):
        rank = _INFO_RANK
        if line.startswith(b"{") and b'"level"' in line:
            try:
                level = orjson.loads(line).get("level")
            except (orjson.JSONDecodeError, AttributeError):
                level = None
            if isinstance(level, str):
                rank = level_rank(level)
        if rank >= min_rank or not line:
            kept.append(line)
    return b"\n".join(kept)


class LevelFilter:
    """`drop_below_level` over output that arrives in pieces: `feed` returns the whole
    lines kept so far, `end` the rest (a last line without its newline), filtered too."""

    __slots__ = ("min_rank", "rest")

    def __init__(self, min_rank: int) -> None:
        self.min_rank = min_rank
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        lines = data[:cut]
        return drop_below_level(lines, self.min_rank) if lines else b""

    def end(self) -> bytes:
        rest, self.rest = self.rest, b""
        return drop_below_level(rest, self.min_rank) if rest else b""


def iso_ms(epoch_ms: int) -> str:
    seconds, ms = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"
