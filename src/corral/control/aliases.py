"""Aliases of functions, and the resolution of any qualifier to the version that runs.

Aliases are cached in memory after the first read, like function configurations, so that
invoking `name:alias` costs a dict lookup and, for a weighted alias, one random draw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from corral.control.functions import FunctionService
from corral.model import limits
from corral.model.alias import Alias, check_routing
from corral.model.arn import LATEST, Scope
from corral.model.errors import (
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from corral.model.function import FunctionConfig
from corral.store.db import Database


@dataclass(frozen=True, slots=True)
class AliasPage:
    aliases: list[Alias]
    next_marker: str | None


def is_alias(qualifier: str | None) -> bool:
    return qualifier is not None and qualifier != LATEST and not qualifier.isdigit()


class AliasService:
    def __init__(self, db: Database, functions: FunctionService, scope: Scope) -> None:
        self.db = db
        self.functions = functions
        self.scope = scope
        self._cache: dict[tuple[str, str], Alias] = {}
        self._random = random.Random()
        functions.on_version_delete.append(self._check_version_unused)
        functions.on_function_delete.append(self._forget)

    # ---- resolution (invoke path) -------------------------------------------------

    def resolve(self, name: str, qualifier: str | None) -> FunctionConfig:
        """The configuration an invocation of `name:qualifier` runs: $LATEST, a version,
        or an alias's version (drawn by its weights). Raises ResourceNotFoundException."""
        if not is_alias(qualifier):
            return self.functions.get_version(name, qualifier)
        alias = self.get(name, qualifier)
        return self.functions.get_version(name, alias.pick_version(self._random.random()))

    def primary(self, name: str, qualifier: str | None) -> FunctionConfig:
        """The configuration a qualifier names for reading (GetFunction): an alias gives
        its primary version, whatever its weights."""
        if not is_alias(qualifier):
            return self.functions.get_version(name, qualifier)
        return self.functions.get_version(name, self.get(name, qualifier).function_version)

    def resolve_cached(self, name: str, qualifier: str | None) -> FunctionConfig | None:
        """As `resolve`, from memory only; None means "call resolve". Never waits."""
        if not is_alias(qualifier):
            return self.functions.cached(name, qualifier)
        alias = self._cache.get((name, qualifier))
        if alias is None:
            return None
        return self.functions.cached(name, alias.pick_version(self._random.random()))

    # ---- CRUD ---------------------------------------------------------------------

    def get(self, name: str, alias_name: str) -> Alias:
        self.functions.get(name)
        alias = self._cache.get((name, alias_name))
        if alias is None:
            record = self.db.get_alias(name, alias_name)
            if record is None:
                raise ResourceNotFoundException(
                    f"Alias not found: {self.scope.function_arn(name, alias_name)}"
                )
            alias = self._cache[(name, alias_name)] = Alias.from_record(record)
        return alias

    def create(
        self,
        name: str,
        alias_name: str,
        function_version: str,
        description: str = "",
        weights: dict[str, float] | None = None,
    ) -> Alias:
        self._check_target(name, function_version, weights or {})
        if self.db.get_alias(name, alias_name) is not None:
            raise ResourceConflictException(
                f"Alias already exists: {self.scope.function_arn(name, alias_name)}"
            )
        alias = Alias(name, alias_name, function_version, description, weights or {})
        alias = alias.replace()
        self.db.put_alias(alias.to_record(), create=True)
        self._cache[(name, alias_name)] = alias
        return alias

    def update(self, name: str, alias_name: str, params: dict) -> Alias:
        alias = self.get(name, alias_name)
        revision = params.get("RevisionId")
        if revision is not None and revision != alias.revision_id:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        version = params.get("FunctionVersion", alias.function_version)
        weights = alias.weights
        if "RoutingConfig" in params:
            weights = (params["RoutingConfig"] or {}).get("AdditionalVersionWeights") or {}
        self._check_target(name, version, weights)
        updated = alias.replace(
            function_version=version,
            description=params.get("Description", alias.description),
            weights=dict(weights),
        )
        self.db.put_alias(updated.to_record(), create=False)
        self._cache[(name, alias_name)] = updated
        return updated

    def delete(self, name: str, alias_name: str) -> None:
        self.get(name, alias_name)
        self.db.delete_alias(name, alias_name)
        self._cache.pop((name, alias_name), None)

    def list(
        self, name: str, version: str | None, marker: str | None, max_items: int | None
    ) -> AliasPage:
        self.functions.get(name)
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        found: list[Alias] = []
        after = marker
        while len(found) <= limit:
            batch = [Alias.from_record(r) for r in self.db.list_aliases(name, after, limit + 1)]
            if not batch:
                break
            found += [a for a in batch if version is None or a.function_version == version]
            after = batch[-1].name
        page = found[:limit]
        return AliasPage(page, page[-1].name if len(found) > limit else None)

    # ---- rules ----------------------------------------------------------------------

    def _check_target(self, name: str, version: str, weights: dict[str, float]) -> None:
        check_routing(version, weights)
        for target in (version, *weights):
            self.functions.get_version(name, target)  # ResourceNotFoundException if absent

    def _check_version_unused(self, name: str, version: str) -> None:
        users = [
            a.name
            for a in (Alias.from_record(r) for r in self.db.list_aliases(name, None, 10_000))
            if version == a.function_version or version in a.weights
        ]
        if users:
            raise ResourceConflictException(
                "Unable to delete version because the following aliases reference it: "
                f"[{', '.join(users)}]"
            )

    def _forget(self, name: str) -> None:
        for key in [k for k in self._cache if k[0] == name]:
            del self._cache[key]
