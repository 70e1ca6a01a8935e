"""Lambda API operations on provisioned concurrency (/2019-09-30/.../provisioned-concurrency)."""

from __future__ import annotations

from corral.control.provisioned import ProvisionedService
from corral.http.lambda_api import ApiRequest, Handler
from corral.model.arn import Scope, parse_function_ref


class ProvisionedApi:
    def __init__(self, provisioned: ProvisionedService, scope: Scope) -> None:
        self.provisioned = provisioned
        self.scope = scope

    def handlers(self) -> dict[str, Handler]:
        return {
            "PutProvisionedConcurrencyConfig": self.put,
            "GetProvisionedConcurrencyConfig": self.get,
            "DeleteProvisionedConcurrencyConfig": self.delete,
            "ListProvisionedConcurrencyConfigs": self.list,
        }

    def _ref(self, params: dict) -> tuple[str, str]:
        ref = parse_function_ref(params["FunctionName"], self.scope, params.get("Qualifier"))
        return ref.name, ref.qualifier or ""

    async def put(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, qualifier = self._ref(params)
        return 202, self.provisioned.put(name, qualifier, params["ProvisionedConcurrentExecutions"])

    async def get(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, self.provisioned.get(*self._ref(params))

    async def delete(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        self.provisioned.delete(*self._ref(params))
        return 204, None

    async def list(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name = parse_function_ref(params["FunctionName"], self.scope).name
        items, marker = self.provisioned.list(name, params.get("Marker"), params.get("MaxItems"))
        result: dict = {"ProvisionedConcurrencyConfigs": items}
        if marker:
            result["NextMarker"] = marker
        return 200, result
