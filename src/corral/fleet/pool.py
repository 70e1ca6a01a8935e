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

from corral.fleet.environment import Environment, FleetContext, State
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
        env = Environment(uuid.uuid4().hex, self.config, self.code_dir, self.fleet.ctx, self._gone)
        self.environments.add(env)
        await env.start()
        return env

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

    def retire(self) -> None:
        """Stop idle environments now and busy ones when they are released."""
        self.retired = True
        for env in list(self.idle):
            env.stop()
        self.idle.clear()

    def reap(self, cutoff: float) -> None:
        while self.idle and self.idle[0].idle_since <= cutoff:
            self.idle.pop(0).stop()

    def counts(self) -> dict[str, int]:
        by_state = {state.value: 0 for state in State}
        for env in self.environments:
            by_state[env.state.value] += 1
        return by_state


class Fleet:
    """All pools. The invoke service asks it for a pool; the control plane retires them."""

    def __init__(self, ctx: FleetContext, keep_alive_s: float) -> None:
        self.ctx = ctx
        self.keep_alive_s = keep_alive_s
        self.pools: dict[tuple[str, str], Pool] = {}  # by (function name, version)
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
        deadlines = [p.idle[0].idle_since for p in self.pools.values() if p.idle]
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
