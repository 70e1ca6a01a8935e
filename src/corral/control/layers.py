"""Lambda layers: publish, read, list and delete layer versions, their resource-based
policies, and what functions need of them (resolving Layers ARNs, the merged /opt tree).

Layer packages go through the same hostile-safe code store as function code, keyed by their
SHA-256, so a package shared by a layer and a function is stored once. A package stays while
a layer version or any function version's copy of a layer uses it: deleting a layer version
does not break the functions that already reference it (Lambda keeps their copy).
Policies are stored and rendered as Lambda does, not enforced (no authentication yet).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from corral.control.code import ingest_zip, refuse_s3
from corral.model import limits
from corral.model.arn import Scope
from corral.model.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from corral.model.function import lambda_timestamp, new_revision_id
from corral.model.layers import (
    FunctionLayer,
    LayerPolicy,
    LayerVersion,
    check_function_layers,
    check_unzipped_total,
    layer_version_arn,
    parse_layer_version_arn,
    tree_key,
)
from corral.store.blobs import CodeStore
from corral.store.db import Database
from corral.store.layers import LayerStore
from corral.store.opt_trees import OptTrees

NOT_EXIST = "The resource you requested does not exist."
_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetLayerPolicy API to retrieve the latest Revision Id"
)


@dataclass(frozen=True, slots=True)
class LayerPage:
    items: list[LayerVersion]
    next_marker: str | None


class LayerService:
    def __init__(
        self,
        db: Database,
        code: CodeStore,
        trees: OptTrees,
        scope: Scope,
        code_storage_limit_bytes: int = limits.CODE_STORAGE_DEFAULT_BYTES,
    ) -> None:
        self.db = db
        self.store = LayerStore(db)
        self.code = code
        self.trees = trees
        self.scope = scope
        self.code_storage_limit_bytes = code_storage_limit_bytes

    # ---- layer versions -----------------------------------------------------------

    async def publish(self, name: str, params: dict) -> LayerVersion:
        """PublishLayerVersion: store the zip (validated and unpacked like function code)
        as the layer's next version. Raises InvalidParameterValueException (no ZipFile, an
        unsafe or oversized zip), InvalidRequestContentException (bad base64),
        RequestTooLargeException, CodeStorageExceededException."""
        content = params.get("Content") or {}
        refuse_s3(content, "Content", "Content.ZipFile")
        artifact = await ingest_zip(
            content.get("ZipFile"),
            "layer content",
            self.code,
            self.db,
            self.code_storage_limit_bytes,
        )
        loop = asyncio.get_running_loop()
        unzipped = await loop.run_in_executor(None, self.code.unpacked_size, artifact.hexdigest)
        version = LayerVersion(
            name=name,
            version=self.store.next_version(name),
            code_sha256=artifact.sha256,
            code_hexdigest=artifact.hexdigest,
            code_size=artifact.size_bytes,
            unzipped_size=unzipped,
            created_date=lambda_timestamp(),
            description=params.get("Description") or "",
            license_info=params.get("LicenseInfo"),
            compatible_runtimes=tuple(params.get("CompatibleRuntimes") or ()),
            compatible_architectures=tuple(params.get("CompatibleArchitectures") or ()),
        )
        self.store.insert_version(version)
        return version

    def get(self, name: str, version: int) -> LayerVersion:
        """GetLayerVersion. Raises ResourceNotFoundException, InvalidParameterValueException."""
        _check_version_number(version)
        found = self.store.get_version(name, version)
        if found is None:
            raise ResourceNotFoundException(NOT_EXIST)
        return found

    def get_by_arn(self, arn: str) -> LayerVersion:
        parsed = parse_layer_version_arn(arn)
        if parsed is None:
            raise ResourceNotFoundException(NOT_EXIST)
        region, account, name, version = parsed
        if (region, account) != (self.scope.region, self.scope.account):
            raise ResourceNotFoundException(NOT_EXIST)
        return self.get(name, version)

    def delete(self, name: str, version: int) -> None:
        """DeleteLayerVersion: idempotent (an unknown version is not an error). Functions
        that reference it keep their copy; the package goes once nothing uses it."""
        _check_version_number(version)
        found = self.store.get_version(name, version)
        if found is None:
            return
        self.store.delete_version(name, version)
        self.discard_unused([found.code_hexdigest])

    def list_layers(
        self,
        runtime: str | None,
        architecture: str | None,
        marker: str | None,
        max_items: int | None,
    ) -> LayerPage:
        """ListLayers: each layer with its latest version matching the filters (layers
        without one are left out), by name; the marker is the last name of a page."""
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        latest: list[LayerVersion] = []
        for version in self.store.all_versions(after_name=marker):
            if latest and latest[-1].name == version.name:
                continue  # this layer already has its latest matching version
            if version.matches(runtime, architecture):
                latest.append(version)
                if len(latest) > limit:
                    break
        if len(latest) > limit:
            return LayerPage(latest[:limit], latest[limit - 1].name)
        return LayerPage(latest, None)

    def list_versions(
        self,
        name: str,
        runtime: str | None,
        architecture: str | None,
        marker: str | None,
        max_items: int | None,
    ) -> LayerPage:
        """ListLayerVersions: newest first; the marker is the last version of a page. An
        unknown layer has no versions (not an error, as in Lambda)."""
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        below = limits.version_marker(marker)
        page: list[LayerVersion] = []
        for version in self.store.versions(name, below):
            if version.matches(runtime, architecture):
                page.append(version)
                if len(page) > limit:
                    return LayerPage(page[:limit], str(page[limit - 1].version))
        return LayerPage(page, None)

    # ---- layer version policies ------------------------------------------------------

    def add_permission(
        self,
        name: str,
        version: int,
        statement_id: str,
        action: str,
        principal: str,
        organization_id: str | None = None,
        revision_id: str | None = None,
    ) -> tuple[dict, str]:
        """AddLayerVersionPermission: the new statement and the policy's RevisionId."""
        self._existing(name, version)
        policy = self.store.get_policy(name, version)
        if revision_id is not None and (policy is None or revision_id != policy.revision_id):
            raise PreconditionFailedException(_REVISION_MISMATCH)
        statements = policy.statements if policy else []
        if any(s["Sid"] == statement_id for s in statements):
            raise ResourceConflictException(
                f"The statement id ({statement_id}) provided already exists. Please provide "
                "a new statement id, or remove the existing statement."
            )
        statement = _statement(
            statement_id,
            action,
            principal,
            organization_id,
            layer_version_arn(self.scope, name, version),
        )
        updated = LayerPolicy(new_revision_id(), [*statements, statement])
        self.store.put_policy(name, version, updated)
        return statement, updated.revision_id

    def get_policy(self, name: str, version: int) -> LayerPolicy:
        self._existing(name, version)
        policy = self.store.get_policy(name, version)
        if policy is None or not policy.statements:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        return policy

    def remove_permission(
        self, name: str, version: int, statement_id: str, revision_id: str | None = None
    ) -> None:
        self._existing(name, version)
        policy = self.store.get_policy(name, version)
        if policy is None or not policy.statements:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        if revision_id is not None and revision_id != policy.revision_id:
            raise PreconditionFailedException(_REVISION_MISMATCH)
        remaining = [s for s in policy.statements if s["Sid"] != statement_id]
        if len(remaining) == len(policy.statements):
            raise ResourceNotFoundException(
                f"Statement {statement_id} is not found in resource policy."
            )
        self.store.put_policy(name, version, LayerPolicy(new_revision_id(), remaining))

    def _existing(self, name: str, version: int) -> LayerVersion:
        _check_version_number(version)
        found = self.store.get_version(name, version)
        if found is None:
            arn = layer_version_arn(self.scope, name, version)
            raise ResourceNotFoundException(f"Layer version {arn} does not exist.")
        return found

    # ---- what functions need ---------------------------------------------------------

    def resolve(
        self, arns: list[str], held: tuple[FunctionLayer, ...] = ()
    ) -> tuple[FunctionLayer, ...]:
        """A function's Layers as it will hold them, in order. Each must exist, except one
        the function already holds (its copy outlives a deleted layer version). Raises
        InvalidParameterValueException with Lambda's messages."""
        refs = check_function_layers(arns, self.scope)
        kept = {layer.arn: layer for layer in held if layer.code_hexdigest}
        resolved = []
        for arn, (name, number) in zip(arns, refs, strict=True):
            if arn in kept:
                resolved.append(kept[arn])
                continue
            version = self.store.get_version(name, number)
            if version is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            resolved.append(version.attachment(self.scope))
        return tuple(resolved)

    async def prepare(self, code_hexdigest: str, layers: tuple[FunctionLayer, ...]) -> None:
        """Check the 250 MB quota on code plus layers, and build the merged /opt tree now
        (so a bad combination is refused here, and no cold start pays for it). Raises
        InvalidParameterValueException."""
        if not layers:
            return
        loop = asyncio.get_running_loop()
        code_bytes = await loop.run_in_executor(None, self.code.unpacked_size, code_hexdigest)
        check_unzipped_total(code_bytes, layers)
        await loop.run_in_executor(None, self.trees.build, layers)

    async def opt_dir(self, layers: tuple[FunctionLayer, ...]) -> Path:
        """The host directory holding these layers merged (empty for none); built on the
        rare path where it is missing (removed by hand, or pruned)."""
        path = self.trees.path(layers)
        if path.is_dir():
            return path
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.trees.build, layers)

    def discard_unused(self, hexdigests: list[str]) -> None:
        for hexdigest in hexdigests:
            if hexdigest and not self.db.code_in_use(hexdigest):
                with contextlib.suppress(OSError):
                    self.code.discard(hexdigest)

    def prune_trees(self) -> int:
        """At start-up: drop merged trees no function version uses any more."""
        keep = {
            tree_key(FunctionLayer.from_record(r) for r in layers)
            for layers in self.db.layer_sets_in_use()
        }
        return self.trees.prune(keep)


def _check_version_number(version: int) -> None:
    if version < 1:
        raise InvalidParameterValueException("Layer Version Cannot be less than 1")


def _statement(
    statement_id: str, action: str, principal: str, organization_id: str | None, resource: str
) -> dict:
    """One statement as Lambda writes it (botocore's AddLayerVersionPermission example):
    an account id becomes its root ARN; an organization is a condition."""
    statement: dict = {
        "Sid": statement_id,
        "Effect": "Allow",
        "Principal": principal if principal == "*" else {"AWS": _account_root(principal)},
        "Action": action,
        "Resource": resource,
    }
    if organization_id:
        statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization_id}}
    return statement


def _account_root(principal: str) -> str:
    return principal if principal.startswith("arn:") else f"arn:aws:iam::{principal}:root"
