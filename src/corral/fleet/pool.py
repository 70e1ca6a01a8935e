"""Pools of environments, one per function revision, and the fleet that owns them.

A request takes the most recently used idle environment (warm caches) or starts a new one
(cold start). An update to a function makes a new revision: its old pool is retired, so
running invocations finish on the old code and no new ones go there. Idle environments
are stopped after the keep-alive by a single timer that fires at the next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from corral.background import Supervisor
from corral.fleet.environment import Environment, FleetContext
from corral.model.function import FunctionConfig


class Pool:
    """Environments of one (function, revision)."""

    def __init__(self, config: FunctionConfig, code_dir: Path, fleet: Fleet) -> None:
        self.config = config
        self.code_dir = code_dir
        self.fleet = fleet
        self.idle: list[Environment] = []  # ordered by idle_since, oldest first
        self.environments: set[Environment] = set()
        self.retired = False
        # Provisioned concurrency: how many environments to keep initialized, and why the
        # last attempt to start one failed, if it did.
        self.provisioned_target = 0
        self.provisioned: set[Environment] = set()
        self.provisioned_ready: set[Environment] = set()
        self.provision_error: str | None = None

    def take_idle(self) -> Environment | None:
        """The most recently used idle environment, if there is one. Never waits."""
        while self.idle:
            env = self.idle.pop()
            if env.alive:
                return env
        return None

    async def acquire(self) -> Environment:
        """An environment for one invocation: warm if one is idle, else a new one.

        Raises OSError if a new runtime cannot be started.
        """
        env = self.take_idle()
        if env is not None:
            return env
        env = self._new_environment("on-demand")
        await env.start()
        return env

    def _new_environment(self, initialization_type: str) -> Environment:
        env = Environment(
            uuid.uuid4().hex,
            self.config,
            self.code_dir,
            self.fleet.ctx,
            self._gone,
            initialization_type,
        )
        self.environments.add(env)
        return env

    def provision(self, target: int) -> None:
        """Keep `target` environments initialized ahead of invocations (never reaped);
        missing ones start in the background, surplus ones become ordinary."""
        self.provisioned_target = target
        self.provision_error = None
        surplus = len(self.provisioned) - target
        for env in list(self.provisioned)[: max(surplus, 0)]:
            env.provisioned = False
            self.provisioned.discard(env)
            self.provisioned_ready.discard(env)
        for _ in range(target - len(self.provisioned)):
            self._start_provisioned()

    def _start_provisioned(self) -> None:
        env = self._new_environment("provisioned-concurrency")
        self.provisioned.add(env)
        self.fleet.background.start(self._initialize(env), f"provision {env.id}")

    async def _initialize(self, env: Environment) -> None:
        try:
            await env.start()
        except OSError as exc:
            self.provision_error = f"Runtime failed to start: {exc}"
            self.provisioned.discard(env)
            return
        if await env.wait_ready() and env.provisioned:
            self.provisioned_ready.add(env)
            self.release(env)
        elif not env.alive and env.provisioned:
            self.provision_error = "FUNCTION_ERROR_INIT_FAILURE: the runtime failed to initialize"

    @property
    def provisioned_available(self) -> int:
        return len(self.provisioned_ready)

    def release(self, env: Environment) -> None:
        if self.retired or not env.alive:
            env.stop()
            return
        env.idle_since = time.monotonic()
        self.idle.append(env)
        self.fleet.schedule_reap()

    def _gone(self, env: Environment) -> None:
        self.environments.discard(env)
        with contextlib.suppress(ValueError):
            self.idle.remove(env)
        if env in self.provisioned:
            self.provisioned.discard(env)
            was_ready = env in self.provisioned_ready
            self.provisioned_ready.discard(env)
            # Replace an initialized one that ended (a timeout, a crash); not one that
            # never came up, which would only fail again.
            if was_ready and not self.retired and len(self.provisioned) < self.provisioned_target:
                self._start_provisioned()

    def retire(self) -> None:
        """Stop idle environments now and busy ones when they are released."""
        self.retired = True
        for env in list(self.idle):
            env.stop()
        self.idle.clear()

    def reap(self, cutoff: float) -> None:
        expired = [e for e in self.idle if e.idle_since <= cutoff and not e.provisioned]
        for env in expired:
            env.stop()


class Fleet:
    """All pools. The invoke service asks it for a pool; the control plane retires them."""

    def __init__(self, ctx: FleetContext, keep_alive_s: float) -> None:
        self.ctx = ctx
        self.keep_alive_s = keep_alive_s
        self.pools: dict[tuple[str, str], Pool] = {}  # by (function name, version)
        self.background = Supervisor()  # provisioned environments starting
        self._retired: set[Pool] = set()
        self._reap_handle: asyncio.TimerHandle | None = None

    def pool_for(self, config: FunctionConfig, code_dir: Callable[[FunctionConfig], Path]) -> Pool:
        """The pool of `config`'s revision, created (and the old one retired) on first use;
        `code_dir` is asked only then."""
        key = (config.name, config.version)
        pool = self.pools.get(key)
        if pool is None or pool.config.revision_id != config.revision_id:
            if pool is not None:
                self._retire(pool)
            pool = self.pools[key] = Pool(config, code_dir(config), self)
        return pool

    def retire(self, function_name: str, version: str | None = None) -> None:
        """Drain the environments of one version, or of all versions of the function
        (after an update or a delete); running invocations finish first."""
        keys = [k for k in self.pools if k[0] == function_name and version in (None, k[1])]
        for key in keys:
            self._retire(self.pools.pop(key))

    def _retire(self, pool: Pool) -> None:
        pool.retire()
        if pool.environments:
            self._retired.add(pool)

    def schedule_reap(self) -> None:
        if self._reap_handle is not None:
            return
        oldest = (next((e for e in p.idle if not e.provisioned), None) for p in self.pools.values())
        deadlines = [env.idle_since for env in oldest if env is not None]
        if deadlines:
            delay = min(deadlines) + self.keep_alive_s - time.monotonic()
            loop = asyncio.get_running_loop()
            self._reap_handle = loop.call_later(max(0.0, delay), self._reap)

    def _reap(self) -> None:
        self._reap_handle = None
        cutoff = time.monotonic() - self.keep_alive_s
        for pool in self.pools.values():
            pool.reap(cutoff)
        self._retired = {p for p in self._retired if p.environments}
        self.schedule_reap()

    def environments(self) -> list[Environment]:
        pools = [*self.pools.values(), *self._retired]
        return [env for pool in pools for env in pool.environments]

    async def shutdown(self, timeout_s: float = 10) -> None:
        """Stop every environment and wait (bounded) until their processes are reaped."""
        await self.background.drain(0)
        if self._reap_handle:
            self._reap_handle.cancel()
            self._reap_handle = None
        envs = self.environments()
        for env in envs:
            env.stop()
        if envs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(env.wait_stopped() for env in envs)), timeout_s
                )
