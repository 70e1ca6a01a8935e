"""CloudWatch Logs reads over the log store: DescribeLogGroups, DescribeLogStreams,
GetLogEvents and FilterLogEvents, with their paging, answered in the API's JSON shapes.

Work per call is bounded: GetLogEvents and FilterLogEvents stop at `limit` events or
1 MB of messages, and FilterLogEvents also after scanning SCAN_BUDGET_BYTES of stored
events, answering with a nextToken to go on (as CloudWatch does: a page may be short, or
empty, and still have a nextToken).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from corral.model import logs as model
from corral.model.arn import Scope
from corral.model.logs import FilterPattern, Position
from corral.store.logs import GroupRow, LogReads, StreamRow

SCAN_BUDGET_BYTES = 4 * 1024 * 1024
_END = 1 << 62  # beyond every chunk id and index


def group_arn(scope: Scope, name: str) -> str:
    return f"arn:aws:logs:{scope.region}:{scope.account}:log-group:{name}"


def _page(rows: list, limit: int, token: str | None) -> tuple[list, str | None]:
    start = model.decode_page_token(token)
    page = rows[start : start + limit]
    more = start + limit < len(rows)
    return page, model.encode_page_token(start + limit) if more else None


def describe_groups(
    db: LogReads, scope: Scope, prefix: str, pattern: str, limit: int, token: str | None
) -> dict:
    page, next_token = _page(db.groups(prefix, pattern), limit, token)
    answer: dict = {"logGroups": [_group_wire(scope, g) for g in page]}
    if next_token:
        answer["nextToken"] = next_token
    return answer


def _group_wire(scope: Scope, group: GroupRow) -> dict:
    arn = group_arn(scope, group.name)
    wire = {
        "logGroupName": group.name,
        "creationTime": group.created_ms,
        "metricFilterCount": 0,
        "arn": arn + ":*",
        "storedBytes": group.stored_bytes,
        "logGroupClass": "STANDARD",
        "logGroupArn": arn,
    }
    if group.retention_days is not None:
        wire["retentionInDays"] = group.retention_days
    return wire


def describe_streams(
    db: LogReads,
    scope: Scope,
    group: str,
    prefix: str,
    by_last_event: bool,
    descending: bool,
    limit: int,
    token: str | None,
) -> dict:
    if db.group(group) is None:
        raise model.group_not_found()
    rows = db.streams(group, prefix)
    if by_last_event:
        rows.sort(key=lambda s: (s.last_event_ms or 0, s.name))
    if descending:
        rows.reverse()
    page, next_token = _page(rows, limit, token)
    answer: dict = {"logStreams": [_stream_wire(scope, group, s) for s in page]}
    if next_token:
        answer["nextToken"] = next_token
    return answer


def _stream_wire(scope: Scope, group: str, stream: StreamRow) -> dict:
    wire = {
        "logStreamName": stream.name,
        "creationTime": stream.created_ms,
        "arn": f"{group_arn(scope, group)}:log-stream:{stream.name}",
        "storedBytes": stream.stored_bytes,
    }
    if stream.first_event_ms is not None:
        wire["firstEventTimestamp"] = stream.first_event_ms
        wire["lastEventTimestamp"] = stream.last_event_ms
    if stream.last_ingestion_ms is not None:
        wire["lastIngestionTime"] = stream.last_ingestion_ms
    return wire


# ---- GetLogEvents ---------------------------------------------------------------------
# Positions in a stream are (timestamp, chunk id, index); tokens name the last event
# returned going forward ("f/...") or the first going back ("b/..."); a call that finds
# nothing more gives back the token it was called with, as CloudWatch does (the CLI's
# paginator stops when the token repeats).


def get_events(
    db: LogReads,
    group: str,
    stream_name: str,
    time_range: tuple[int, int],
    start_from_head: bool,
    limit: int,
    token: str | None,
) -> dict:
    kind, position = model.decode_token(token, "fb") if token else ("", (0, 0, 0))
    stream = db.stream(group, stream_name)
    if stream is None:
        raise model.group_not_found() if db.group(group) is None else model.stream_not_found()
    if token:
        forward = kind == "f"
    elif start_from_head:
        forward, position = True, (0, 0, -1)
    else:
        forward, position = False, (0, _END, 0)
    if forward:
        found = _forward(db, stream.id, position, time_range, limit)
    else:
        found = _backward(db, stream.id, position, time_range, limit)
    events = [{"timestamp": t, "message": m, "ingestionTime": i} for _, t, m, i in found]
    if found:
        first, last = found[0][0], found[-1][0]
    elif forward:
        first = last = position
    else:
        first = position
        last = (0, _latest_chunk(db, stream.id), _END) if position[1] == _END else position
    return {
        "events": events,
        "nextForwardToken": model.encode_token("f", last),
        "nextBackwardToken": model.encode_token("b", first),
    }


def _latest_chunk(db: LogReads, stream_id: int) -> int:
    for chunk in db.stream_chunks(stream_id, (0, _END), newest_first=True):
        return chunk.id
    return 0


def _in_range(ts: int, time_range: tuple[int, int]) -> bool:
    return time_range[0] <= ts < time_range[1]


def _forward(db, stream_id: int, after: Position, time_range, limit: int) -> list:
    found, size = [], 0
    for chunk in db.stream_chunks(stream_id, (after[1] - 1, _END), time_range):
        for index, (ts, message) in enumerate(chunk.events()):
            if (chunk.id, index) <= (after[1], after[2]) or not _in_range(ts, time_range):
                continue
            found.append(((ts, chunk.id, index), ts, message, chunk.ingestion_ms))
            size += len(message)
            if len(found) >= limit or size >= model.GET_EVENTS_MAX_BYTES:
                return found
    return found


def _backward(db, stream_id: int, before: Position, time_range, limit: int) -> list:
    found, size = [], 0
    ids = (0, min(before[1] + 1, _END))
    for chunk in db.stream_chunks(stream_id, ids, time_range, newest_first=True):
        events = chunk.events()
        for index in range(len(events) - 1, -1, -1):
            ts, message = events[index]
            if (chunk.id, index) >= (before[1], before[2]) or not _in_range(ts, time_range):
                continue
            found.append(((ts, chunk.id, index), ts, message, chunk.ingestion_ms))
            size += len(message)
            if len(found) >= limit or size >= model.GET_EVENTS_MAX_BYTES:
                found.reverse()
                return found
    found.reverse()
    return found


# ---- FilterLogEvents ------------------------------------------------------------------
# Events of every selected stream, interleaved in (timestamp, chunk, index) order: chunks
# are read by their first timestamp and merged through a heap; an event is emitted once no
# chunk still unread can hold an earlier one. nextToken ("n/...") is the position up to
# which everything has been considered.


def filter_events(
    db: LogReads,
    group: str,
    streams: dict[int, str],
    time_range: tuple[int, int],
    pattern: FilterPattern | None,
    limit: int,
    token: str | None,
) -> dict:
    after = model.decode_token(token, "n")[1] if token else None
    start, end = time_range
    from_ms = max(start, after[0]) if after else start
    chunks = db.group_chunks(group, from_ms, end, list(streams) if streams else None)
    heap: list = []
    out: list = []
    size = scanned = 0
    last_first_ms = None
    next_position: Position | None = None

    def emit(until_ms: int | None) -> bool:
        nonlocal size
        while heap and (until_ms is None or heap[0][0][0] < until_ms):
            out.append(heapq.heappop(heap))
            size += len(out[-1][1])
            if len(out) >= limit or size >= model.GET_EVENTS_MAX_BYTES:
                return True
        return False

    for chunk in chunks:
        if emit(chunk.first_ms):
            next_position = out[-1][0]
            break
        if scanned >= SCAN_BUDGET_BYTES and chunk.first_ms != last_first_ms:
            next_position = (chunk.first_ms - 1, _END, _END)
            break
        last_first_ms = chunk.first_ms
        scanned += len(chunk.data)
        for index, (ts, message) in enumerate(chunk.events()):
            position = (ts, chunk.id, index)
            if (after and position <= after) or not start <= ts <= end:
                continue
            if pattern is None or pattern.matches(message):
                heapq.heappush(heap, (position, message, chunk.ingestion_ms, chunk.stream_id))
    else:
        if emit(None) and heap:
            next_position = out[-1][0]
    if next_position is not None and out and next_position < out[-1][0]:
        next_position = out[-1][0]
    names = streams or {s.id: s.name for s in db.streams(group)}
    answer: dict = {"events": [_filtered_wire(names, e) for e in out]}
    if next_position is not None:
        answer["nextToken"] = model.encode_token("n", next_position)
    return answer


def _filtered_wire(names: dict[int, str], event: tuple) -> dict:
    (ts, chunk_id, index), message, ingestion_ms, stream_id = event
    return {
        "logStreamName": names.get(stream_id, ""),
        "timestamp": ts,
        "message": message,
        "ingestionTime": ingestion_ms,
        "eventId": f"{chunk_id:020d}{index:06d}",
    }


def select_streams(
    db: LogReads, group: str, names: Iterable[str] | None, prefix: str | None
) -> dict[int, str]:
    """Stream ids to search: {} for all of the group's streams."""
    if db.group(group) is None:
        raise model.group_not_found()
    if names is None and not prefix:
        return {}
    rows = db.streams(group, prefix or "")
    if names is not None:
        wanted = set(names)
        rows = [s for s in rows if s.name in wanted]
    # None of them exists: search nothing (a sentinel id no stream has).
    return {s.id: s.name for s in rows} or {-1: ""}
