import uuid

from corral.model.invocation import billed_ms, describe_exit, new_request_id, timeout_error
from corral.model.report import end_line, report_line, start_line


def test_start_and_end_lines():
    assert start_line("id-1", "$LATEST") == b"START RequestId: id-1 Version: $LATEST\n"
    assert end_line("id-1") == b"END RequestId: id-1\n"


def test_report_line_is_tab_separated_with_init_duration_on_cold_start():
    line = report_line("id-1", 1.234, 2, 128, 41, init_duration_ms=80.123)
    assert line == (
        b"REPORT RequestId: id-1\tDuration: 1.23 ms\tBilled Duration: 2 ms\t"
        b"Memory Size: 128 MB\tMax Memory Used: 41 MB\tInit Duration: 80.12 ms\t\n"
    )


def test_report_line_of_a_timeout_has_status():
    assert b"\tStatus: timeout\t\n" in report_line("i", 3000.5, 3001, 128, 20, status="timeout")


def test_billing_rounds_up_to_the_millisecond():
    assert billed_ms(0.01) == 1
    assert billed_ms(1.0) == 1
    assert billed_ms(1.001) == 2


def test_billing_includes_the_init_phase_of_a_cold_start():
    # Since 1 August 2025 Lambda bills INIT: Billed Duration = ceil(Duration + Init).
    assert billed_ms(1.2, 250.3) == 252
    assert billed_ms(1.2, None) == 2


def test_timeout_error_wording():
    assert timeout_error("abc", 3) == (
        b'{"errorType":"Sandbox.Timedout",'
        b'"errorMessage":"RequestId: abc Error: Task timed out after 3.00 seconds"}'
    )


def test_exit_descriptions():
    assert describe_exit(1) == "Runtime exited with error: exit status 1"
    assert describe_exit(-9) == "Runtime exited with error: signal: killed"


def test_request_ids_are_version_4_uuids():
    for _ in range(200):
        parsed = uuid.UUID(new_request_id())
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
