"""Settings of one Corral server, from command-line options (and CORRAL_* variables)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from corral.model import limits


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path(".corral")
    region: str = "us-east-1"
    account: str = "000000000000"
    keep_alive_s: float = 300.0
    concurrency_limit: int = limits.ACCOUNT_CONCURRENCY_DEFAULT
    code_storage_limit_bytes: int = limits.CODE_STORAGE_DEFAULT_BYTES
    # Waits before the 2nd and 3rd attempts of a failed Event invocation (Lambda: 1, 2 min).
    async_retry_delays_s: tuple[float, ...] = (60.0, 120.0)
    sandbox: str = "auto"  # process | namespace | auto (namespace where the machine can)
    # The price table of `corral usage`; defaults: Lambda's x86 prices in us-east-1.
    price_gb_second_usd: float = 0.0000166667
    price_million_requests_usd: float = 0.20
    # Function logs: bytes kept per log group (oldest dropped past it), function output
    # accepted per environment and second (the excess is dropped and reported), and how
    # often retention (PutRetentionPolicy) is applied.
    log_group_max_bytes: int = 100 * 1024 * 1024
    log_rate_bytes_per_s: int = 2 * 1024 * 1024
    log_total_max_bytes: int = 1024 * 1024 * 1024  # all log groups together
    log_sweep_interval_s: float = 60.0
    # Per-invocation metering records are kept this long, then rolled up into hourly sums.
    metering_retention_days: float = 7.0
    otlp_endpoint: str | None = None  # export invocation spans over OTLP/HTTP when set
    auth_configured: bool = False  # no authentication exists yet: non-loopback binds refused

    def bind_problem(self) -> str | None:
        """Why this host may not be bound, or None if it may."""
        if self.host == "localhost":
            return None
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        if loopback or self.auth_configured:
            return None
        return (
            f"refusing to listen on {self.host}: it is not a loopback address and no "
            "authentication is configured (Corral does not implement authentication yet)"
        )
