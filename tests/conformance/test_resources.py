"""Tags, resource-based policies, reserved concurrency and account settings.

References: botocore shapes TagResource/UntagResource/ListTags, AddPermission/GetPolicy/
RemovePermission, Put/Get/DeleteFunctionConcurrency, GetAccountSettings; the AWS CLI's
examples for these commands (output shapes); Lambda developer guide, "Tagging Lambda
functions", "Viewing resource-based IAM policies in Lambda", "Configuring reserved
concurrency". Error messages are AWS's where public reports quote them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    ACCOUNT,
    assert_client_error,
    create_python_function,
    function_arn,
    unique_name,
)
from tests.support import CorralProcess, lambda_client

NOT_EXIST = "The resource you requested does not exist."
REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


def _reserved_floor_message(floor: int) -> str:
    return (
        "Specified ReservedConcurrentExecutions for function decreases account's "
        f"UnreservedConcurrentExecution below its minimum value of [{floor}]."
    )


def _add_sns_permission(lam, name: str, sid: str = "sns", **kwargs) -> dict:
    return lam.add_permission(
        FunctionName=name,
        StatementId=sid,
        Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
        **kwargs,
    )


def _policy(lam, name: str, **kwargs) -> tuple[dict, str]:
    response = lam.get_policy(FunctionName=name, **kwargs)
    return json.loads(response["Policy"]), response["RevisionId"]


@pytest.fixture(scope="module")
def small_account(tmp_path_factory):
    """A server of its own with a concurrency limit of 150, so reservations are exact."""
    data = tmp_path_factory.mktemp("corral-small-account")
    with CorralProcess(data, "--concurrency-limit", "150") as proc:
        yield lambda_client(proc.url)


# ---- tags ----------------------------------------------------------------------------


def test_tag_resource_is_204_and_tags_show_in_list_tags_and_get_function(lam):
    name = unique_name()
    create_python_function(lam, name)

    response = lam.tag_resource(Resource=function_arn(name), Tags={"team": "a", "cost": "1"})

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=function_arn(name))["Tags"] == {"team": "a", "cost": "1"}
    assert lam.get_function(FunctionName=name)["Tags"] == {"team": "a", "cost": "1"}


def test_tag_resource_adds_to_and_overwrites_the_tags_from_create_function(lam):
    name = unique_name()
    create_python_function(lam, name, Tags={"keep": "k", "team": "old"})

    lam.tag_resource(Resource=function_arn(name), Tags={"team": "new", "extra": "e"})

    expected = {"keep": "k", "team": "new", "extra": "e"}
    assert lam.list_tags(Resource=function_arn(name))["Tags"] == expected


def test_list_tags_of_an_untagged_function_is_an_empty_map(lam):
    name = unique_name()
    create_python_function(lam, name)

    assert lam.list_tags(Resource=function_arn(name))["Tags"] == {}


def test_untag_resource_removes_only_the_named_keys(lam):
    name = unique_name()
    create_python_function(lam, name, Tags={"a": "1", "b": "2", "c": "3"})

    response = lam.untag_resource(Resource=function_arn(name), TagKeys=["a", "c", "missing"])

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=function_arn(name))["Tags"] == {"b": "2"}


def test_tags_of_an_unknown_function_are_resource_not_found(lam):
    arn = function_arn(unique_name("missing"))

    for call in (
        lambda: lam.tag_resource(Resource=arn, Tags={"a": "1"}),
        lambda: lam.list_tags(Resource=arn),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert_client_error(excinfo, "ResourceNotFoundException", 404, f"Function not found: {arn}")


def test_tags_on_a_qualified_arn_are_invalid_parameter(lam):
    # Checked before the function's existence (LocalStack's parity-tested provider).
    arn = function_arn(unique_name("missing"), "$LATEST")

    with pytest.raises(ClientError) as excinfo:
        lam.tag_resource(Resource=arn, Tags={"a": "1"})

    assert_client_error(
        excinfo,
        "InvalidParameterValueException",
        400,
        "Tags on function aliases and versions are not supported. Please specify a function ARN.",
    )


def test_tags_of_a_function_in_another_region_are_resource_not_found(lam):
    name = unique_name()
    create_python_function(lam, name)
    arn = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{name}"

    with pytest.raises(ClientError) as excinfo:
        lam.list_tags(Resource=arn)

    assert_client_error(excinfo, "ResourceNotFoundException", 404, f"Function not found: {arn}")


def test_tag_resource_with_a_bare_name_is_a_validation_error(lam):
    name = unique_name()
    create_python_function(lam, name)

    with pytest.raises(ClientError) as excinfo:
        lam.tag_resource(Resource=name, Tags={"a": "1"})

    message = assert_client_error(excinfo, "ValidationException", 400)
    assert message.startswith(f"1 validation error detected: Value '{name}' at 'resource'")


def test_more_than_50_tags_is_invalid_parameter(lam):
    name = unique_name()
    create_python_function(lam, name, Tags={f"k{i}": "v" for i in range(45)})

    with pytest.raises(ClientError) as excinfo:
        lam.tag_resource(Resource=function_arn(name), Tags={f"n{i}": "v" for i in range(6)})

    assert_client_error(excinfo, "InvalidParameterValueException", 400)
    assert len(lam.list_tags(Resource=function_arn(name))["Tags"]) == 45
    lam.tag_resource(Resource=function_arn(name), Tags={f"n{i}": "v" for i in range(5)})
    assert len(lam.list_tags(Resource=function_arn(name))["Tags"]) == 50


def test_tag_key_and_value_lengths_are_limited(lam):
    name = unique_name()
    create_python_function(lam, name)

    for tags in ({"k" * 129: "v"}, {"k": "v" * 257}, {"aws:reserved": "v"}):
        with pytest.raises(ClientError) as excinfo:
            lam.tag_resource(Resource=function_arn(name), Tags=tags)
        assert_client_error(excinfo, "InvalidParameterValueException", 400)
    lam.tag_resource(Resource=function_arn(name), Tags={"k" * 128: "v" * 256})
    assert lam.list_tags(Resource=function_arn(name))["Tags"] == {"k" * 128: "v" * 256}


# ---- resource-based policy -----------------------------------------------------------


def test_add_permission_is_201_with_the_statement_as_a_json_string(lam):
    name = unique_name()
    create_python_function(lam, name)

    response = _add_sns_permission(lam, name)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(response["Statement"]) == {
        "Sid": "sns",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": function_arn(name),
    }


def test_add_permission_renders_conditions(lam):
    name = unique_name()
    create_python_function(lam, name)
    source = f"arn:aws:s3:::{name}-bucket"

    s3 = lam.add_permission(
        FunctionName=name,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=source,
        SourceAccount=ACCOUNT,
        PrincipalOrgID="o-abcdefghij",
    )
    url = lam.add_permission(
        FunctionName=name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )

    assert json.loads(s3["Statement"])["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij", "AWS:SourceAccount": ACCOUNT},
        "ArnLike": {"AWS:SourceArn": source},
    }
    url_statement = json.loads(url["Statement"])
    assert url_statement["Principal"] == "*"
    assert url_statement["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}


def test_add_permission_principals_as_lambda_writes_them(lam):
    name = unique_name()
    create_python_function(lam, name)
    role = f"arn:aws:iam::{ACCOUNT}:role/caller"

    principals = {}
    for sid, principal in (("account", "123456789012"), ("role", role)):
        response = lam.add_permission(
            FunctionName=name, StatementId=sid, Action="lambda:*", Principal=principal
        )
        principals[sid] = json.loads(response["Statement"])["Principal"]

    assert principals == {
        "account": {"AWS": "arn:aws:iam::123456789012:root"},
        "role": {"AWS": role},
    }


def test_add_permission_with_an_invalid_principal_is_invalid_parameter(lam):
    name = unique_name()
    create_python_function(lam, name)

    with pytest.raises(ClientError) as excinfo:
        lam.add_permission(
            FunctionName=name, StatementId="x", Action="lambda:*", Principal="nobody"
        )

    assert_client_error(
        excinfo,
        "InvalidParameterValueException",
        400,
        "The provided principal was invalid. Please check the principal and try again.",
    )


def test_get_policy_returns_the_document_and_revision_id(lam):
    name = unique_name()
    create_python_function(lam, name)
    first = json.loads(_add_sns_permission(lam, name, "first")["Statement"])
    second = json.loads(_add_sns_permission(lam, name, "second")["Statement"])

    document, revision_id = _policy(lam, name)

    assert document == {"Version": "2012-10-17", "Id": "default", "Statement": [first, second]}
    assert revision_id


def test_get_policy_of_a_function_without_statements_is_resource_not_found(lam):
    name = unique_name()
    create_python_function(lam, name)

    with pytest.raises(ClientError) as excinfo:
        lam.get_policy(FunctionName=name)

    assert_client_error(excinfo, "ResourceNotFoundException", 404, NOT_EXIST)


def test_policy_of_an_unknown_function_is_resource_not_found(lam):
    name = unique_name("missing")

    with pytest.raises(ClientError) as get:
        lam.get_policy(FunctionName=name)
    with pytest.raises(ClientError) as add:
        _add_sns_permission(lam, name)
    with pytest.raises(ClientError) as remove:
        lam.remove_permission(FunctionName=name, StatementId="sns")

    message = f"Function not found: {function_arn(name)}"
    assert_client_error(get, "ResourceNotFoundException", 404, message)
    assert_client_error(add, "ResourceNotFoundException", 404, message)
    assert_client_error(
        remove, "ResourceNotFoundException", 404, f"No policy found for: {function_arn(name)}"
    )


def test_duplicate_statement_id_is_resource_conflict(lam):
    name = unique_name()
    create_python_function(lam, name)
    _add_sns_permission(lam, name, "dup")

    with pytest.raises(ClientError) as excinfo:
        _add_sns_permission(lam, name, "dup")

    assert_client_error(
        excinfo,
        "ResourceConflictException",
        409,
        "The statement id (dup) provided already exists. Please provide a new statement id, "
        "or remove the existing statement.",
    )


def test_remove_permission_is_204_and_the_last_one_removes_the_policy(lam):
    name = unique_name()
    create_python_function(lam, name)
    _add_sns_permission(lam, name, "one")
    _add_sns_permission(lam, name, "two")

    response = lam.remove_permission(FunctionName=name, StatementId="one")

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [s["Sid"] for s in _policy(lam, name)[0]["Statement"]] == ["two"]
    lam.remove_permission(FunctionName=name, StatementId="two")
    with pytest.raises(ClientError) as excinfo:
        lam.get_policy(FunctionName=name)
    assert_client_error(excinfo, "ResourceNotFoundException", 404, NOT_EXIST)


def test_remove_permission_errors(lam):
    name = unique_name()
    create_python_function(lam, name)

    with pytest.raises(ClientError) as no_policy:
        lam.remove_permission(FunctionName=name, StatementId="sns")
    _add_sns_permission(lam, name)
    with pytest.raises(ClientError) as no_statement:
        lam.remove_permission(FunctionName=name, StatementId="other")

    assert_client_error(
        no_policy,
        "ResourceNotFoundException",
        404,
        "No policy is associated with the given resource.",
    )
    assert_client_error(
        no_statement,
        "ResourceNotFoundException",
        404,
        "Statement other is not found in resource policy.",
    )


def test_policy_revision_id_is_a_precondition(lam):
    name = unique_name()
    create_python_function(lam, name)
    _add_sns_permission(lam, name, "first")
    _, revision_id = _policy(lam, name)

    with pytest.raises(ClientError) as add:
        _add_sns_permission(lam, name, "second", RevisionId="not-the-revision")
    with pytest.raises(ClientError) as remove:
        lam.remove_permission(FunctionName=name, StatementId="first", RevisionId="stale")
    _add_sns_permission(lam, name, "second", RevisionId=revision_id)
    _, changed = _policy(lam, name)
    lam.remove_permission(FunctionName=name, StatementId="first", RevisionId=changed)

    assert_client_error(add, "PreconditionFailedException", 412, REVISION_MISMATCH)
    assert_client_error(remove, "PreconditionFailedException", 412, REVISION_MISMATCH)
    assert changed != revision_id
    assert [s["Sid"] for s in _policy(lam, name)[0]["Statement"]] == ["second"]


def test_first_permission_accepts_the_function_revision_id(lam):
    # Lambda's policy RevisionId is the function's: a client may read it with GetFunction.
    name = unique_name()
    create_python_function(lam, name)
    revision_id = lam.get_function(FunctionName=name)["Configuration"]["RevisionId"]

    response = _add_sns_permission(lam, name, RevisionId=revision_id)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201


def test_each_qualifier_has_its_own_policy(lam):
    name = unique_name()
    create_python_function(lam, name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    unqualified = json.loads(_add_sns_permission(lam, name, "plain")["Statement"])
    version = json.loads(_add_sns_permission(lam, name, "v1", Qualifier="1")["Statement"])
    alias = json.loads(_add_sns_permission(lam, f"{name}:live", "alias")["Statement"])

    assert unqualified["Resource"] == function_arn(name)
    assert version["Resource"] == function_arn(name, "1")
    assert alias["Resource"] == function_arn(name, "live")
    assert [s["Sid"] for s in _policy(lam, name)[0]["Statement"]] == ["plain"]
    assert [s["Sid"] for s in _policy(lam, name, Qualifier="1")[0]["Statement"]] == ["v1"]
    assert [s["Sid"] for s in _policy(lam, name, Qualifier="live")[0]["Statement"]] == ["alias"]


def test_latest_qualifier_shares_the_unqualified_policy(lam):
    name = unique_name()
    create_python_function(lam, name)

    statement = json.loads(_add_sns_permission(lam, name, Qualifier="$LATEST")["Statement"])

    assert statement["Resource"] == function_arn(name, "$LATEST")
    assert [s["Sid"] for s in _policy(lam, name)[0]["Statement"]] == ["sns"]


def test_permission_on_an_unknown_version_is_resource_not_found(lam):
    name = unique_name()
    create_python_function(lam, name)

    with pytest.raises(ClientError) as excinfo:
        _add_sns_permission(lam, name, Qualifier="7")

    assert_client_error(
        excinfo, "ResourceNotFoundException", 404, f"Function not found: {function_arn(name, '7')}"
    )


# ---- reserved concurrency -------------------------------------------------------------


def test_function_concurrency_put_get_delete(lam):
    name = unique_name()
    create_python_function(lam, name)

    before = lam.get_function_concurrency(FunctionName=name)
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    got = lam.get_function_concurrency(FunctionName=function_arn(name))
    deleted = lam.delete_function_concurrency(FunctionName=name)
    after = lam.get_function_concurrency(FunctionName=name)

    assert "ReservedConcurrentExecutions" not in before
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert put["ReservedConcurrentExecutions"] == 3
    assert got["ReservedConcurrentExecutions"] == 3
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in after


def test_zero_reserved_concurrency_is_accepted(lam):
    name = unique_name()
    create_python_function(lam, name)

    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)

    assert put["ReservedConcurrentExecutions"] == 0
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 0


def test_function_concurrency_of_an_unknown_function_is_resource_not_found(lam):
    name = unique_name("missing")

    for call in (
        lambda: lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1),
        lambda: lam.get_function_concurrency(FunctionName=name),
        lambda: lam.delete_function_concurrency(FunctionName=name),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert_client_error(
            excinfo, "ResourceNotFoundException", 404, f"Function not found: {function_arn(name)}"
        )


def test_function_concurrency_of_a_qualified_name_is_invalid_parameter(lam):
    name = unique_name()
    create_python_function(lam, name)

    with pytest.raises(ClientError) as excinfo:
        lam.put_function_concurrency(FunctionName=f"{name}:$LATEST", ReservedConcurrentExecutions=1)

    assert_client_error(excinfo, "InvalidParameterValueException", 400)


def test_negative_reserved_concurrency_is_a_validation_error(corral_url):
    raw = lambda_client(corral_url, parameter_validation=False)
    name = unique_name()
    create_python_function(raw, name)

    with pytest.raises(ClientError) as excinfo:
        raw.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=-1)

    assert_client_error(
        excinfo,
        "ValidationException",
        400,
        "1 validation error detected: Value '-1' at 'reservedConcurrentExecutions' failed to "
        "satisfy constraint: Member must have value greater than or equal to 0",
    )


def test_reservations_leave_at_least_100_unreserved(small_account):
    lam = small_account
    first, second = unique_name(), unique_name()
    create_python_function(lam, first)
    create_python_function(lam, second)

    with pytest.raises(ClientError) as too_much:
        lam.put_function_concurrency(FunctionName=first, ReservedConcurrentExecutions=51)
    lam.put_function_concurrency(FunctionName=first, ReservedConcurrentExecutions=50)
    with pytest.raises(ClientError) as no_room:
        lam.put_function_concurrency(FunctionName=second, ReservedConcurrentExecutions=1)
    # Replacing a function's own reservation does not count it twice.
    lam.put_function_concurrency(FunctionName=first, ReservedConcurrentExecutions=40)
    lam.put_function_concurrency(FunctionName=second, ReservedConcurrentExecutions=10)
    limits = lam.get_account_settings()["AccountLimit"]
    lam.delete_function_concurrency(FunctionName=first)
    lam.delete_function_concurrency(FunctionName=second)

    message = _reserved_floor_message(100)
    assert_client_error(too_much, "InvalidParameterValueException", 400, message)
    assert_client_error(no_room, "InvalidParameterValueException", 400, message)
    assert limits["ConcurrentExecutions"] == 150
    assert limits["UnreservedConcurrentExecutions"] == 100


def test_an_account_limit_under_100_allows_no_reservation(tmp_path):
    with CorralProcess(tmp_path / "data", "--concurrency-limit", "50") as proc:
        lam = lambda_client(proc.url)
        name = unique_name()
        create_python_function(lam, name)

        with pytest.raises(ClientError) as excinfo:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        zero = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)

    assert_client_error(excinfo, "InvalidParameterValueException", 400, _reserved_floor_message(50))
    assert zero["ReservedConcurrentExecutions"] == 0


def test_deleting_a_function_drops_its_concurrency_and_policy(small_account):
    lam = small_account
    name = unique_name()
    create_python_function(lam, name)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=20)
    _add_sns_permission(lam, name)

    lam.delete_function(FunctionName=name)
    create_python_function(lam, name)

    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    with pytest.raises(ClientError) as excinfo:
        lam.get_policy(FunctionName=name)
    assert_client_error(excinfo, "ResourceNotFoundException", 404, NOT_EXIST)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 150
    lam.delete_function(FunctionName=name)


# ---- account settings -----------------------------------------------------------------


def test_get_account_settings_counts_functions_and_every_version_s_code(tmp_path):
    with CorralProcess(tmp_path / "data") as proc:
        lam = lambda_client(proc.url)
        empty = lam.get_account_settings()
        first = create_python_function(lam, unique_name())
        second = create_python_function(lam, unique_name(), source="X = 1\n" * 50)
        version = lam.publish_version(FunctionName=first["FunctionName"])
        lam.put_function_concurrency(
            FunctionName=second["FunctionName"], ReservedConcurrentExecutions=7
        )
        settings = lam.get_account_settings()

    assert empty["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert empty["AccountUsage"] == {"TotalCodeSize": 0, "FunctionCount": 0}
    assert settings["AccountLimit"] == {
        "TotalCodeSize": 80530636800,
        "CodeSizeUnzipped": 262144000,
        "CodeSizeZipped": 52428800,
        "ConcurrentExecutions": 1000,
        "UnreservedConcurrentExecutions": 993,
    }
    code_size = first["CodeSize"] + second["CodeSize"] + version["CodeSize"]
    assert settings["AccountUsage"] == {"TotalCodeSize": code_size, "FunctionCount": 2}


# ---- persistence ------------------------------------------------------------------------


def test_tags_policy_and_reserved_concurrency_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    name = unique_name()
    with CorralProcess(data) as proc:
        lam = lambda_client(proc.url)
        create_python_function(lam, name, Tags={"from": "create"})
        lam.tag_resource(Resource=function_arn(name), Tags={"added": "later"})
        _add_sns_permission(lam, name, SourceArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:topic")
        policy_before = lam.get_policy(FunctionName=name)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=12)

    with CorralProcess(data) as proc:
        lam = lambda_client(proc.url)
        tags = lam.list_tags(Resource=function_arn(name))["Tags"]
        policy_after = lam.get_policy(FunctionName=name)
        reserved = lam.get_function_concurrency(FunctionName=name)
        unreserved = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]

    assert tags == {"from": "create", "added": "later"}
    assert policy_after["Policy"] == policy_before["Policy"]
    assert policy_after["RevisionId"] == policy_before["RevisionId"]
    assert reserved["ReservedConcurrentExecutions"] == 12
    assert unreserved == 988


# ---- AWS CLI ---------------------------------------------------------------------------


@pytest.fixture
def aws(corral_url, tmp_path):
    cli = str(Path(sys.executable).with_name("aws"))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }

    def run(*args: str) -> dict:
        result = subprocess.run(
            [cli, "lambda", "--endpoint-url", corral_url, "--output", "json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else {}

    return run


def test_cli_tag_resource_and_list_tags(lam, aws):
    name = unique_name("cli")
    create_python_function(lam, name)

    tagged = aws("tag-resource", "--resource", function_arn(name), "--tags", "DEPARTMENT=A,Team=b")
    listed = aws("list-tags", "--resource", function_arn(name))

    assert tagged == {}
    assert listed == {"Tags": {"DEPARTMENT": "A", "Team": "b"}}


def test_cli_add_permission_and_get_policy(lam, aws):
    name = unique_name("cli")
    create_python_function(lam, name)

    added = aws(
        "add-permission",
        "--function-name", name,
        "--statement-id", "sns",
        "--action", "lambda:InvokeFunction",
        "--principal", "sns.amazonaws.com",
    )  # fmt: skip
    got = aws("get-policy", "--function-name", name)

    statement = json.loads(added["Statement"])
    assert statement == {
        "Sid": "sns",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": function_arn(name),
    }
    assert json.loads(got["Policy"]) == {
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": [statement],
    }
    assert got["RevisionId"]
