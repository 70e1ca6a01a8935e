"""Provisioned concurrency: environments initialized ahead of time for a version or alias.

The configuration is stored per qualifier; the fleet keeps that many environments of the
version initialized (AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency), never reaps
them, and replaces one that ends. Status goes IN_PROGRESS -> READY as they come up.
Lambda developer guide, "Configuring provisioned concurrency"; botocore shapes
PutProvisionedConcurrencyConfig ... ListProvisionedConcurrencyConfigs.
"""

from __future__ import annotations

from corral.control.aliases import AliasService, is_alias
from corral.control.functions import FunctionService
from corral.fleet.pool import Fleet
from corral.model import limits
from corral.model.arn import LATEST, Scope
from corral.model.errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceConflictException,
)
from corral.model.function import FunctionConfig, lambda_timestamp
from corral.store.db import Database


class ProvisionedService:
    def __init__(
        self,
        db: Database,
        functions: FunctionService,
        aliases: AliasService,
        fleet: Fleet,
        scope: Scope,
    ) -> None:
        self.db = db
        self.functions = functions
        self.aliases = aliases
        self.fleet = fleet
        self.scope = scope
        functions.on_version_delete.append(self._forget_version)
        functions.on_function_delete.append(self.db.delete_provisioned)

    def put(self, name: str, qualifier: str, requested: int) -> dict:
        config = self._target(name, qualifier)
        for other, other_qualifier in self._configs_of_version(name, config.version):
            if other_qualifier != qualifier:
                raise ResourceConflictException(
                    f"Provisioned Concurrency Config already exists for version "
                    f"{config.version} through {self.scope.function_arn(other, other_qualifier)}"
                )
        stamp = lambda_timestamp()
        self.db.put_provisioned(name, qualifier, requested, stamp)
        self.fleet.pool_for(config, self.functions.code_dir).provision(requested)
        return self._wire(config, requested, stamp)

    def get(self, name: str, qualifier: str) -> dict:
        config = self._target(name, qualifier)
        for _, q, requested, stamp in self.db.list_provisioned(name):
            if q == qualifier:
                return self._wire(config, requested, stamp)
        raise ProvisionedConcurrencyConfigNotFoundException(
            "No Provisioned Concurrency Config found for this function"
        )

    def delete(self, name: str, qualifier: str) -> None:
        config = self._target(name, qualifier)
        self.get(name, qualifier)
        self.db.delete_provisioned(name, qualifier)
        self.fleet.pool_for(config, self.functions.code_dir).provision(0)

    def list(self, name: str, marker: str | None, max_items: int | None) -> tuple[list, str | None]:
        self.functions.get(name)
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        rows = [r for r in self.db.list_provisioned(name) if marker is None or r[1] > marker]
        items = []
        for _, qualifier, requested, stamp in rows[:limit]:
            config = self._target(name, qualifier)
            item = self._wire(config, requested, stamp)
            item["FunctionArn"] = self.scope.function_arn(name, qualifier)
            items.append(item)
        next_marker = rows[limit - 1][1] if len(rows) > limit else None
        return items, next_marker

    def restore(self) -> None:
        """At start-up: bring every stored configuration's environments up again."""
        for name, qualifier, requested, _ in self.db.list_provisioned():
            config = self.aliases.primary(name, qualifier)
            self.fleet.pool_for(config, self.functions.code_dir).provision(requested)

    # ---- helpers --------------------------------------------------------------------

    def _target(self, name: str, qualifier: str) -> FunctionConfig:
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        if is_alias(qualifier) and self.aliases.get(name, qualifier).weights:
            raise ResourceConflictException(
                "Alias with weights can not be used with Provisioned Concurrency"
            )
        return self.aliases.primary(name, qualifier)

    def _configs_of_version(self, name: str, version: str) -> list[tuple[str, str]]:
        found = []
        for function_name, qualifier, _, _ in self.db.list_provisioned(name):
            if self.aliases.primary(function_name, qualifier).version == version:
                found.append((function_name, qualifier))
        return found

    def _forget_version(self, name: str, version: str) -> None:
        self.db.delete_provisioned(name, version)

    def _wire(self, config: FunctionConfig, requested: int, stamp: str) -> dict:
        pool = self.fleet.pools.get((config.name, config.version))
        available = pool.provisioned_available if pool else 0
        error = pool.provision_error if pool else None
        status = "FAILED" if error else ("READY" if available >= requested else "IN_PROGRESS")
        wire = {
            "RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": min(available, requested),
            "AllocatedProvisionedConcurrentExecutions": min(available, requested),
            "Status": status,
            "LastModified": stamp,
        }
        if error:
            wire["StatusReason"] = error
        return wire
