"""X-Ray trace headers as OpenTelemetry ids."""

from __future__ import annotations

import pytest

from corral.model.invocation import new_trace_id
from corral.model.trace import (
    TraceContext,
    caller_trace_header,
    invocation_trace,
    parse_trace_header,
)


def test_root_and_parent_become_trace_and_parent_span_ids():
    header = "Root=1-5759E988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert parse_trace_header(header) == TraceContext(
        "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
    )


def test_generated_trace_ids_parse():
    context = parse_trace_header(new_trace_id())
    assert context is not None and len(context.trace_id) == 32 and context.parent_span_id


@pytest.mark.parametrize("header", ["", "Root=2-1-2", "Parent=53995c3f42cd8ad8", "garbage"])
def test_headers_without_a_valid_root_give_none(header):
    assert parse_trace_header(header) is None


def test_parent_is_optional():
    context = parse_trace_header("Sampled=0;Root=1-5759e988-bd862e3fe1be46a994272793")
    assert context == TraceContext("5759e988bd862e3fe1be46a994272793", None)


CALLER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_the_function_sees_the_callers_root_with_its_own_parent():
    header, caller = invocation_trace(CALLER + ";Lineage=a:1")
    context = parse_trace_header(header)
    assert context is not None and context.trace_id == "5759e988bd862e3fe1be46a994272793"
    assert context.parent_span_id not in (None, "53995c3f42cd8ad8")
    assert header.endswith(";Sampled=1") and caller == "53995c3f42cd8ad8"


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "Root=1-" + "a" * 9000, "x" * 9000],
    ids=["none", "empty", "garbage", "long-root", "long"],
)
def test_a_missing_or_invalid_header_starts_a_new_trace(header):
    got, caller = invocation_trace(header)
    context = parse_trace_header(got)
    assert context is not None and context.parent_span_id and caller is None
    assert got.endswith(";Sampled=0") and len(got) == len(new_trace_id())


def test_a_root_alone_gets_a_parent_and_sampled():
    got, caller = invocation_trace("Root=1-5759e988-bd862e3fe1be46a994272793")
    assert got.startswith("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=")
    assert got.endswith(";Sampled=0") and caller is None


def test_caller_header_is_rebuilt_clean_and_keeps_the_trace():
    assert caller_trace_header(CALLER + ";Lineage=a:1") == CALLER
    fresh = caller_trace_header("garbage")
    assert parse_trace_header(fresh) is not None and fresh.endswith(";Sampled=0")
    assert caller_trace_header(fresh) == fresh
    # Each attempt from the stored header: same trace, its own span, the same caller.
    first, second = invocation_trace(CALLER), invocation_trace(CALLER)
    assert first[0].split(";")[0] == second[0].split(";")[0] and first[0] != second[0]
    assert first[1] == second[1] == "53995c3f42cd8ad8"
