"""`corral route add|ls|rm`: the deployment's HTTP API routes, through Corral's own REST API
(`/corral/v1/routes`). Requests reach a route at `<endpoint>/api/<path>` or with
`Host: api.localhost`."""

from __future__ import annotations

from typing import Annotated

import typer

from corral.cli import app
from corral.cli.commands import DEFAULT_ENDPOINT, Endpoint, _api, _fail, _print_table

ROUTES = "/corral/v1/routes"

route_app = typer.Typer(help="HTTP API routes: 'GET /items/{id}' -> a function.")
app.add_typer(route_app, name="route")


@route_app.command("add")
def add(
    route_key: Annotated[str, typer.Argument(help="'METHOD /path' (ANY: any method) or $default.")],
    function: Annotated[str, typer.Argument(help="Function name, name:alias or ARN.")],
    payload_format: Annotated[
        str, typer.Option("--payload-format", help="Event format: 2.0 or 1.0 (REST-style).")
    ] = "2.0",
    timeout_ms: Annotated[
        int, typer.Option("--timeout-ms", help="Integration timeout, 50-30000 ms.")
    ] = 30000,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Route requests matching ROUTE_KEY to FUNCTION."""
    body = {
        "RouteKey": route_key,
        "FunctionName": function,
        "PayloadFormatVersion": payload_format,
        "TimeoutInMillis": timeout_ms,
    }
    with _api(endpoint) as api:
        route = api.request("POST", ROUTES, json=body).json()
    typer.echo(f"added {route['RouteKey']} -> {route['FunctionName']}  (id {route['RouteId']})")


def _routes(endpoint: str) -> list[dict]:
    with _api(endpoint) as api:
        return api.request("GET", ROUTES).json()["Routes"]


@route_app.command("ls")
def list_routes(endpoint: Endpoint = DEFAULT_ENDPOINT) -> None:
    """List the routes."""
    rows = [
        [
            r["RouteKey"],
            r["FunctionName"],
            r["PayloadFormatVersion"],
            str(r["TimeoutInMillis"]),
            r["RouteId"],
        ]
        for r in _routes(endpoint)
    ]
    _print_table(["ROUTE", "FUNCTION", "FORMAT", "TIMEOUT MS", "ID"], rows)


@route_app.command("rm")
def remove(
    route: Annotated[str, typer.Argument(help="The route key ('GET /items/{id}') or its id.")],
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Remove a route."""
    found = [r for r in _routes(endpoint) if route in (r["RouteKey"], r["RouteId"])]
    if not found:
        _fail(f"ResourceNotFoundException: Route not found: {route}")
    with _api(endpoint) as api:
        api.request("DELETE", f"{ROUTES}/{found[0]['RouteId']}")
    typer.echo(f"removed {found[0]['RouteKey']}")
