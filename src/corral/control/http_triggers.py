"""Function URL configurations (CreateFunctionUrlConfig ... ListFunctionUrlConfigs) and the
deployment's HTTP API route table.

Both are read on every HTTP-triggered request, so they are cached in memory: URLs by
url-id (filled on first use, dropped with their function), routes as one compiled table
rebuilt on every change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from corral.control.aliases import AliasService
from corral.control.functions import FunctionService
from corral.model import limits
from corral.model.arn import Scope, parse_function_ref
from corral.model.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from corral.model.function_url import (
    AUTH_NONE,
    BUFFERED,
    Cors,
    FunctionUrl,
    check_auth_type,
    new_url_id,
    timestamp,
    url_qualifier,
)
from corral.model.http_route import (
    TIMEOUT_MAX_MS,
    Route,
    RouteTable,
    check_route,
    new_route_id,
)
from corral.store.http_triggers import HttpTriggerStore

_NOT_FOUND = "The resource you requested does not exist."


class FunctionUrlService:
    def __init__(
        self,
        store: HttpTriggerStore,
        functions: FunctionService,
        aliases: AliasService,
        scope: Scope,
        url_of: Callable[[str], str],
    ) -> None:
        self.store = store
        self.functions = functions
        self.aliases = aliases
        self.scope = scope
        self.url_of = url_of  # url-id -> the FunctionUrl the API reports
        self._by_id: dict[str, FunctionUrl] = {}
        functions.on_function_delete.append(self._forget)

    def to_wire(self, url: FunctionUrl, last_modified: bool = True) -> dict:
        return url.to_wire(self.scope, self.url_of(url.url_id), last_modified)

    # ---- front door -------------------------------------------------------------------

    def lookup(self, url_id: str) -> FunctionUrl | None:
        url = self._by_id.get(url_id)
        if url is None:
            record = self.store.url_by_id(url_id)
            if record is None:
                return None
            url = self._by_id[url_id] = FunctionUrl.from_record(record)
        return url

    # ---- the API ----------------------------------------------------------------------

    def _target(self, name: str, qualifier: str | None) -> str | None:
        qualifier = url_qualifier(qualifier)
        self.functions.get(name)  # ResourceNotFoundException for an unknown function
        if qualifier is not None:
            self.aliases.get(name, qualifier)  # ... and for an unknown alias
        return qualifier

    def _existing(self, name: str, qualifier: str | None) -> FunctionUrl:
        # Only the function must exist: as in Lambda, an alias's URL outlives the alias
        # (it stops answering, see HttpTriggers, but can still be read and deleted).
        qualifier = url_qualifier(qualifier)
        self.functions.get(name)
        record = self.store.url_for(name, qualifier)
        if record is None:
            raise ResourceNotFoundException(_NOT_FOUND)
        return FunctionUrl.from_record(record)

    def create(self, name: str, qualifier: str | None, params: dict) -> FunctionUrl:
        qualifier = self._target(name, qualifier)
        auth_type = params.get("AuthType", AUTH_NONE)
        check_auth_type(auth_type)
        cors = Cors.from_wire(params["Cors"]) if params.get("Cors") is not None else None
        if self.store.url_for(name, qualifier) is not None:
            arn = self.scope.function_arn(name, qualifier)
            raise ResourceConflictException(
                f"Failed to create function url config for [functionArn = {arn}]. "
                "Error message:  FunctionUrlConfig exists for this Lambda function"
            )
        now = timestamp()
        url = FunctionUrl(
            url_id=new_url_id(),
            function_name=name,
            qualifier=qualifier,
            auth_type=auth_type,
            creation_time=now,
            last_modified_time=now,
            invoke_mode=params.get("InvokeMode") or BUFFERED,
            cors=cors,
        )
        self.store.put_url(url.to_record(), create=True)
        self._by_id[url.url_id] = url
        return url

    def get(self, name: str, qualifier: str | None) -> FunctionUrl:
        return self._existing(name, qualifier)

    def update(self, name: str, qualifier: str | None, params: dict) -> FunctionUrl:
        url = self._existing(name, qualifier)
        changes: dict = {}
        if "AuthType" in params:
            check_auth_type(params["AuthType"])
            changes["auth_type"] = params["AuthType"]
        if "Cors" in params:
            changes["cors"] = None if params["Cors"] is None else Cors.from_wire(params["Cors"])
        if params.get("InvokeMode"):
            changes["invoke_mode"] = params["InvokeMode"]
        updated = url.replace(last_modified_time=timestamp(), **changes)
        self.store.put_url(updated.to_record(), create=False)
        self._by_id[updated.url_id] = updated
        return updated

    def delete(self, name: str, qualifier: str | None) -> None:
        url = self._existing(name, qualifier)
        self.store.delete_url(url.url_id)
        self._by_id.pop(url.url_id, None)

    def list(
        self, name: str, marker: str | None, max_items: int | None
    ) -> tuple[list[FunctionUrl], str | None]:
        self.functions.get(name)
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        # The marker is the last qualifier handed out ("$LATEST" for the unqualified URL).
        after = None if marker is None else ("" if marker == "$LATEST" else marker)
        records = self.store.list_urls(name, after, limit + 1)
        urls = [FunctionUrl.from_record(r) for r in records[:limit]]
        next_marker = None
        if len(records) > limit:
            next_marker = urls[-1].qualifier or "$LATEST"
        return urls, next_marker

    def _forget(self, name: str) -> None:
        for url_id in [k for k, u in self._by_id.items() if u.function_name == name]:
            del self._by_id[url_id]


class RouteService:
    """The deployment's HTTP API: one route table, `$default` stage and a named one."""

    def __init__(
        self,
        store: HttpTriggerStore,
        functions: FunctionService,
        scope: Scope,
        aliases: AliasService | None = None,
    ) -> None:
        self.store = store
        self.functions = functions
        self.scope = scope
        self.aliases = aliases
        self.table = RouteTable([])
        self._reload()

    def _reload(self) -> None:
        self.table = RouteTable([Route.from_wire(r) for r in self.store.list_routes()])

    def list(self) -> list[Route]:
        return [Route.from_wire(r) for r in self.store.list_routes()]

    def add(self, params: dict) -> Route:
        route_key = check_route(
            params.get("RouteKey"),
            params.get("PayloadFormatVersion", "2.0"),
            params.get("TimeoutInMillis", TIMEOUT_MAX_MS),
        )
        target = params.get("FunctionName")
        if not isinstance(target, str) or not target:
            raise InvalidParameterValueException("FunctionName is required.")
        ref = parse_function_ref(target, self.scope)
        # ResourceNotFoundException for a missing function, version or alias: better now
        # than a 500 on every request
        if self.aliases is not None:
            self.aliases.primary(ref.name, ref.qualifier)
        else:
            self.functions.get_version(ref.name, ref.qualifier)
        if any(r.route_key == route_key for r in self.list()):
            raise ResourceConflictException(f"Route with key {route_key} already exists.")
        route = Route(
            new_route_id(),
            route_key,
            target,
            params.get("PayloadFormatVersion", "2.0"),
            params.get("TimeoutInMillis", TIMEOUT_MAX_MS),
            datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.store.put_route(route.to_wire())
        self._reload()
        return route

    def remove(self, id_or_key: str) -> None:
        for route in self.list():
            if id_or_key in (route.route_id, route.route_key):
                self.store.delete_route(route.route_id)
                self._reload()
                return
        raise ResourceNotFoundException(f"Route not found: {id_or_key}")
