"""`corral url create|show|rm`: a function's URL, through Lambda's own API
(CreateFunctionUrlConfig, GetFunctionUrlConfig, DeleteFunctionUrlConfig)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from corral.cli import app
from corral.cli.commands import DEFAULT_ENDPOINT, Endpoint, _api

URLS = "/2021-10-31/functions"

url_app = typer.Typer(help="Function URLs: an HTTP address for a function or an alias.")
app.add_typer(url_app, name="url")

Name = Annotated[str, typer.Argument(help="Function name or ARN.")]
Qualifier = Annotated[str | None, typer.Option(help="An alias of the function.")]


def _path(name: str) -> str:
    return f"{URLS}/{quote(name, safe=':')}/url"


def _params(qualifier: str | None) -> dict[str, str]:
    return {"Qualifier": qualifier} if qualifier else {}


def _show(config: dict) -> None:
    url = config["FunctionUrl"]
    url_id = url.split("//", 1)[1].split(".", 1)[0]
    typer.echo(url)
    typer.echo(f"  path-based: /url/{url_id}/  InvokeMode {config.get('InvokeMode', 'BUFFERED')}")


@url_app.command("create")
def create(
    name: Name,
    qualifier: Qualifier = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allowed CORS origin (repeat; * for any)."),
    ] = None,
    cors_method: Annotated[
        list[str] | None, typer.Option("--cors-method", help="Allowed CORS method (repeat).")
    ] = None,
    stream: Annotated[bool, typer.Option("--stream", help="InvokeMode RESPONSE_STREAM.")] = False,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Give a function (or an alias) a URL, with AuthType NONE."""
    body: dict = {"AuthType": "NONE", "InvokeMode": "RESPONSE_STREAM" if stream else "BUFFERED"}
    cors: dict = {}
    if cors_origin:
        cors["AllowOrigins"] = cors_origin
    if cors_method:
        cors["AllowMethods"] = cors_method
    if cors:
        body["Cors"] = cors
    with _api(endpoint) as api:
        config = api.request("POST", _path(name), params=_params(qualifier), json=body).json()
    _show(config)


@url_app.command("show")
def show(name: Name, qualifier: Qualifier = None, endpoint: Endpoint = DEFAULT_ENDPOINT) -> None:
    """Print a function's URL."""
    with _api(endpoint) as api:
        _show(api.request("GET", _path(name), params=_params(qualifier)).json())


@url_app.command("rm")
def remove(name: Name, qualifier: Qualifier = None, endpoint: Endpoint = DEFAULT_ENDPOINT) -> None:
    """Delete a function's URL."""
    with _api(endpoint) as api:
        api.request("DELETE", _path(name), params=_params(qualifier))
