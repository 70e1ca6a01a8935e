import pytest

from corral.model.alias import Alias, check_routing
from corral.model.arn import Scope
from corral.model.errors import InvalidParameterValueException


def test_weights_split_the_unit_interval():
    alias = Alias("f", "live", "1", weights={"2": 0.25})
    assert alias.pick_version(0.0) == "2"
    assert alias.pick_version(0.2499) == "2"
    assert alias.pick_version(0.25) == "1"
    assert alias.pick_version(0.999) == "1"


def test_wire_shape_has_routing_only_when_weighted():
    scope = Scope()
    plain = Alias("f", "live", "1", revision_id="r").to_wire(scope)
    assert plain["AliasArn"] == "arn:aws:lambda:us-east-1:000000000000:function:f:live"
    assert "RoutingConfig" not in plain
    weighted = Alias("f", "live", "1", weights={"2": 0.5}).to_wire(scope)
    assert weighted["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}


@pytest.mark.parametrize(
    ("version", "weights", "message"),
    [
        ("$LATEST", {"2": 0.1}, "$LATEST is not supported"),
        ("1", {"$LATEST": 0.1}, "$LATEST is not supported"),
        ("1", {"1": 0.1}, "already included in routing configuration"),
        ("1", {"2": 0.1, "3": 0.1}, "cannot be greater than 1"),
    ],
)
def test_routing_rules(version, weights, message):
    with pytest.raises(InvalidParameterValueException, match=message.replace("$", r"\$")):
        check_routing(version, weights)
