"""Functions: create, read, update, delete; the source of truth the data plane reads.

Configurations are cached in memory after the first read, so the invoke path never touches
the database; every write goes to the database first, then replaces the cached entry and
retires the function's environments (running invocations finish on the old code).
Inputs arrive already checked against the service model by `corral.http`; this module
adds Lambda's semantic rules (InvalidParameterValueException) and the RevisionId
precondition.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy.exc import IntegrityError

from corral.control.code import ingest_zip, refuse_s3
from corral.control.layers import LayerService
from corral.fleet.pool import Fleet
from corral.fleet.runtimes import RuntimeCatalogue
from corral.model import limits
from corral.model.arn import LATEST, Scope
from corral.model.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from corral.model.function import (
    CUSTOM_RUNTIMES,
    DEPRECATED_RUNTIMES,
    FunctionConfig,
    lambda_timestamp,
    new_revision_id,
)
from corral.model.layers import FunctionLayer
from corral.model.tags import validate_tags
from corral.store.blobs import CodeArtifact, CodeStore
from corral.store.db import Database

RESERVED_ENVIRONMENT_KEYS = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

# Members of Create/UpdateFunction* that Corral cannot honour yet: refused, never ignored.
_UNSUPPORTED = {
    "VpcConfig": "VPC configuration",
    "FileSystemConfigs": "file systems (EFS)",
    "ImageConfig": "container images",
    "CodeSigningConfigArn": "code signing",
    "CapacityProviderConfig": "capacity providers",
    "DurableConfig": "durable functions",
    "TenancyConfig": "tenant isolation",
}


_FUNCTION_ARN = re.compile(r"arn:aws[a-zA-Z0-9-]*:lambda:[^:]+:\d{12}:function:[\w-]+(:[\w$-]+)?")

# What publishing compares: everything but identity, bookkeeping and the description.
_VOLATILE = frozenset({"version", "revision_id", "last_modified", "description"})


def _same_function(a: FunctionConfig, b: FunctionConfig) -> bool:
    ra, rb = a.to_record(), b.to_record()
    return all(ra[k] == rb[k] for k in ra if k not in _VOLATILE)


@dataclass(frozen=True, slots=True)
class FunctionPage:
    functions: list[FunctionConfig]
    next_marker: str | None


class FunctionService:
    def __init__(
        self,
        db: Database,
        code: CodeStore,
        fleet: Fleet,
        runtimes: RuntimeCatalogue,
        scope: Scope,
        code_storage_limit_bytes: int = limits.CODE_STORAGE_DEFAULT_BYTES,
        layers: LayerService | None = None,
    ) -> None:
        self.db = db
        self.layers = layers
        self.code_storage_limit_bytes = code_storage_limit_bytes
        self.code = code
        self.fleet = fleet
        self.runtimes = runtimes
        self.scope = scope
        self._cache: dict[str, FunctionConfig] = {}  # $LATEST by name
        self._versions: dict[tuple[str, str], FunctionConfig] = {}  # published, immutable
        # Other services' rules and clean-up: called with (name, version) before a version
        # is deleted (they may refuse by raising), and with (name) after a function is.
        self.on_version_delete: list[Callable[[str, str], None]] = []
        self.on_function_delete: list[Callable[[str], None]] = []
        self._locks: dict[str, asyncio.Lock] = {}

    # ---- reads ------------------------------------------------------------------

    def get(self, name: str) -> FunctionConfig:
        """The $LATEST configuration. Raises ResourceNotFoundException. Never waits."""
        config = self._cache.get(name)
        if config is None:
            record = self.db.get_function(name)
            if record is None:
                raise ResourceNotFoundException(
                    f"Function not found: {self.scope.function_arn(name)}"
                )
            config = self._cache[name] = FunctionConfig.from_record(record)
        return config

    def cached(self, name: str, qualifier: str | None = None) -> FunctionConfig | None:
        """The configuration if it is in memory; None says "ask `get_version`"."""
        if qualifier is None or qualifier == LATEST:
            return self._cache.get(name)
        return self._versions.get((name, qualifier))

    def get_version(self, name: str, qualifier: str | None) -> FunctionConfig:
        """The configuration a qualifier names: $LATEST (also for None) or a version number.

        Raises ResourceNotFoundException. Published versions never change, so they are
        cached until deleted.
        """
        config = self.get(name)
        if qualifier is None or qualifier == LATEST:
            return config
        version = self._versions.get((name, qualifier))
        if version is None:
            record = self.db.get_function(name, qualifier) if qualifier.isdigit() else None
            if record is None:
                raise ResourceNotFoundException(
                    f"Function not found: {self.scope.function_arn(name, qualifier)}"
                )
            version = self._versions[(name, qualifier)] = FunctionConfig.from_record(record)
        return version

    def list_versions(self, name: str, marker: str | None, max_items: int | None) -> FunctionPage:
        """$LATEST, then published versions in ascending order; the marker is a version."""
        latest = self.get(name)
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        page: list[FunctionConfig] = []
        after = 0
        if marker is None:
            page.append(latest)
        else:
            after = limits.version_marker(marker) or 0
        records = self.db.list_versions(name, after, limit + 1 - len(page))
        page += [FunctionConfig.from_record(r) for r in records]
        next_marker = None
        if len(page) > limit:
            page = page[:limit]
            next_marker = page[-1].version
        return FunctionPage(page, next_marker)

    def code_dir(self, config: FunctionConfig) -> Path:
        return self.code.unpacked_path(config.code_hexdigest)

    def tags(self, name: str) -> dict[str, str]:
        self.get(name)
        return self.db.get_tags(name)

    def list(self, marker: str | None, max_items: int | None) -> FunctionPage:
        """A page in name order; the marker is the last name of the previous page."""
        limit = min(max_items or limits.LIST_MAX_ITEMS, limits.LIST_MAX_ITEMS)
        records = self.db.list_functions(marker, limit + 1)
        page = [FunctionConfig.from_record(r) for r in records[:limit]]
        next_marker = page[-1].name if len(records) > limit else None
        return FunctionPage(page, next_marker)

    # ---- writes -----------------------------------------------------------------

    async def create(self, params: dict) -> FunctionConfig:
        name = params["FunctionName"]
        name = name.rsplit(":", 1)[-1] if ":" in name else name
        self._refuse_unsupported(params)
        if params.get("PackageType", "Zip") != "Zip":
            raise InvalidParameterValueException("Corral runs .zip file archives only.")
        runtime, handler = params.get("Runtime"), params.get("Handler")
        if not runtime or (not handler and runtime not in CUSTOM_RUNTIMES):
            raise InvalidParameterValueException(
                "Runtime and Handler are mandatory parameters for functions created with "
                "deployment packages."
            )
        self._check_runtime(runtime)
        environment = self._environment(params.get("Environment"))
        tags = params.get("Tags") or {}
        validate_tags(tags)
        if name in self._cache or self.db.get_function(name) is not None:
            raise ResourceConflictException(f"Function already exist: {name}")
        layers = self._resolve_layers(params.get("Layers") or [], ())
        artifact = await self._ingest(params.get("Code") or {})
        await self._prepare_layers(artifact.hexdigest, layers, discard_on_error=True)
        config = FunctionConfig(
            name=name,
            role=params["Role"],
            runtime=runtime,
            handler=handler or "",
            code_sha256=artifact.sha256,
            code_hexdigest=artifact.hexdigest,
            code_size=artifact.size_bytes,
            environment=environment,
            last_modified=lambda_timestamp(),
            revision_id=new_revision_id(),
            layers=layers,
            **self._optional_settings(params),
        )
        try:
            self.db.insert_function(config.to_record(), tags)
        except IntegrityError:
            raise ResourceConflictException(f"Function already exist: {name}") from None
        self._cache[name] = config
        if params.get("Publish"):
            return self._publish(name, None, None, None)
        return config

    async def update_code(self, name: str, params: dict) -> FunctionConfig:
        self._refuse_unsupported(params)
        async with self._lock(name):
            current = self.get(name)
            self._check_revision(current, params.get("RevisionId"))
            artifact = await self._ingest(params)
            await self._prepare_layers(artifact.hexdigest, current.layers, discard_on_error=True)
            changes: dict = {
                "code_sha256": artifact.sha256,
                "code_hexdigest": artifact.hexdigest,
                "code_size": artifact.size_bytes,
            }
            if params.get("Architectures"):
                changes["architectures"] = tuple(params["Architectures"])
            if params.get("DryRun"):
                return current.replace(**changes, revision_id=current.revision_id)
            updated = self._save(current, current.replace(**changes))
            if params.get("Publish"):
                return self._publish(name, None, None, None)
            return updated

    async def update_configuration(self, name: str, params: dict) -> FunctionConfig:
        self._refuse_unsupported(params)
        async with self._lock(name):
            current = self.get(name)
            self._check_revision(current, params.get("RevisionId"))
            changes = self._optional_settings(params)
            if "Role" in params:
                changes["role"] = params["Role"]
            if "Handler" in params:
                changes["handler"] = params["Handler"]
            if "Runtime" in params:
                self._check_runtime(params["Runtime"])
                changes["runtime"] = params["Runtime"]
            if "Environment" in params:
                changes["environment"] = self._environment(params["Environment"])
            if "Layers" in params:
                layers = self._resolve_layers(params["Layers"] or [], current.layers)
                await self._prepare_layers(current.code_hexdigest, layers)
                changes["layers"] = layers
            return self._save(current, current.replace(**changes))

    async def publish_version(
        self,
        name: str,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> FunctionConfig:
        """Snapshot $LATEST as the next version; if $LATEST has not changed since the last
        published version, that version is returned instead (Lambda's PublishVersion)."""
        async with self._lock(name):
            return self._publish(name, code_sha256, description, revision_id)

    def _publish(
        self,
        name: str,
        code_sha256: str | None,
        description: str | None,
        revision_id: str | None,
    ) -> FunctionConfig:
        latest = self.get(name)
        self._check_revision(latest, revision_id)
        if code_sha256 is not None and code_sha256 != latest.code_sha256:
            raise InvalidParameterValueException(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({latest.code_sha256}). Please try again."
            )
        previous = self.db.latest_published(name)
        if previous is not None and _same_function(FunctionConfig.from_record(previous), latest):
            return FunctionConfig.from_record(previous)
        number = str(self.db.next_version(name))
        version = latest.replace(version=number)
        if description is not None:
            version = dataclasses.replace(version, description=description)
        self.db.insert_version(version.to_record())
        self._versions[(name, number)] = version
        return version

    def delete(self, name: str, qualifier: str | None = None) -> None:
        config = self.get(name)
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if qualifier is not None:
            version = self.get_version(name, qualifier)
            for check in self.on_version_delete:
                check(name, qualifier)
            self.db.delete_version(name, qualifier)
            self._versions.pop((name, qualifier), None)
            self.fleet.retire(name, qualifier)
            self._discard_code_if_unused(version.code_hexdigest)
            self._discard_layers_if_unused(version.layers)
            return
        versions = [v for (n, _), v in self._versions.items() if n == name]
        layer_digests = self.db.layer_digests(name)
        self.db.delete_function(name)
        self._cache.pop(name, None)
        self._locks.pop(name, None)
        for v in versions:
            self._versions.pop((name, v.version), None)
        self.fleet.retire(name)
        for forget in self.on_function_delete:
            forget(name)
        self._discard_code_if_unused(config.code_hexdigest)
        if self.layers is not None and layer_digests:
            self.layers.discard_unused(sorted(layer_digests))

    # ---- helpers ----------------------------------------------------------------

    def _save(self, old: FunctionConfig, new: FunctionConfig) -> FunctionConfig:
        self.db.update_function(new.to_record())
        self._cache[new.name] = new
        self.fleet.retire(new.name, LATEST)
        if old.code_hexdigest != new.code_hexdigest:
            self._discard_code_if_unused(old.code_hexdigest)
        if old.layers != new.layers:
            self._discard_layers_if_unused(old.layers)
        return new

    def _discard_code_if_unused(self, hexdigest: str) -> None:
        if not self.db.code_in_use(hexdigest):
            with contextlib.suppress(OSError):
                self.code.discard(hexdigest)

    def _discard_layers_if_unused(self, layers: tuple[FunctionLayer, ...]) -> None:
        if layers and self.layers is not None:
            self.layers.discard_unused([layer.code_hexdigest for layer in layers])

    def _resolve_layers(
        self, arns: list[str], held: tuple[FunctionLayer, ...]
    ) -> tuple[FunctionLayer, ...]:
        if not arns:
            return ()
        if self.layers is None:
            raise InvalidParameterValueException("Corral does not support layers here.")
        return self.layers.resolve(arns, held)

    async def _prepare_layers(
        self, code_hexdigest: str, layers: tuple[FunctionLayer, ...], discard_on_error=False
    ) -> None:
        """The 250 MB quota of code and layers, and the merged /opt tree, before saving."""
        if not layers or self.layers is None:
            return
        try:
            await self.layers.prepare(code_hexdigest, layers)
        except BaseException:
            if discard_on_error:
                self._discard_code_if_unused(code_hexdigest)
            raise

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    @staticmethod
    def _check_revision(config: FunctionConfig, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != config.revision_id:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
            )

    def _check_runtime(self, runtime: str) -> None:
        if runtime in DEPRECATED_RUNTIMES:
            raise InvalidParameterValueException(
                f"The runtime parameter of {runtime} is no longer supported for creating or "
                "updating AWS Lambda functions. We recommend you use a supported runtime "
                "while creating or updating functions."
            )
        if not self.runtimes.available(runtime):
            reason = self.runtimes.why_unavailable(runtime)
            supported = ", ".join(
                sorted(r for r in self.runtimes.describe() if self.runtimes.available(r))
            )
            raise InvalidParameterValueException(
                f"The runtime parameter of {runtime} is not supported by this Corral host"
                + (f" ({reason})" if reason else "")
                + f". Supported runtimes: {supported}"
            )

    @staticmethod
    def _refuse_unsupported(params: dict) -> None:
        for member, what in _UNSUPPORTED.items():
            value = params.get(member)
            if value and value != {"SubnetIds": [], "SecurityGroupIds": []}:
                raise InvalidParameterValueException(f"Corral does not support {what} yet.")
        code = params.get("Code") or params
        refuse_s3(code, "Code", "ZipFile")
        if code.get("ImageUri"):
            raise InvalidParameterValueException("Corral runs .zip file archives only.")

    @staticmethod
    def _environment(environment: dict | None) -> dict[str, str]:
        variables = dict((environment or {}).get("Variables") or {})
        reserved = sorted(RESERVED_ENVIRONMENT_KEYS.intersection(variables))
        if reserved:
            raise InvalidParameterValueException(
                "Lambda was unable to configure your environment variables because the "
                "environment variables you have provided contains reserved keys that are "
                "currently not supported for modification. Reserved keys used in this "
                f"request: {', '.join(reserved)}"
            )
        measured = orjson.dumps(variables).decode()
        if len(measured.encode()) > limits.ENVIRONMENT_MAX_BYTES:
            raise InvalidParameterValueException(
                "Lambda was unable to configure your environment variables because the "
                "environment variables you have provided exceeded the 4KB limit. "
                f"String measured: {measured}"
            )
        return variables

    @staticmethod
    def _optional_settings(params: dict) -> dict:
        """FunctionConfig fields from the members both Create and UpdateConfiguration take."""
        settings: dict = {}
        simple = {"Description": "description", "Timeout": "timeout_s", "MemorySize": "memory_mb"}
        for member, field_name in simple.items():
            if member in params:
                settings[field_name] = params[member]
        if "EphemeralStorage" in params:
            settings["ephemeral_storage_mb"] = params["EphemeralStorage"]["Size"]
        if "Architectures" in params:
            settings["architectures"] = tuple(params["Architectures"])
        if "TracingConfig" in params:
            settings["tracing_mode"] = params["TracingConfig"].get("Mode") or "PassThrough"
        if "DeadLetterConfig" in params:
            target = params["DeadLetterConfig"].get("TargetArn") or None
            if target and not _FUNCTION_ARN.fullmatch(target):
                raise InvalidParameterValueException(
                    f"Corral delivers dead letters to functions only, not to {target}: "
                    "give a function ARN as DeadLetterConfig.TargetArn."
                )
            settings["dead_letter_target_arn"] = target
        if "KMSKeyArn" in params:
            settings["kms_key_arn"] = params["KMSKeyArn"] or None
        if "LoggingConfig" in params:
            logging_config = params["LoggingConfig"]
            settings["log_format"] = logging_config.get("LogFormat", "Text")
            settings["log_group"] = logging_config.get("LogGroup", "")
            settings["application_log_level"] = logging_config.get("ApplicationLogLevel")
            settings["system_log_level"] = logging_config.get("SystemLogLevel")
            levels = settings["application_log_level"] or settings["system_log_level"]
            if levels and settings["log_format"] != "JSON":
                # Lambda's wording (aws/aws-cdk#28045)
                raise InvalidParameterValueException(
                    'LogLevel is not supported when LogFormat is set to "Text". Remove '
                    'LogLevel from your request or change the LogFormat to "Json" and try again.'
                )
        snap_start = params.get("SnapStart") or {}
        if snap_start.get("ApplyOn", "None") != "None":
            raise InvalidParameterValueException("Corral does not support SnapStart yet.")
        return settings

    async def _ingest(self, code: dict) -> CodeArtifact:
        return await ingest_zip(
            code.get("ZipFile"), "function code", self.code, self.db, self.code_storage_limit_bytes
        )
