"""Lambda API handlers for tags, resource-based policies, reserved concurrency and account
settings; registered on `LambdaApi` by the composition root.

Shapes and status codes follow service-2.json: TagResource/UntagResource 204, ListTags
`{"Tags": {...}}`, AddPermission 201 `{"Statement": "<statement JSON>"}`, GetPolicy
`{"Policy": "<policy JSON>", "RevisionId"}`, RemovePermission 204, Put/GetFunctionConcurrency
`{"ReservedConcurrentExecutions": N}` (Get: `{}` when none is set), Delete 204,
GetAccountSettings `{"AccountLimit": {...}, "AccountUsage": {...}}`.
"""

from __future__ import annotations

import orjson

from corral.control.resources import Permission, ResourceService
from corral.http.lambda_api import ApiRequest, Handler
from corral.model.arn import Scope, parse_function_ref

_PERMISSION_MEMBERS = {
    "StatementId": "statement_id",
    "Action": "action",
    "Principal": "principal",
    "SourceArn": "source_arn",
    "SourceAccount": "source_account",
    "PrincipalOrgID": "principal_org_id",
    "EventSourceToken": "event_source_token",
    "FunctionUrlAuthType": "function_url_auth_type",
    "InvokedViaFunctionUrl": "invoked_via_function_url",
}


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class ResourceApi:
    def __init__(self, resources: ResourceService, scope: Scope) -> None:
        self.resources = resources
        self.scope = scope

    def handlers(self) -> dict[str, Handler]:
        """Operation name -> handler, for `LambdaApi.register`."""
        return {
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTags": self.list_tags,
            "AddPermission": self.add_permission,
            "GetPolicy": self.get_policy,
            "RemovePermission": self.remove_permission,
            "PutFunctionConcurrency": self.put_function_concurrency,
            "GetFunctionConcurrency": self.get_function_concurrency,
            "DeleteFunctionConcurrency": self.delete_function_concurrency,
            "GetAccountSettings": self.get_account_settings,
        }

    def _name(self, params: dict) -> tuple[str, str | None]:
        ref = parse_function_ref(params["FunctionName"], self.scope, params.get("Qualifier"))
        return ref.name, ref.qualifier

    # ---- tags -------------------------------------------------------------------

    async def tag_resource(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        self.resources.tag(params["Resource"], params["Tags"])
        return 204, None

    async def untag_resource(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        self.resources.untag(params["Resource"], params["TagKeys"])
        return 204, None

    async def list_tags(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        return 200, {"Tags": self.resources.list_tags(params["Resource"])}

    # ---- policy -----------------------------------------------------------------

    async def add_permission(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, qualifier = self._name(params)
        permission = Permission(
            **{field: params[m] for m, field in _PERMISSION_MEMBERS.items() if m in params}
        )
        statement = self.resources.add_permission(
            name, qualifier, permission, params.get("RevisionId")
        )
        return 201, {"Statement": _json(statement)}

    async def get_policy(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, qualifier = self._name(params)
        policy = self.resources.get_policy(name, qualifier)
        return 200, {"Policy": _json(policy.document), "RevisionId": policy.revision_id}

    async def remove_permission(self, params: dict, request: ApiRequest) -> tuple[int, object]:
        name, qualifier = self._name(params)
        self.resources.remove_permission(
            name, qualifier, params["StatementId"], params.get("RevisionId")
        )
        return 204, None

    # ---- reserved concurrency ------------------------------------------------------

    async def put_function_concurrency(self, params: dict, request: ApiRequest):
        name, qualifier = self._name(params)
        reserved = self.resources.put_reserved_concurrency(
            name, qualifier, params["ReservedConcurrentExecutions"]
        )
        return 200, {"ReservedConcurrentExecutions": reserved}

    async def get_function_concurrency(self, params: dict, request: ApiRequest):
        name, qualifier = self._name(params)
        reserved = self.resources.get_reserved_concurrency(name, qualifier)
        return 200, {} if reserved is None else {"ReservedConcurrentExecutions": reserved}

    async def delete_function_concurrency(self, params: dict, request: ApiRequest):
        name, qualifier = self._name(params)
        self.resources.delete_reserved_concurrency(name, qualifier)
        return 204, None

    # ---- account ----------------------------------------------------------------

    async def get_account_settings(self, params: dict, request: ApiRequest):
        s = self.resources.account_settings()
        return 200, {
            "AccountLimit": {
                "TotalCodeSize": s.total_code_size_limit_bytes,
                "CodeSizeUnzipped": s.code_size_unzipped_bytes,
                "CodeSizeZipped": s.code_size_zipped_bytes,
                "ConcurrentExecutions": s.concurrent_executions,
                "UnreservedConcurrentExecutions": s.unreserved_concurrent_executions,
            },
            "AccountUsage": {
                "TotalCodeSize": s.total_code_size_bytes,
                "FunctionCount": s.function_count,
            },
        }
