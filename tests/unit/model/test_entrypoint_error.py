import errno
import json

from corral.model.invocation import entrypoint_error


def _message(*args) -> str:
    body = json.loads(entrypoint_error("r-1", *args))
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    return body["errorMessage"]


def test_a_missing_bootstrap_names_both_places_lambda_looks():
    assert _message("/var/task/bootstrap", errno.ENOENT, "No such file or directory") == (
        "RequestId: r-1 Error: Couldn't find valid bootstrap(s): "
        "[/var/task/bootstrap /opt/bootstrap]"
    )


def test_other_failures_are_gos_fork_exec_errors():
    assert _message("/var/task/bootstrap", errno.EACCES, "Permission denied") == (
        "RequestId: r-1 Error: fork/exec /var/task/bootstrap: permission denied"
    )
    assert _message(None, errno.EMFILE, "Too many open files") == (
        "RequestId: r-1 Error: fork/exec bootstrap: too many open files"
    )
