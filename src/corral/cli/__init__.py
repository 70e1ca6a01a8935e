"""The `corral` command line: `serve` runs the platform; the rest talk to it over HTTP."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Corral: serverless functions, speaking AWS Lambda's protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Corral: serverless functions, speaking AWS Lambda's protocols."""


def main() -> None:
    app()


from corral.cli import commands, function_urls, routes, serve  # noqa: E402, F401  (they register on `app`)
