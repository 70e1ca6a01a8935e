"""Function ARNs and the forms in which a FunctionName may be given.

Lambda accepts `name`, `name:qualifier`, `123456789012:function:name[:qualifier]` and
`arn:aws:lambda:region:123456789012:function:name[:qualifier]` wherever a FunctionName is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException

LATEST = "$LATEST"

_FUNCTION_REF = re.compile(
    r"(?:arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:)?"
    r"(?:(?P<region>[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?"
    r"(?:function:)?"
    r"(?P<name>[a-zA-Z0-9_-]+)"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?"
)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where this Corral pretends to be: the region and account its ARNs name."""

    region: str = "us-east-1"
    account: str = "000000000000"

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn


@dataclass(frozen=True, slots=True)
class FunctionRef:
    name: str
    qualifier: str | None


def parse_function_ref(value: str, scope: Scope, qualifier: str | None = None) -> FunctionRef:
    """Split a FunctionName into name and qualifier.

    `qualifier` is the separate Qualifier parameter; if both are given they must agree.
    Raises ResourceNotFoundException for an ARN of another region or account, and
    InvalidParameterValueException when the two qualifiers differ.
    """
    m = _FUNCTION_REF.fullmatch(value)
    if m is None:
        raise ResourceNotFoundException(f"Function not found: {scope.function_arn(value)}")
    region, account = m.group("region"), m.group("account")
    if (region and region != scope.region) or (account and account != scope.account):
        raise ResourceNotFoundException(f"Function not found: {value}")
    derived = m.group("qualifier")
    if derived and qualifier and derived != qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return FunctionRef(m.group("name"), derived or qualifier)
