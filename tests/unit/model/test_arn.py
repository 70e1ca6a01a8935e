import pytest

from corral.model.arn import Scope, parse_function_ref
from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException

SCOPE = Scope("us-east-1", "000000000000")


@pytest.mark.parametrize(
    ("value", "name", "qualifier"),
    [
        ("my-fn", "my-fn", None),
        ("my-fn:$LATEST", "my-fn", "$LATEST"),
        ("my-fn:prod", "my-fn", "prod"),
        ("000000000000:function:my-fn", "my-fn", None),
        ("arn:aws:lambda:us-east-1:000000000000:function:my-fn", "my-fn", None),
        ("arn:aws:lambda:us-east-1:000000000000:function:my-fn:7", "my-fn", "7"),
    ],
)
def test_function_name_forms(value, name, qualifier):
    ref = parse_function_ref(value, SCOPE)
    assert (ref.name, ref.qualifier) == (name, qualifier)


def test_separate_qualifier_is_used_when_name_has_none():
    assert parse_function_ref("f", SCOPE, "$LATEST").qualifier == "$LATEST"


def test_conflicting_qualifiers_are_invalid():
    with pytest.raises(InvalidParameterValueException, match="derived qualifier"):
        parse_function_ref("f:1", SCOPE, "2")


def test_arn_of_another_account_is_not_found():
    with pytest.raises(ResourceNotFoundException):
        parse_function_ref("arn:aws:lambda:us-east-1:123456789012:function:f", SCOPE)


def test_function_arn_rendering():
    assert SCOPE.function_arn("f") == "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert SCOPE.function_arn("f", "$LATEST").endswith(":function:f:$LATEST")
