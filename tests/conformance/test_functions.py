"""Control plane: CreateFunction, Get*, ListFunctions, Update*, DeleteFunction, validation.

References: the Lambda API reference (docs.aws.amazon.com/lambda/latest/api/) and the
botocore model `botocore/data/lambda/2015-03-31/service-2.json`.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conformance import (
    ACCOUNT,
    ECHO,
    REGION,
    ROLE,
    RUNTIME,
    assert_client_error,
    code_sha256,
    create_python_function,
    function_arn,
    invoke_json,
    python_zip,
    unique_name,
    wait_active,
    wait_updated,
)
from tests.support import CorralProcess, lambda_client, make_zip

LAST_MODIFIED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def raw_lam(corral_url):
    """A client that sends out-of-range values: botocore itself refuses a MemorySize under the
    model's `min` before any request is made, and we want the server's answer."""
    return lambda_client(corral_url, parameter_validation=False)


def _create(lam, name: str, **overrides):
    params = {
        "FunctionName": name,
        "Runtime": RUNTIME,
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": python_zip(ECHO)},
    }
    params.update(overrides)
    return lam.create_function(**params)


def _assert_not_created(lam, name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        lam.get_function(FunctionName=name)
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


# ---- CreateFunction ------------------------------------------------------------------


def test_create_function_returns_201_with_lambda_defaults(lam):
    name = unique_name()
    package = python_zip(ECHO)
    response = lam.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": package},
    )

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert response["FunctionName"] == name
    assert response["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert response["Runtime"] == RUNTIME
    assert response["Role"] == ROLE
    assert response["Handler"] == "app.handler"
    # Defaults from "Configuring Lambda function options" and the API reference.
    assert response["Timeout"] == 3
    assert response["MemorySize"] == 128
    assert response["EphemeralStorage"] == {"Size": 512}
    assert response["Architectures"] == ["x86_64"]
    assert response["PackageType"] == "Zip"
    assert response["Version"] == "$LATEST"
    assert response["TracingConfig"] == {"Mode": "PassThrough"}
    assert response["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    assert response["CodeSha256"] == code_sha256(package)
    assert response["CodeSize"] == len(package)
    assert LAST_MODIFIED.fullmatch(response["LastModified"]), response["LastModified"]
    assert UUID.fullmatch(response["RevisionId"]), response["RevisionId"]


def test_create_function_becomes_active_and_successful(lam):
    name = unique_name()
    _create(lam, name)

    # boto3's waiters poll GetFunction for State / LastUpdateStatus (botocore waiters-2.json).
    wait_active(lam, name)
    wait_updated(lam, name)
    config = lam.get_function_configuration(FunctionName=name)
    assert config["State"] == "Active"
    assert config["LastUpdateStatus"] == "Successful"


def test_create_function_twice_is_resource_conflict(lam):
    name = unique_name()
    _create(lam, name)

    with pytest.raises(ClientError) as excinfo:
        _create(lam, name)
    assert_client_error(
        excinfo, "ResourceConflictException", 409, f"Function already exist: {name}"
    )


# ---- GetFunction / GetFunctionConfiguration ------------------------------------------


def test_get_function_returns_configuration_code_location_and_tags(lam):
    name = unique_name()
    package = python_zip(ECHO)
    lam.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": package},
        Tags={"team": "corral", "env": "test"},
    )
    wait_active(lam, name)

    response = lam.get_function(FunctionName=name)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["Configuration"]["FunctionName"] == name
    assert response["Configuration"]["CodeSha256"] == code_sha256(package)
    assert response["Tags"] == {"team": "corral", "env": "test"}
    # Code.Location is a presigned URL that downloads the deployment package (API_GetFunction).
    with urllib.request.urlopen(response["Code"]["Location"], timeout=10) as download:
        assert download.read() == package


@pytest.mark.parametrize(
    "reference",
    ["name", "arn", "partial_arn", "latest"],
)
def test_get_function_configuration_accepts_every_function_name_form(lam, reference):
    # FunctionName: "my-function", a full ARN, a partial ARN "123456789012:function:my-function",
    # each optionally with ":qualifier" (API_GetFunctionConfiguration, FunctionName).
    name = unique_name()
    create_python_function(lam, name)
    function_name = {
        "name": name,
        "arn": function_arn(name),
        "partial_arn": f"{ACCOUNT}:function:{name}",
        "latest": f"{name}:$LATEST",
    }[reference]

    config = lam.get_function_configuration(FunctionName=function_name)

    assert config["FunctionName"] == name
    assert config["FunctionArn"] == function_arn(name)
    assert config["Version"] == "$LATEST"


# ---- ListFunctions -------------------------------------------------------------------


def _walk_pages(lam, max_items: int) -> list[list[str]]:
    pages, marker = [], None
    while True:
        kwargs = {"MaxItems": max_items}
        if marker:
            kwargs["Marker"] = marker
        response = lam.list_functions(**kwargs)
        pages.append([f["FunctionName"] for f in response["Functions"]])
        marker = response.get("NextMarker")
        if not marker:
            return pages


def test_list_functions_pages_with_marker_in_a_stable_order(lam):
    prefix = unique_name("list")
    names = {f"{prefix}-{i}" for i in range(5)}
    for name in names:
        _create(lam, name)

    pages = _walk_pages(lam, max_items=2)
    again = _walk_pages(lam, max_items=2)

    assert all(len(page) <= 2 for page in pages)
    listed = [name for page in pages for name in page]
    assert len(listed) == len(set(listed)), "a function appeared on two pages"
    assert names <= set(listed)
    assert again == pages


def test_list_functions_paginator_walks_every_page(lam):
    prefix = unique_name("pager")
    names = {f"{prefix}-{i}" for i in range(5)}
    for name in names:
        _create(lam, name)

    paginator = lam.get_paginator("list_functions")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 2}))

    listed = [f["FunctionName"] for page in pages for f in page["Functions"]]
    assert all(len(page["Functions"]) <= 2 for page in pages)
    assert len(pages) >= 3
    assert len(listed) == len(set(listed))
    assert names <= set(listed)


# ---- UpdateFunctionConfiguration / UpdateFunctionCode --------------------------------


def test_update_function_configuration_changes_revision_and_persists(lam):
    name = unique_name()
    created = create_python_function(lam, name)

    updated = lam.update_function_configuration(
        FunctionName=name,
        Timeout=10,
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hello"}},
        Handler="app.other",
        Description="updated by the conformance suite",
        EphemeralStorage={"Size": 1024},
    )
    wait_updated(lam, name)
    stored = lam.get_function_configuration(FunctionName=name)

    assert updated["RevisionId"] != created["RevisionId"]
    for config in (updated, stored):
        assert config["Timeout"] == 10
        assert config["MemorySize"] == 256
        assert config["Environment"] == {"Variables": {"GREETING": "hello"}}
        assert config["Handler"] == "app.other"
        assert config["Description"] == "updated by the conformance suite"
        assert config["EphemeralStorage"] == {"Size": 1024}
    assert stored["RevisionId"] == updated["RevisionId"]


def test_update_with_matching_revision_id_is_accepted(lam):
    name = unique_name()
    created = create_python_function(lam, name)

    updated = lam.update_function_configuration(
        FunctionName=name, Timeout=5, RevisionId=created["RevisionId"]
    )

    assert updated["Timeout"] == 5


def test_update_with_stale_revision_id_is_precondition_failed(lam):
    name = unique_name()
    created = create_python_function(lam, name)
    lam.update_function_configuration(FunctionName=name, Timeout=5)
    wait_updated(lam, name)

    with pytest.raises(ClientError) as excinfo:
        lam.update_function_configuration(
            FunctionName=name, Timeout=6, RevisionId=created["RevisionId"]
        )
    assert_client_error(
        excinfo,
        "PreconditionFailedException",
        412,
        "The Revision Id provided does not match the latest Revision Id. "
        "Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
    )
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 5


def test_update_function_code_changes_code_sha256(lam):
    name = unique_name()
    created = create_python_function(lam, name)
    new_package = python_zip("def handler(event, context):\n    return 'v2'\n")

    updated = lam.update_function_code(FunctionName=name, ZipFile=new_package)
    wait_updated(lam, name)

    assert updated["CodeSha256"] == code_sha256(new_package)
    assert updated["CodeSha256"] != created["CodeSha256"]
    assert updated["CodeSize"] == len(new_package)
    assert updated["RevisionId"] != created["RevisionId"]
    stored = lam.get_function_configuration(FunctionName=name)
    assert stored["CodeSha256"] == code_sha256(new_package)


# ---- DeleteFunction ------------------------------------------------------------------


def test_delete_function_then_get_is_resource_not_found(lam):
    name = unique_name()
    create_python_function(lam, name)

    deleted = lam.delete_function(FunctionName=name)

    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        lam.get_function(FunctionName=name)
    assert_client_error(
        excinfo, "ResourceNotFoundException", 404, f"Function not found: {function_arn(name)}"
    )


# ---- ValidationException: the model's constraints, in AWS's words -------------------


def test_timeout_over_900_is_validation_exception(lam):
    with pytest.raises(ClientError) as excinfo:
        _create(lam, unique_name(), Timeout=901)
    assert_client_error(
        excinfo,
        "ValidationException",
        400,
        "1 validation error detected: Value '901' at 'timeout' failed to satisfy constraint: "
        "Member must have value less than or equal to 900",
    )


def test_memory_size_under_128_is_validation_exception(raw_lam):
    with pytest.raises(ClientError) as excinfo:
        _create(raw_lam, unique_name(), MemorySize=127)
    assert_client_error(
        excinfo,
        "ValidationException",
        400,
        "1 validation error detected: Value '127' at 'memorySize' failed to satisfy constraint: "
        "Member must have value greater than or equal to 128",
    )


def test_memory_size_over_10240_is_validation_exception(lam):
    # The published model allows 32768 (capacity providers); Lambda caps ordinary
    # functions at 10,240 MB ("Lambda quotas").
    with pytest.raises(ClientError) as excinfo:
        _create(lam, unique_name(), MemorySize=10241)
    assert_client_error(
        excinfo,
        "ValidationException",
        400,
        "1 validation error detected: Value '10241' at 'memorySize' failed to satisfy "
        "constraint: Member must have value less than or equal to 10240",
    )


def test_function_name_with_bad_character_is_validation_exception(lam):
    name = "bad!name-" + unique_name()
    pattern = lam.meta.service_model.shape_for("FunctionName").metadata["pattern"]

    with pytest.raises(ClientError) as excinfo:
        _create(lam, name)
    assert_client_error(
        excinfo,
        "ValidationException",
        400,
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {pattern}",
    )


def test_function_name_of_65_characters_is_invalid_parameter_value(lam):
    # The model allows 140 characters (ARNs); a bare name is limited to 64. AWS reports it
    # as InvalidParameterValueException with the validation wording (seen in
    # dailyidea/dailyidea.com#419 and awslabs/aws-api-gateway-developer-portal#493).
    name = unique_name("n").ljust(65, "x")
    assert len(name) == 65

    with pytest.raises(ClientError) as excinfo:
        _create(lam, name)
    assert_client_error(
        excinfo,
        "InvalidParameterValueException",
        400,
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64",
    )


# ---- InvalidParameterValueException: Lambda's semantic rules -------------------------


def test_deprecated_runtime_is_invalid_parameter_value(lam):
    # python2.7 is in the model's Runtime enum but closed for creation.
    with pytest.raises(ClientError) as excinfo:
        _create(lam, unique_name(), Runtime="python2.7")
    message = assert_client_error(excinfo, "InvalidParameterValueException", 400)
    assert message.startswith(
        "The runtime parameter of python2.7 is no longer supported for creating or updating "
        "AWS Lambda functions."
    ), message


def test_runtime_outside_the_enum_is_invalid_parameter_value(lam):
    # AWS words it like a validation error but types it InvalidParameterValueException and
    # lists only the runtimes open for creation: "Value X at 'runtime' failed to satisfy
    # constraint: Member must satisfy enum value set: [...] or be a valid ARN".
    with pytest.raises(ClientError) as excinfo:
        _create(lam, unique_name(), Runtime="python9")
    message = assert_client_error(excinfo, "InvalidParameterValueException", 400)
    prefix = (
        "Value python9 at 'runtime' failed to satisfy constraint: "
        "Member must satisfy enum value set: ["
    )
    assert message.startswith(prefix), message
    assert message.endswith("] or be a valid ARN"), message
    assert RUNTIME in message[len(prefix) :].split("]")[0].split(", ")


def test_missing_handler_is_invalid_parameter_value(lam):
    name = unique_name()
    with pytest.raises(ClientError) as excinfo:
        lam.create_function(
            FunctionName=name,
            Runtime=RUNTIME,
            Role=ROLE,
            Code={"ZipFile": python_zip(ECHO)},
        )
    assert_client_error(
        excinfo,
        "InvalidParameterValueException",
        400,
        "Runtime and Handler are mandatory parameters for functions created with "
        "deployment packages.",
    )
    _assert_not_created(lam, name)


def test_environment_over_4kb_is_invalid_parameter_value(lam):
    variables = {"BIG": "x" * 4097}
    with pytest.raises(ClientError) as excinfo:
        _create(lam, unique_name(), Environment={"Variables": variables})
    message = assert_client_error(excinfo, "InvalidParameterValueException", 400)
    assert message.startswith(
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided exceeded the 4KB limit."
    ), message


def test_reserved_environment_key_is_invalid_parameter_value(lam):
    with pytest.raises(ClientError) as excinfo:
        _create(lam, unique_name(), Environment={"Variables": {"AWS_REGION": "eu-west-1"}})
    assert_client_error(
        excinfo,
        "InvalidParameterValueException",
        400,
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided contains reserved keys that are currently not supported "
        "for modification. Reserved keys used in this request: AWS_REGION",
    )


def test_code_from_s3_is_invalid_parameter_value(lam):
    # Lambda reports an unreachable S3 object as InvalidParameterValueException
    # ("Error occurred while GetObject. S3 Error Code: ..."); Corral has no S3 to read.
    name = unique_name()
    with pytest.raises(ClientError) as excinfo:
        _create(lam, name, Code={"S3Bucket": "some-bucket", "S3Key": "code.zip"})
    assert_client_error(excinfo, "InvalidParameterValueException", 400)
    _assert_not_created(lam, name)


# ---- Deployment packages ---------------------------------------------------------------

# CreateFunction's error shapes (service-2.json) do not include InvalidZipFileException,
# which only Invoke raises. An unusable package at create time is
# InvalidParameterValueException 400 "Could not unzip uploaded file. Please check your
# file, then try to upload again." (CloudTrail record quoted in
# aws-solutions/centralized-logging-with-opensearch#307; boto/boto3#488).
UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."


def test_corrupt_zip_is_refused(lam):
    name = unique_name()
    with pytest.raises(ClientError) as excinfo:
        _create(lam, name, Code={"ZipFile": b"PK\x03\x04 this is not a zip archive"})
    assert_client_error(excinfo, "InvalidParameterValueException", 400, UNZIP_FAILED)
    _assert_not_created(lam, name)


@pytest.mark.parametrize(
    "entry", ["../evil-{tag}.py", "/tmp/evil-{tag}.py"], ids=["dotdot", "absolute"]
)
def test_zip_entry_escaping_the_package_is_refused(lam, corral, entry):
    # DESIGN.md: extraction refuses absolute paths and "..". Reported like any other
    # package Lambda cannot unzip.
    name = unique_name()
    tag = name.rsplit("-", 1)[-1]
    entry = entry.format(tag=tag)
    package = make_zip({"app.py": ECHO, entry: "print('escaped')\n"})

    with pytest.raises(ClientError) as excinfo:
        _create(lam, name, Code={"ZipFile": package})
    assert_client_error(excinfo, "InvalidParameterValueException", 400)
    _assert_not_created(lam, name)
    escaped = f"evil-{tag}.py"
    assert not (Path("/tmp") / escaped).exists()
    assert not list(corral.data_dir.parent.rglob(escaped))


def test_create_request_over_70_mb_is_request_entity_too_large(lam):
    # 53,000,000 bytes travel as ~70.7 MB of base64, over the CreateFunction request limit.
    # AWS: 413 RequestEntityTooLargeException "Request must be smaller than 70167211 bytes
    # for the CreateFunction operation" (69905067 before late 2023; localstack#2999,
    # motdotla/node-lambda#123).
    name = unique_name()
    with pytest.raises(ClientError) as excinfo:
        _create(lam, name, Code={"ZipFile": b"\0" * 53_000_000})
    message = assert_client_error(excinfo, "RequestEntityTooLargeException", 413)
    assert re.fullmatch(
        r"Request must be smaller than \d+ bytes for the CreateFunction operation", message
    ), message
    _assert_not_created(lam, name)


# ---- Persistence -----------------------------------------------------------------------


def test_function_survives_a_server_restart(tmp_path):
    data_dir = tmp_path / "corral"
    data_dir.mkdir()
    name = unique_name()
    source = "def handler(event, context):\n    return {'alive': event['n'] + 1}\n"

    with CorralProcess(data_dir) as first:
        before = create_python_function(lambda_client(first.url), name, source)

    with CorralProcess(data_dir) as second:
        lam = lambda_client(second.url)
        response, result = invoke_json(lam, name, {"n": 41})
        after = lam.get_function(FunctionName=name)["Configuration"]

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response, result
    assert result == {"alive": 42}
    assert after["RevisionId"] == before["RevisionId"]
    assert after["CodeSha256"] == before["CodeSha256"]
