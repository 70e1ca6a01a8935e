"""Aliases: a name for a version, optionally splitting traffic with a second version.

Lambda developer guide, "Create an alias for a Lambda function" and "Implement Lambda
canary deployments using a weighted alias"; botocore shape AliasConfiguration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from corral.model.arn import LATEST, Scope
from corral.model.errors import InvalidParameterValueException
from corral.model.function import new_revision_id


@dataclass(frozen=True, slots=True)
class Alias:
    function_name: str
    name: str
    function_version: str
    description: str = ""
    weights: dict[str, float] = field(default_factory=dict)  # AdditionalVersionWeights
    revision_id: str = ""

    def replace(self, **changes: object) -> Alias:
        changes.setdefault("revision_id", new_revision_id())
        return dataclasses.replace(self, **changes)

    def pick_version(self, draw: float) -> str:
        """The version an invocation runs, given a uniform draw in [0, 1)."""
        for version, weight in self.weights.items():
            if draw < weight:
                return version
            draw -= weight
        return self.function_version

    def to_wire(self, scope: Scope) -> dict:
        wire = {
            "AliasArn": scope.function_arn(self.function_name, self.name),
            "Name": self.name,
            "FunctionVersion": self.function_version,
            "Description": self.description,
            "RevisionId": self.revision_id,
        }
        if self.weights:
            wire["RoutingConfig"] = {"AdditionalVersionWeights": dict(self.weights)}
        return wire

    def to_record(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> Alias:
        return cls(**record)


def check_routing(function_version: str, weights: dict[str, float]) -> None:
    """Lambda's rules for a weighted alias (InvalidParameterValueException when broken)."""
    if not weights:
        return
    if len(weights) > 1:
        raise InvalidParameterValueException(
            "Number of items in AdditionalVersionWeights cannot be greater than 1"
        )
    if function_version == LATEST or LATEST in weights:
        raise InvalidParameterValueException(
            "$LATEST is not supported for an alias pointing to more than 1 version"
        )
    for version in weights:
        if version == function_version:
            raise InvalidParameterValueException(
                f"Invalid function version {version}. Function version {version} is already "
                "included in routing configuration."
            )
