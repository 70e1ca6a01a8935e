import pytest

from corral.model.arn import Scope
from corral.model.errors import InvalidParameterValueException
from corral.model.layers import (
    FunctionLayer,
    LayerVersion,
    check_function_layers,
    check_unzipped_total,
    parse_layer_name,
    search_path_environment,
    tree_key,
)

SCOPE = Scope("us-east-1", "000000000000")
ARN = "arn:aws:lambda:us-east-1:000000000000:layer:"


def test_function_layers_in_order_with_their_versions():
    assert check_function_layers([f"{ARN}b:3", f"{ARN}a:1"], SCOPE) == [("b", 3), ("a", 1)]


@pytest.mark.parametrize(
    ("arns", "message"),
    [
        ([f"{ARN}l{i}:1" for i in range(6)], "Cannot reference more than 5 layers."),
        (
            [f"{ARN}x:1", f"{ARN}x:2"],
            "Two different versions of the same layer are not allowed to be referenced in the "
            f"same function. {ARN}x:1 and {ARN}x:2 are versions of the same layer.",
        ),
        (
            ["arn:aws:lambda:eu-west-1:000000000000:layer:x:1"],
            "Layers are not in the same region as the function. "
            "Layers are expected to be in region us-east-1.",
        ),
        (
            ["arn:aws:lambda:us-east-1:123456789012:layer:x:1"],
            "Layer version arn:aws:lambda:us-east-1:123456789012:layer:x:1 does not exist.",
        ),
    ],
)
def test_function_layer_rules(arns, message):
    with pytest.raises(InvalidParameterValueException) as excinfo:
        check_function_layers(arns, SCOPE)
    assert excinfo.value.message == message


def test_code_and_layers_unzipped_share_one_quota():
    layer = FunctionLayer("a", 1, "0" * 64, unzipped_size=262_144_000 - 10)
    check_unzipped_total(10, [layer])
    with pytest.raises(InvalidParameterValueException) as excinfo:
        check_unzipped_total(11, [layer])
    assert excinfo.value.message == (
        "Function code combined with layers exceeds the maximum allowed size of 262144000 "
        "bytes. The actual size is 262144001 bytes."
    )


def test_layer_name_may_be_an_arn_of_this_scope_only():
    assert parse_layer_name("plain", SCOPE) == "plain"
    assert parse_layer_name(f"{ARN}named", SCOPE) == "named"
    with pytest.raises(Exception, match="does not exist"):
        parse_layer_name("arn:aws:lambda:us-east-1:123456789012:layer:named", SCOPE)


def test_tree_key_depends_on_order():
    a = FunctionLayer("a", 1, "a" * 64)
    b = FunctionLayer("b", 1, "b" * 64)
    assert tree_key([a, b]) != tree_key([b, a])
    assert tree_key([a, b]) == tree_key((a, b))


def test_search_paths_follow_lambda_with_the_opt_root_moved():
    node = search_path_environment("nodejs20.x", "/opt", "/rt", "/var/task")
    assert node["NODE_PATH"] == (
        "/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:/rt/node_modules:/rt:/var/task"
    )
    assert node["PATH"].split(":")[-1] == "/opt/bin"
    assert node["LD_LIBRARY_PATH"] == "/lib64:/usr/lib64:/var/task:/var/task/lib:/opt/lib"
    python = search_path_environment("python3.12", "/data/layers/k", "/rt", "/code")
    assert "NODE_PATH" not in python
    assert python["CORRAL_OPT_DIR"] == "/data/layers/k"
    assert python["PATH"].endswith(":/data/layers/k/bin")
    assert python["LD_LIBRARY_PATH"].endswith(":/code:/code/lib:/data/layers/k/lib")


def test_layer_version_wire_shape_omits_what_was_not_given():
    version = LayerVersion("l", 2, "c2hh", "0" * 64, 10, 20, "2026-01-01T00:00:00.000+0000")
    wire = version.to_wire(SCOPE, "http://x/zip")
    assert wire == {
        "Content": {"Location": "http://x/zip", "CodeSha256": "c2hh", "CodeSize": 10},
        "LayerArn": f"{ARN}l",
        "LayerVersionArn": f"{ARN}l:2",
        "Version": 2,
        "Description": "",
        "CreatedDate": "2026-01-01T00:00:00.000+0000",
    }
    assert version.matches(None, None)
    assert not version.matches("python3.12", None)
