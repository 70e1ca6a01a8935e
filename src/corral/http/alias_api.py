"""Lambda API operations on aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias,
ListAliases (rest-json, /2015-03-31/functions/{FunctionName}/aliases[/{Name}])."""

from __future__ import annotations

from corral.control.aliases import AliasService
from corral.http.lambda_api import ApiRequest, Handler
from corral.model.arn import Scope, parse_function_ref


class AliasApi:
    def __init__(self, aliases: AliasService, scope: Scope) -> None:
        self.aliases = aliases
        self.scope = scope

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateAlias": self.create_alias,
            "GetAlias": self.get_alias,
            "UpdateAlias": self.update_alias,
            "DeleteAlias": self.delete_alias,
            "ListAliases": self.list_aliases,
        }

    def _function(self, params: dict) -> str:
        return parse_function_ref(params["FunctionName"], self.scope).name

    async def create_alias(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        weights = (params.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
        alias = self.aliases.create(
            self._function(params),
            params["Name"],
            params["FunctionVersion"],
            params.get("Description", ""),
            weights,
        )
        return 201, alias.to_wire(self.scope)

    async def get_alias(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, self.aliases.get(self._function(params), params["Name"]).to_wire(self.scope)

    async def update_alias(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        alias = self.aliases.update(self._function(params), params["Name"], params)
        return 200, alias.to_wire(self.scope)

    async def delete_alias(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        self.aliases.delete(self._function(params), params["Name"])
        return 204, None

    async def list_aliases(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        page = self.aliases.list(
            self._function(params),
            params.get("FunctionVersion"),
            params.get("Marker"),
            params.get("MaxItems"),
        )
        result: dict = {"Aliases": [a.to_wire(self.scope) for a in page.aliases]}
        if page.next_marker:
            result["NextMarker"] = page.next_marker
        return 200, result
