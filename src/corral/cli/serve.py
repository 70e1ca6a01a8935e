"""`corral serve`: run the platform in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

from corral.cli import app
from corral.config import Settings


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback unless auth is set)."),
    port: int = typer.Option(9000, help="Port to bind; 0 picks a free one."),
    data_dir: Path = typer.Option(Path(".corral"), help="Where functions, code and logs live."),
    keep_alive: float = typer.Option(300.0, help="Seconds an idle environment is kept warm."),
    concurrency_limit: int = typer.Option(1000, help="Account concurrency limit."),
    code_storage_limit: int = typer.Option(
        75 * 1024**3, help="Bytes of code packages, all versions together (Lambda: 75 GB)."
    ),
    async_retry_delays: str = typer.Option(
        "60,120", help="Seconds before the retries of a failed Event invocation (Lambda's)."
    ),
    sandbox: str = typer.Option(
        "auto",
        help="Sandbox backend: process, namespace, or auto (namespace where this machine "
        "supports it, else process with a warning).",
    ),
    price_gb_second: float = typer.Option(
        0.0000166667, min=0, help="Price of a GB-second in USD, for `corral usage` (Lambda x86)."
    ),
    price_million_requests: float = typer.Option(
        0.20, min=0, help="Price of a million requests in USD, for `corral usage` (Lambda's)."
    ),
    log_group_max_bytes: int = typer.Option(
        100 * 1024 * 1024, min=1024, help="Bytes of logs kept per log group; the oldest go first."
    ),
    log_total_max_bytes: int = typer.Option(
        1024**3,
        min=1024,
        help="Bytes of logs kept by the server, all log groups together; the oldest go first.",
    ),
    log_rate_limit: int = typer.Option(
        2 * 1024 * 1024,
        min=1024,
        help="Bytes of function output logged per environment and second; the rest is dropped.",
    ),
    metering_retention_days: float = typer.Option(
        7.0,
        min=0,
        help="Days per-invocation metering records are kept; older ones are rolled up into "
        "hourly sums, which `corral usage` still counts.",
    ),
    otlp_endpoint: str = typer.Option(
        "", help="OTLP/HTTP collector (http://host:4318): export a span per invocation."
    ),
    region: str = typer.Option("us-east-1", help="Region named in ARNs."),
    account: str = typer.Option("000000000000", help="Account id named in ARNs."),
) -> None:
    """Start Corral and serve until SIGTERM or Ctrl-C."""
    settings = Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        region=region,
        account=account,
        keep_alive_s=keep_alive,
        concurrency_limit=concurrency_limit,
        code_storage_limit_bytes=code_storage_limit,
        async_retry_delays_s=_delays(async_retry_delays),
        sandbox=sandbox,
        price_gb_second_usd=price_gb_second,
        price_million_requests_usd=price_million_requests,
        log_group_max_bytes=log_group_max_bytes,
        log_rate_bytes_per_s=log_rate_limit,
        log_total_max_bytes=log_total_max_bytes,
        otlp_endpoint=otlp_endpoint or None,
        metering_retention_days=metering_retention_days,
    )
    from corral.app import serve as run

    raise typer.Exit(run(settings))


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        delays = ()
    if not delays or any(d < 0 for d in delays):
        raise typer.BadParameter("a comma-separated list of seconds, such as 60,120")
    return delays
