"""Lambda API operations on layers (rest-json, /2018-10-31/layers...): PublishLayerVersion
201, GetLayerVersion, GetLayerVersionByArn (`GET /2018-10-31/layers?find=LayerVersion&Arn=`),
ListLayers, ListLayerVersions, DeleteLayerVersion 204, AddLayerVersionPermission 201
`{"Statement": "<JSON>", "RevisionId"}`, GetLayerVersionPolicy `{"Policy", "RevisionId"}`,
RemoveLayerVersionPermission 204. Content.Location is Corral's own download URL for the zip,
`/corral/v1/code/<hex>.zip`, as GetFunction's Code.Location.
"""

from __future__ import annotations

import orjson

from corral.control.layers import LayerService
from corral.http.lambda_api import ApiRequest, Handler
from corral.model.arn import Scope
from corral.model.layers import LayerVersion, layer_arn, parse_layer_name


class LayerApi:
    def __init__(self, layers: LayerService, scope: Scope) -> None:
        self.layers = layers
        self.scope = scope

    def handlers(self) -> dict[str, Handler]:
        return {
            "PublishLayerVersion": self.publish_layer_version,
            "GetLayerVersion": self.get_layer_version,
            "GetLayerVersionByArn": self.get_layer_version_by_arn,
            "ListLayers": self.list_layers,
            "ListLayerVersions": self.list_layer_versions,
            "DeleteLayerVersion": self.delete_layer_version,
            "AddLayerVersionPermission": self.add_layer_version_permission,
            "GetLayerVersionPolicy": self.get_layer_version_policy,
            "RemoveLayerVersionPermission": self.remove_layer_version_permission,
        }

    def _name(self, params: dict) -> str:
        return parse_layer_name(params["LayerName"], self.scope)

    @staticmethod
    def _number(params: dict) -> int:
        return int(params["VersionNumber"])  # the validator has checked it is a long

    def _wire(self, version: LayerVersion, request: ApiRequest) -> dict:
        location = f"{request.base_url}/corral/v1/code/{version.code_hexdigest}.zip"
        return version.to_wire(self.scope, location)

    async def publish_layer_version(self, params: dict, request: ApiRequest):
        version = await self.layers.publish(self._name(params), params)
        return 201, self._wire(version, request)

    async def get_layer_version(self, params: dict, request: ApiRequest):
        version = self.layers.get(self._name(params), self._number(params))
        return 200, self._wire(version, request)

    async def get_layer_version_by_arn(self, params: dict, request: ApiRequest):
        return 200, self._wire(self.layers.get_by_arn(params["Arn"]), request)

    async def list_layers(self, params: dict, request: ApiRequest):
        page = self.layers.list_layers(
            params.get("CompatibleRuntime"),
            params.get("CompatibleArchitecture"),
            params.get("Marker"),
            params.get("MaxItems"),
        )
        items = [
            {
                "LayerName": v.name,
                "LayerArn": layer_arn(self.scope, v.name),
                "LatestMatchingVersion": v.list_item(self.scope),
            }
            for v in page.items
        ]
        result: dict = {"Layers": items}
        if page.next_marker:
            result["NextMarker"] = page.next_marker
        return 200, result

    async def list_layer_versions(self, params: dict, request: ApiRequest):
        page = self.layers.list_versions(
            self._name(params),
            params.get("CompatibleRuntime"),
            params.get("CompatibleArchitecture"),
            params.get("Marker"),
            params.get("MaxItems"),
        )
        result: dict = {"LayerVersions": [v.list_item(self.scope) for v in page.items]}
        if page.next_marker:
            result["NextMarker"] = page.next_marker
        return 200, result

    async def delete_layer_version(self, params: dict, request: ApiRequest):
        self.layers.delete(self._name(params), self._number(params))
        return 204, None

    async def add_layer_version_permission(self, params: dict, request: ApiRequest):
        statement, revision_id = self.layers.add_permission(
            self._name(params),
            self._number(params),
            params["StatementId"],
            params["Action"],
            params["Principal"],
            params.get("OrganizationId"),
            params.get("RevisionId"),
        )
        return 201, {"Statement": orjson.dumps(statement).decode(), "RevisionId": revision_id}

    async def get_layer_version_policy(self, params: dict, request: ApiRequest):
        policy = self.layers.get_policy(self._name(params), self._number(params))
        document = orjson.dumps(policy.document()).decode()
        return 200, {"Policy": document, "RevisionId": policy.revision_id}

    async def remove_layer_version_permission(self, params: dict, request: ApiRequest):
        self.layers.remove_permission(
            self._name(params),
            self._number(params),
            params["StatementId"],
            params.get("RevisionId"),
        )
        return 204, None
