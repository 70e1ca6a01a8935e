"""A function's configuration: Lambda's FunctionConfiguration, its defaults and its wire shape.

Field names follow Lambda's JSON in snake_case; `to_wire` renders the botocore
FunctionConfiguration shape (service-2.json) that GetFunctionConfiguration returns.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from corral.model import limits
from corral.model.arn import LATEST, Scope
from corral.model.layers import FunctionLayer

PYTHON_RUNTIMES = ("python3.11", "python3.12", "python3.13")
CUSTOM_RUNTIMES = ("provided", "provided.al2", "provided.al2023")
NODE_RUNTIMES = ("nodejs20.x", "nodejs22.x", "nodejs24.x")
JAVA_RUNTIMES = ("java8.al2", "java11", "java17", "java21", "java25")
DOTNET_RUNTIMES = ("dotnet8", "dotnet10")
# Runtimes in the botocore enum that Lambda has closed to creating and updating functions
# (Lambda runtimes, "Runtime deprecation policy").
DEPRECATED_RUNTIMES = frozenset(
    {
        "nodejs", "nodejs4.3", "nodejs4.3-edge", "nodejs6.10", "nodejs8.10", "nodejs10.x",
        "nodejs12.x", "nodejs14.x", "nodejs16.x", "nodejs18.x", "java8", "python2.7", "python3.6",
        "python3.7", "python3.8", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1",
        "dotnetcore3.1", "dotnet6", "go1.x", "ruby2.5", "ruby2.7",
    }
)  # fmt: skip


def lambda_timestamp(now: datetime | None = None) -> str:
    """Lambda's LastModified format: `2026-01-01T00:00:00.000+0000`."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def new_revision_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """One version's configuration (for now always $LATEST). Immutable: updates replace it."""

    name: str
    role: str
    runtime: str
    handler: str
    code_sha256: str
    code_hexdigest: str
    code_size: int
    description: str = ""
    timeout_s: int = limits.TIMEOUT_DEFAULT_S
    memory_mb: int = limits.MEMORY_DEFAULT_MB
    ephemeral_storage_mb: int = limits.EPHEMERAL_STORAGE_DEFAULT_MB
    environment: dict[str, str] = field(default_factory=dict)
    architectures: tuple[str, ...] = ("x86_64",)
    tracing_mode: str = "PassThrough"
    log_format: str = "Text"
    log_group: str = ""
    application_log_level: str | None = None
    system_log_level: str | None = None
    layers: tuple[FunctionLayer, ...] = ()
    dead_letter_target_arn: str | None = None
    kms_key_arn: str | None = None
    version: str = LATEST
    last_modified: str = ""
    revision_id: str = ""
    state: str = "Active"
    state_reason: str | None = None
    state_reason_code: str | None = None
    last_update_status: str = "Successful"

    def replace(self, **changes: object) -> FunctionConfig:
        """A copy with `changes`, a fresh RevisionId and LastModified (every update)."""
        changes.setdefault("revision_id", new_revision_id())
        changes.setdefault("last_modified", lambda_timestamp())
        return dataclasses.replace(self, **changes)

    @property
    def effective_log_group(self) -> str:
        return self.log_group or f"/aws/lambda/{self.name}"

    def to_record(self) -> dict:
        """Plain data for the store; `from_record` is its inverse."""
        record = dataclasses.asdict(self)
        record["architectures"] = list(self.architectures)
        record["layers"] = [dataclasses.asdict(layer) for layer in self.layers]
        return record

    @classmethod
    def from_record(cls, record: dict) -> FunctionConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        values["architectures"] = tuple(values.get("architectures", ("x86_64",)))
        values["layers"] = tuple(map(FunctionLayer.from_record, values.get("layers", ())))
        return cls(**values)

    def to_wire(self, scope: Scope) -> dict:
        """Lambda's FunctionConfiguration JSON."""
        wire: dict = {
            "FunctionName": self.name,
            "FunctionArn": scope.function_arn(
                self.name, None if self.version == LATEST else self.version
            ),
            "Runtime": self.runtime,
            "Role": self.role,
            "Handler": self.handler,
            "CodeSize": self.code_size,
            "Description": self.description,
            "Timeout": self.timeout_s,
            "MemorySize": self.memory_mb,
            "LastModified": self.last_modified,
            "CodeSha256": self.code_sha256,
            "Version": self.version,
            "TracingConfig": {"Mode": self.tracing_mode},
            "RevisionId": self.revision_id,
            "Layers": [layer.to_wire() for layer in self.layers],
            "State": self.state,
            "LastUpdateStatus": self.last_update_status,
            "PackageType": "Zip",
            "Architectures": list(self.architectures),
            "EphemeralStorage": {"Size": self.ephemeral_storage_mb},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "RuntimeVersionConfig": {
                "RuntimeVersionArn": f"arn:aws:lambda:{scope.region}::runtime:corral-{self.runtime}"
            },
            "LoggingConfig": self._logging_config(),
        }
        if self.environment:
            wire["Environment"] = {"Variables": dict(self.environment)}
        if self.state_reason:
            wire["StateReason"] = self.state_reason
            wire["StateReasonCode"] = self.state_reason_code
        if self.dead_letter_target_arn:
            wire["DeadLetterConfig"] = {"TargetArn": self.dead_letter_target_arn}
        if self.kms_key_arn:
            wire["KMSKeyArn"] = self.kms_key_arn
        if not self.layers:
            del wire["Layers"]
        return wire

    def _logging_config(self) -> dict:
        config = {"LogFormat": self.log_format, "LogGroup": self.effective_log_group}
        if self.log_format == "JSON":
            config["ApplicationLogLevel"] = self.application_log_level or "INFO"
            config["SystemLogLevel"] = self.system_log_level or "INFO"
        return config
