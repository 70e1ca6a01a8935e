"""X-Ray trace headers as OpenTelemetry ids."""

from __future__ import annotations

import pytest

from corral.model.invocation import new_trace_id
from corral.model.trace import TraceContext, parse_trace_header


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
