"""Lambda API operations on function URLs: CreateFunctionUrlConfig, GetFunctionUrlConfig,
UpdateFunctionUrlConfig, DeleteFunctionUrlConfig (/2021-10-31/functions/{FunctionName}/url)
and ListFunctionUrlConfigs (/2021-10-31/functions/{FunctionName}/urls)."""

from __future__ import annotations

from corral.control.http_triggers import FunctionUrlService
from corral.http.lambda_api import ApiRequest, Handler
from corral.model.arn import Scope, parse_function_ref


class FunctionUrlApi:
    def __init__(self, urls: FunctionUrlService, scope: Scope) -> None:
        self.urls = urls
        self.scope = scope

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateFunctionUrlConfig": self.create,
            "GetFunctionUrlConfig": self.get,
            "UpdateFunctionUrlConfig": self.update,
            "DeleteFunctionUrlConfig": self.delete,
            "ListFunctionUrlConfigs": self.list,
        }

    def _ref(self, params: dict) -> tuple[str, str | None]:
        ref = parse_function_ref(params["FunctionName"], self.scope, params.get("Qualifier"))
        return ref.name, ref.qualifier

    async def create(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        url = self.urls.create(*self._ref(params), params)
        # CreateFunctionUrlConfigResponse has no LastModifiedTime.
        return 201, self.urls.to_wire(url, last_modified=False)

    async def get(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, self.urls.to_wire(self.urls.get(*self._ref(params)))

    async def update(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, self.urls.to_wire(self.urls.update(*self._ref(params), params))

    async def delete(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        self.urls.delete(*self._ref(params))
        return 204, None

    async def list(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name = parse_function_ref(params["FunctionName"], self.scope).name
        urls, marker = self.urls.list(name, params.get("Marker"), params.get("MaxItems"))
        result: dict = {"FunctionUrlConfigs": [self.urls.to_wire(u) for u in urls]}
        if marker:
            result["NextMarker"] = marker
        return 200, result
