"""The composition root: builds every component from Settings and serves them.

Nothing else constructs services or holds process-wide state; tests and the CLI start
Corral through `serve` exactly as users do.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from urllib.parse import urlsplit

import uvloop
from prometheus_client import CollectorRegistry

from corral.background import Supervisor
from corral.config import Settings
from corral.control.aliases import AliasService
from corral.control.event_config import EventConfigService
from corral.control.functions import FunctionService
from corral.control.http_triggers import FunctionUrlService, RouteService
from corral.control.layers import LayerService
from corral.control.provisioned import ProvisionedService
from corral.control.resources import ResourceService
from corral.fleet.environment import FleetContext, State
from corral.fleet.pool import Fleet
from corral.fleet.runtimes import RuntimeCatalogue
from corral.fleet.sandbox.select import build_sandbox
from corral.http.alias_api import AliasApi
from corral.http.app import RootApp
from corral.http.corral_api import CorralApi
from corral.http.event_config_api import EventConfigApi
from corral.http.function_url_api import FunctionUrlApi
from corral.http.lambda_api import LambdaApi
from corral.http.layer_api import LayerApi
from corral.http.logs_api import LogsApi
from corral.http.metrics_api import MetricsApi
from corral.http.provisioned_api import ProvisionedApi
from corral.http.resource_api import ResourceApi
from corral.http.server import HttpServer
from corral.http.service_model import ServiceModel
from corral.http.stream_api import InvokeStreamApi
from corral.http.triggers import HttpTriggers
from corral.invoke.async_queue import EventDispatcher
from corral.invoke.service import InvokeService
from corral.model.arn import Scope
from corral.model.validation import InputValidator
from corral.store.blobs import CodeStore
from corral.store.db import Database
from corral.store.event_configs import EventConfigStore
from corral.store.http_triggers import HttpTriggerStore  # declares its tables: before Database
from corral.store.metering import MeteringStore
from corral.store.opt_trees import OptTrees
from corral.store.queue import SqliteEventQueue
from corral.store.resources import ResourceStore  # declares its tables: before Database
from corral.telemetry.logs import FunctionLogs, LogLimits
from corral.telemetry.metering import Metering, PriceTable
from corral.telemetry.metrics import InvocationMetrics, StateCollector
from corral.telemetry.tracing import SpanExporter

log = logging.getLogger("corral")

SHUTDOWN_DRAIN_S = 30.0
_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Corral:
    """Every component of one server, wired together."""

    def __init__(self, settings: Settings, ready_url: str) -> None:
        self.settings = settings
        self.ready_url = ready_url
        # Absolute: runtimes run with their code directory as cwd and get paths under it.
        data = settings.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        self.scope = Scope(settings.region, settings.account)
        self.db = Database.sqlite(data / "corral.db")
        self.code = CodeStore(data / "code")
        self.logs = FunctionLogs(
            data / "logs",
            LogLimits(
                settings.log_group_max_bytes,
                settings.log_rate_bytes_per_s,
                settings.log_total_max_bytes,
            ),
        )
        self.runtimes = RuntimeCatalogue()
        self.sandbox = build_sandbox(settings.sandbox, data / "run", self.runtimes)
        self.layers = LayerService(
            self.db,
            self.code,
            OptTrees(data / "layers", self.code),
            self.scope,
            settings.code_storage_limit_bytes,
        )
        self.fleet = Fleet(
            FleetContext(
                self.sandbox, self.runtimes, self.logs, self.scope, opt_dir=self.layers.opt_dir
            ),
            settings.keep_alive_s,
        )
        self.functions = FunctionService(
            self.db,
            self.code,
            self.fleet,
            self.runtimes,
            self.scope,
            settings.code_storage_limit_bytes,
            layers=self.layers,
        )
        self.background = Supervisor()
        self.aliases = AliasService(self.db, self.functions, self.scope)
        self.resources = ResourceService(
            ResourceStore(self.db),
            self.functions,
            self.aliases,
            self.scope,
            settings.concurrency_limit,
            settings.code_storage_limit_bytes,
        )
        self.functions.on_function_delete.append(self.resources.forget)
        self.events = SqliteEventQueue(self.db)
        self.registry = CollectorRegistry()
        self.metrics = InvocationMetrics()
        self.functions.on_function_delete.append(self.metrics.forget)
        prices = PriceTable(settings.price_gb_second_usd, settings.price_million_requests_usd)
        self.metering = Metering(MeteringStore.sqlite(data / "metering.db"), prices)
        self.spans = (
            SpanExporter(settings.otlp_endpoint, self.scope) if settings.otlp_endpoint else None
        )
        observers = (self.metrics, self.metering) + ((self.spans,) if self.spans else ())
        self.invoker = InvokeService(
            self.functions,
            self.aliases,
            self.resources,
            self.fleet,
            self.scope,
            self.events,
            observers,
        )
        self.registry.register(self.metrics)
        self.registry.register(
            StateCollector(
                self.metrics,
                self.invoker.running_by_function,
                self.environment_states,
                self.events.stats_by_function,
                [state.value for state in State],
            )
        )
        self.event_configs = EventConfigService(EventConfigStore(self.db), self.aliases, self.scope)
        self.dispatcher = EventDispatcher(
            self.events,
            self.invoker,
            self.aliases,
            self.event_configs,
            self.scope,
            settings.async_retry_delays_s,
            self.background,
        )
        model = ServiceModel.load()
        lambda_api = LambdaApi(
            model, InputValidator(model.shapes), self.functions, self.invoker, self.scope
        )
        lambda_api.register(AliasApi(self.aliases, self.scope).handlers())
        lambda_api.register(EventConfigApi(self.event_configs, self.scope).handlers())
        self.provisioned = ProvisionedService(
            self.db, self.functions, self.aliases, self.fleet, self.scope
        )
        lambda_api.register(ProvisionedApi(self.provisioned, self.scope).handlers())
        lambda_api.register(ResourceApi(self.resources, self.scope).handlers())
        lambda_api.register(LayerApi(self.layers, self.scope).handlers())
        lambda_api.register_raw(
            InvokeStreamApi(self.invoker, lambda_api.validator, self.scope).handlers()
        )
        trigger_store = HttpTriggerStore(self.db)
        self.function_urls = FunctionUrlService(
            trigger_store, self.functions, self.aliases, self.scope, self.function_url
        )
        lambda_api.register(FunctionUrlApi(self.function_urls, self.scope).handlers())
        self.routes = RouteService(trigger_store, self.functions, self.scope, self.aliases)
        self.triggers = HttpTriggers(self.function_urls, self.routes, self.invoker, self.scope)
        self.app = RootApp(
            lambda_api,
            CorralApi(
                self.functions,
                self.fleet,
                self.logs,
                self.runtimes,
                self.queue_stats,
                self.metering,
            ),
            MetricsApi(self.registry),
            self.triggers,
            LogsApi(self.logs, self.scope),
        )

    def function_url(self, url_id: str) -> str:
        """A function URL's address: host-based, on this server's port (see http/triggers)."""
        port = urlsplit(self.ready_url).port or 80
        return f"http://{url_id}.lambda-url.{self.scope.region}.localhost:{port}/"

    def environment_states(self) -> list[tuple[str, str, str]]:
        return [(e.config.name, e.config.version, e.state.value) for e in self.fleet.environments()]

    def queue_stats(self) -> dict:
        stats = self.events.stats()
        return {
            "depth": stats.depth,
            "running": stats.running,
            "oldest_age_s": round(stats.oldest_age_s, 3),
        }

    async def startup(self) -> None:
        self.code.sweep_temporary()
        self.layers.prune_trees()
        stale = self.sandbox.cleanup_stale()
        if stale:
            log.warning("killed %d runtime(s) left behind by an earlier server", stale)
        self.provisioned.restore()
        released = self.events.release_leases()
        if released:
            log.warning("%d queued event(s) were running when the last server stopped", released)
        self.background.start(self.dispatcher.run(), "event dispatcher")
        self.background.start(
            self.logs.run_sweeper(self.settings.log_sweep_interval_s), "log retention"
        )
        retention_s = self.settings.metering_retention_days * 86_400
        self.background.start(self.metering.run_retention(retention_s), "metering retention")
        if self.spans:
            self.background.start(self.spans.run(), "OTLP span export")
        print(
            f"corral listening on {self.ready_url} "
            f"(data: {self.settings.data_dir}, sandbox: {self.sandbox.name})",
            flush=True,
        )

    async def shutdown(self) -> None:
        self.dispatcher.stop()
        self.metering.stop()
        if self.spans:
            self.spans.stop()
        await self.background.drain(SHUTDOWN_DRAIN_S)
        await self.dispatcher.close()
        await self.fleet.shutdown()
        self.sandbox.cleanup_stale()  # what is left of ended environments (cgroups, mounts)
        self.logs.close()
        self.metering.close()  # what is still pending is written before this returns
        self.db.close()
        log.info("corral stopped")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve(settings: Settings) -> int:
    """Run a server until SIGTERM/SIGINT. Returns the process exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    problem = settings.bind_problem()
    if problem:
        print(f"corral: {problem}", file=sys.stderr)
        return 2
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        print(f"corral: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    uvloop.run(_serve(settings, sock, f"http://{shown}:{port}"))
    return 0


async def _serve(settings: Settings, sock: socket.socket, url: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _HANDLED_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    corral = Corral(settings, url)
    server = HttpServer(corral.app)
    await server.start(sock)
    await corral.startup()
    await stop.wait()
    log.info("stopping: waiting for running requests")
    corral.logs.release_readers()  # log long-polls answer now instead of holding shutdown
    await server.shutdown()
    await corral.shutdown()
