import json
from datetime import UTC, datetime

from corral.model.destination import RETRIES_EXHAUSTED, SUCCESS, destination_record


def test_success_record_embeds_json_payloads():
    record = json.loads(
        destination_record(
            "req-1",
            "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
            SUCCESS,
            1,
            b'{"order": 7}',
            "$LATEST",
            b'"done"',
            now=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        )
    )
    assert record == {
        "version": "1.0",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "requestContext": {
            "requestId": "req-1",
            "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
            "condition": "Success",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"order": 7},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": "done",
    }


def test_failure_record_names_the_function_error_and_keeps_text_payloads():
    record = json.loads(
        destination_record(
            "r", "arn", RETRIES_EXHAUSTED, 3, b"not json", "1", b'{"e": 1}', "Unhandled"
        )
    )
    assert record["requestPayload"] == "not json"
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["requestContext"]["approximateInvokeCount"] == 3
