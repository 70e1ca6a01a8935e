"""Lambda API operations on asynchronous invocation configuration
(/2019-09-25/functions/{FunctionName}/event-invoke-config[/list])."""

from __future__ import annotations

from corral.control.event_config import EventConfigService
from corral.http.lambda_api import ApiRequest, Handler
from corral.model.arn import Scope, parse_function_ref


class EventConfigApi:
    def __init__(self, configs: EventConfigService, scope: Scope) -> None:
        self.configs = configs
        self.scope = scope

    def handlers(self) -> dict[str, Handler]:
        return {
            "PutFunctionEventInvokeConfig": self.put,
            "UpdateFunctionEventInvokeConfig": self.update,
            "GetFunctionEventInvokeConfig": self.get,
            "DeleteFunctionEventInvokeConfig": self.delete,
            "ListFunctionEventInvokeConfigs": self.list,
        }

    def _ref(self, params: dict) -> tuple[str, str | None]:
        ref = parse_function_ref(params["FunctionName"], self.scope, params.get("Qualifier"))
        return ref.name, ref.qualifier

    async def put(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, self.configs.put(*self._ref(params), params, merge=False)

    async def update(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, self.configs.put(*self._ref(params), params, merge=True)

    async def get(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, self.configs.get(*self._ref(params))

    async def delete(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        self.configs.delete(*self._ref(params))
        return 204, None

    async def list(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name = parse_function_ref(params["FunctionName"], self.scope).name
        items, marker = self.configs.list(name, params.get("Marker"), params.get("MaxItems"))
        result: dict = {"FunctionEventInvokeConfigs": items}
        if marker:
            result["NextMarker"] = marker
        return 200, result
