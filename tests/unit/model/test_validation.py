"""InputValidator against the real botocore model: AWS's exact messages and error types.

Expected strings follow real responses quoted in public issues (see the header of
corral/model/validation.py for sources and for what remains our choice).
"""

from __future__ import annotations

import pytest

from corral.http.service_model import ServiceModel
from corral.model.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaError,
    ValidationException,
)
from corral.model.validation import InputValidator

ROLE = "arn:aws:iam::123456789012:role/lambda-role"
CODE = {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}
FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)


@pytest.fixture(scope="module")
def model() -> ServiceModel:
    return ServiceModel.load()


@pytest.fixture(scope="module")
def validator(model: ServiceModel) -> InputValidator:
    return InputValidator(model.shapes)


def create(**members: object) -> dict[str, object]:
    return {"FunctionName": "f", "Role": ROLE, "Code": CODE, **members}


def error_of(validator: InputValidator, shape: str, params: object) -> LambdaError:
    with pytest.raises(LambdaError) as info:
        validator.validate(shape, params)
    return info.value


def validation_message(validator: InputValidator, params: object) -> str:
    error = error_of(validator, "CreateFunctionRequest", params)
    assert type(error) is ValidationException
    return error.message


def test_service_model_loads_operations_from_botocore(model: ServiceModel) -> None:
    create_function = model.operations["CreateFunction"]
    invoke = model.operations["Invoke"]
    assert (create_function.method, create_function.request_uri) == (
        "POST",
        "/2015-03-31/functions",
    )
    assert create_function.response_code == 201
    assert create_function.input_shape == "CreateFunctionRequest"
    assert invoke.request_uri == "/2015-03-31/functions/{FunctionName}/invocations"
    assert model.shapes["Timeout"]["type"] == "integer"


def test_every_operation_input_compiles_with_an_empty_request(model: ServiceModel) -> None:
    validator = InputValidator(model.shapes)
    for op in model.operations.values():
        if op.input_shape:
            try:
                validator.validate(op.input_shape, {})
            except ValidationException as exc:
                assert "Member must not be null" in exc.message


def test_minimal_create_function_passes(validator: InputValidator) -> None:
    validator.validate("CreateFunctionRequest", create())


def test_full_create_function_passes(validator: InputValidator) -> None:
    validator.validate(
        "CreateFunctionRequest",
        create(
            FunctionName="my-function_1",
            Runtime="python3.11",
            Handler="app.handler",
            Description="d" * 256,
            Timeout=900,
            MemorySize=10240,
            Publish=True,
            PackageType="Zip",
            Environment={"Variables": {"LOG_LEVEL": "debug", "A1": ""}},
            Tags={"team": "core"},
            Layers=["arn:aws:lambda:us-east-1:123456789012:layer:deps:3"],
            Architectures=["arm64"],
            EphemeralStorage={"Size": 10240},
            TracingConfig={"Mode": "PassThrough"},
            LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "INFO"},
            DeadLetterConfig={"TargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq"},
            KMSKeyArn="",
            SnapStart={"ApplyOn": "None"},
            VpcConfig={"SubnetIds": [], "SecurityGroupIds": ["sg-1"]},
        ),
    )


def test_unknown_members_are_ignored(validator: InputValidator) -> None:
    validator.validate("CreateFunctionRequest", create(NotAMember={"x": [1]}))


def test_timeout_over_900_is_validation_error(validator: InputValidator) -> None:
    assert validation_message(validator, create(Timeout=901)) == (
        "1 validation error detected: Value '901' at 'timeout' failed to satisfy constraint: "
        "Member must have value less than or equal to 900"
    )


def test_timeout_zero_is_validation_error(validator: InputValidator) -> None:
    assert validation_message(validator, create(Timeout=0)) == (
        "1 validation error detected: Value '0' at 'timeout' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


@pytest.mark.parametrize(
    ("memory_mb", "text"),
    [
        (64, "Member must have value greater than or equal to 128"),
        (10241, "Member must have value less than or equal to 10240"),
    ],
)
def test_memory_size_out_of_range(validator: InputValidator, memory_mb: int, text: str) -> None:
    assert validation_message(validator, create(MemorySize=memory_mb)) == (
        f"1 validation error detected: Value '{memory_mb}' at 'memorySize' failed to satisfy "
        f"constraint: {text}"
    )


def test_several_violations_are_counted_and_joined_in_member_order(
    validator: InputValidator,
) -> None:
    params = create(MemorySize=64, FunctionName="bad name", Timeout=901)
    assert validation_message(validator, params) == (
        "3 validation errors detected: "
        "Value 'bad name' at 'functionName' failed to satisfy constraint: Member must satisfy "
        f"regular expression pattern: {FUNCTION_NAME_PATTERN}; "
        "Value '901' at 'timeout' failed to satisfy constraint: "
        "Member must have value less than or equal to 900; "
        "Value '64' at 'memorySize' failed to satisfy constraint: "
        "Member must have value greater than or equal to 128"
    )


def test_missing_role_and_code_are_null_violations(validator: InputValidator) -> None:
    assert validation_message(validator, {"FunctionName": "f"}) == (
        "2 validation errors detected: "
        "Value null at 'role' failed to satisfy constraint: Member must not be null; "
        "Value null at 'code' failed to satisfy constraint: Member must not be null"
    )


def test_explicit_json_null_counts_as_missing(validator: InputValidator) -> None:
    assert validation_message(validator, create(Role=None)) == (
        "1 validation error detected: "
        "Value null at 'role' failed to satisfy constraint: Member must not be null"
    )


def test_function_name_outside_pattern(validator: InputValidator) -> None:
    assert validation_message(validator, create(FunctionName="my function!")) == (
        "1 validation error detected: Value 'my function!' at 'functionName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}"
    )


def test_bare_function_name_over_64_is_invalid_parameter(validator: InputValidator) -> None:
    name = "n" * 65
    error = error_of(validator, "CreateFunctionRequest", create(FunctionName=name))
    assert type(error) is InvalidParameterValueException
    assert error.message == (
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64"
    )


def test_function_arn_may_hold_a_name_over_64(validator: InputValidator) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:" + "n" * 65
    validator.validate("GetFunctionRequest", {"FunctionName": arn})


def test_description_over_256(validator: InputValidator) -> None:
    description = "d" * 257
    assert validation_message(validator, create(Description=description)) == (
        f"1 validation error detected: Value '{description}' at 'description' failed to "
        "satisfy constraint: Member must have length less than or equal to 256"
    )


def test_package_type_outside_enum(validator: InputValidator) -> None:
    assert validation_message(validator, create(PackageType="Jar")) == (
        "1 validation error detected: Value 'Jar' at 'packageType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [Zip, Image]"
    )


def test_runtime_outside_enum_is_invalid_parameter(
    validator: InputValidator, model: ServiceModel
) -> None:
    error = error_of(validator, "CreateFunctionRequest", create(Runtime="python9.9"))
    runtimes = ", ".join(model.shapes["Runtime"]["enum"])
    assert type(error) is InvalidParameterValueException
    assert error.message == (
        "Value python9.9 at 'runtime' failed to satisfy constraint: Member must satisfy enum "
        f"value set: [{runtimes}] or be a valid ARN"
    )


def test_model_violations_come_before_the_runtime_rule(validator: InputValidator) -> None:
    error = error_of(validator, "CreateFunctionRequest", create(Runtime="x", Timeout=901))
    assert type(error) is ValidationException


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (create(Timeout="30"), 'java.lang.Integer` from String "30"'),
        (create(Timeout=True), "java.lang.Integer` from Boolean value"),
        (create(Description={"a": 1}), "java.lang.String` from Object value"),
        (["FunctionName", "f"], "CreateFunctionRequest` from Array value"),
    ],
)
def test_type_mismatch_is_invalid_request_content(
    validator: InputValidator, params: object, detail: str
) -> None:
    error = error_of(validator, "CreateFunctionRequest", params)
    assert type(error) is InvalidRequestContentException
    assert error.message.startswith(
        "Could not parse request body into json: Could not parse payload into json: "
        "Cannot deserialize value of type `"
    )
    assert detail in error.message


def test_nested_member_path_is_dotted(validator: InputValidator) -> None:
    assert validation_message(validator, create(EphemeralStorage={"Size": 10241})) == (
        "1 validation error detected: Value '10241' at 'ephemeralStorage.size' failed to "
        "satisfy constraint: Member must have value less than or equal to 10240"
    )


def test_list_over_max_length(validator: InputValidator) -> None:
    params = create(Architectures=["x86_64", "arm64"])
    assert validation_message(validator, params) == (
        "1 validation error detected: Value '[x86_64, arm64]' at 'architectures' failed to "
        "satisfy constraint: Member must have length less than or equal to 1"
    )


def test_list_element_violation_lists_element_constraints(validator: InputValidator) -> None:
    assert validation_message(validator, create(Architectures=["arm32"])) == (
        "1 validation error detected: Value '[arm32]' at 'architectures' failed to satisfy "
        "constraint: Member must satisfy constraint: [Member must satisfy enum value set: "
        "[x86_64, arm64], Member must not be null]"
    )


def test_sensitive_map_key_violation_hides_the_value(validator: InputValidator) -> None:
    params = create(Environment={"Variables": {"A": "secret"}})
    assert validation_message(validator, params) == (
        "1 validation error detected: Value at 'environment.variables' failed to satisfy "
        "constraint: Map keys must satisfy constraint: "
        "[Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
    )


def test_pattern_whitespace_class_is_ascii_as_in_java(validator: InputValidator) -> None:
    validator.validate("CreateFunctionRequest", create(Handler="app.handler\u00a0"))
    assert "'handler'" in validation_message(validator, create(Handler="app handler"))


def test_invocation_type_and_log_type_headers_outside_enum(validator: InputValidator) -> None:
    params = {"FunctionName": "f", "InvocationType": "Async", "LogType": "Full"}
    error = error_of(validator, "InvocationRequest", params)
    assert type(error) is ValidationException
    assert error.message == (
        "2 validation errors detected: "
        "Value 'Async' at 'invocationType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Event, RequestResponse, DryRun]; "
        "Value 'Full' at 'logType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [None, Tail]"
    )


def test_query_string_integer_is_checked_from_its_text(validator: InputValidator) -> None:
    error = error_of(validator, "ListFunctionsRequest", {"MaxItems": "0"})
    assert error.message == (
        "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )
