"""Lambda layers: ARNs, a layer version's wire shapes, the rules for a function's Layers,
and where layer content appears to each runtime.

Pure: no I/O. Sources: the botocore model (PublishLayerVersion, GetLayerVersion,
ListLayers, ListLayerVersions, AddLayerVersionPermission and their shapes), the Lambda
developer guide ("Packaging your layer content": layer paths for each runtime; "Defined
runtime environment variables": PATH, LD_LIBRARY_PATH, NODE_PATH) and the error messages
Lambda gives, as users report them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from corral.model.arn import Scope
from corral.model.errors import InvalidParameterValueException, ResourceNotFoundException
from corral.model.limits import LAYERS_PER_FUNCTION_MAX, UNZIPPED_MAX_BYTES, VERSION_MAX

OPT = "/opt"  # where Lambda extracts a function's layers
POLICY_VERSION = "2012-10-17"
POLICY_ID = "default"

# LayerName (a name or a layer ARN) and LayerVersionArn, split into their parts; the
# validator has already checked the botocore patterns.
_LAYER_ARN = re.compile(
    r"arn:(?P<partition>[a-zA-Z0-9-]+):lambda:(?P<region>[a-zA-Z0-9-]+):(?P<account>\d{12}):"
    r"layer:(?P<name>[a-zA-Z0-9-_]+)(?::(?P<version>[0-9]+))?"
)
_NODE_MAJOR = re.compile(r"nodejs(\d+)\.x")


def layer_arn(scope: Scope, name: str) -> str:
    return f"arn:aws:lambda:{scope.region}:{scope.account}:layer:{name}"


def layer_version_arn(scope: Scope, name: str, version: int) -> str:
    return f"{layer_arn(scope, name)}:{version}"


@dataclass(frozen=True, slots=True)
class LayerRef:
    name: str
    version: int | None  # None: the LayerName form, which names no version


def parse_layer_name(value: str, scope: Scope) -> str:
    """The layer a LayerName (name or layer ARN) names in this region and account.

    Raises ResourceNotFoundException for an ARN of another region or account (this server
    holds only its own layers).
    """
    m = _LAYER_ARN.fullmatch(value)
    if m is None:
        return value
    if (m.group("region"), m.group("account")) != (scope.region, scope.account):
        raise ResourceNotFoundException("The resource you requested does not exist.")
    return m.group("name")


def parse_layer_version_arn(value: str) -> tuple[str, str, str, int] | None:
    """(region, account, name, version) of a LayerVersionArn; None if it is not one, or
    its version is beyond any version number."""
    m = _LAYER_ARN.fullmatch(value)
    if m is None or m.group("version") is None:
        return None
    version = int(m.group("version"))
    if version > VERSION_MAX:
        return None
    return m.group("region"), m.group("account"), m.group("name"), version


@dataclass(frozen=True, slots=True)
class LayerVersion:
    """One published, immutable layer version."""

    name: str
    version: int
    code_sha256: str  # base64, as Lambda's CodeSha256
    code_hexdigest: str  # the storage key of the zip
    code_size: int  # bytes of the zip
    unzipped_size: int  # bytes of its regular files once unpacked
    created_date: str
    description: str = ""
    license_info: str | None = None
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()

    def matches(self, runtime: str | None, architecture: str | None) -> bool:
        """ListLayers / ListLayerVersions filters: a version is listed under a runtime or
        architecture only if it declares it."""
        if runtime is not None and runtime not in self.compatible_runtimes:
            return False
        return architecture is None or architecture in self.compatible_architectures

    def list_item(self, scope: Scope) -> dict:
        """LayerVersionsListItem."""
        item: dict = {
            "LayerVersionArn": layer_version_arn(scope, self.name, self.version),
            "Version": self.version,
            "Description": self.description,
            "CreatedDate": self.created_date,
        }
        if self.compatible_runtimes:
            item["CompatibleRuntimes"] = list(self.compatible_runtimes)
        if self.license_info is not None:
            item["LicenseInfo"] = self.license_info
        if self.compatible_architectures:
            item["CompatibleArchitectures"] = list(self.compatible_architectures)
        return item

    def to_wire(self, scope: Scope, location: str) -> dict:
        """PublishLayerVersionResponse / GetLayerVersionResponse; `location` is where the
        zip can be downloaded."""
        wire = {
            "Content": {
                "Location": location,
                "CodeSha256": self.code_sha256,
                "CodeSize": self.code_size,
            },
            "LayerArn": layer_arn(scope, self.name),
            **self.list_item(scope),
        }
        return wire

    def attachment(self, scope: Scope) -> FunctionLayer:
        """What a function keeps of this version when it references it."""
        return FunctionLayer(
            arn=layer_version_arn(scope, self.name, self.version),
            code_size=self.code_size,
            code_hexdigest=self.code_hexdigest,
            unzipped_size=self.unzipped_size,
        )


@dataclass(frozen=True, slots=True)
class FunctionLayer:
    """A layer version as a function holds it: its own copy of the reference, so the
    function keeps working after the layer version is deleted (as in Lambda)."""

    arn: str
    code_size: int
    code_hexdigest: str
    unzipped_size: int = 0

    def to_wire(self) -> dict:
        """The `Layer` shape of FunctionConfiguration.Layers."""
        return {"Arn": self.arn, "CodeSize": self.code_size}

    @classmethod
    def from_record(cls, record: dict | str) -> FunctionLayer:
        if isinstance(record, str):  # an ARN alone: nothing is known of its content
            return cls(arn=record, code_size=0, code_hexdigest="")
        return cls(**record)


@dataclass(frozen=True, slots=True)
class LayerPolicy:
    revision_id: str
    statements: list[dict] = field(default_factory=list)

    def document(self) -> dict:
        return {"Version": POLICY_VERSION, "Id": POLICY_ID, "Statement": self.statements}


def check_function_layers(arns: Sequence[str], scope: Scope) -> list[tuple[str, int]]:
    """Lambda's rules for the Layers of CreateFunction / UpdateFunctionConfiguration, before
    any is looked up: at most five, all in this region, no layer twice. Returns (name,
    version) for each, in order. Raises InvalidParameterValueException with Lambda's
    messages; an ARN of another account names a layer this server cannot have, so it
    "does not exist"."""
    if len(arns) > LAYERS_PER_FUNCTION_MAX:
        raise InvalidParameterValueException(
            f"Cannot reference more than {LAYERS_PER_FUNCTION_MAX} layers."
        )
    seen: dict[str, str] = {}
    refs: list[tuple[str, int]] = []
    for arn in arns:
        parsed = parse_layer_version_arn(arn)
        if parsed is None:  # arn:aws:lambda:::awslayer:NAME, AWS's own layers
            raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
        region, account, name, version = parsed
        if region != scope.region:
            raise InvalidParameterValueException(
                "Layers are not in the same region as the function. "
                f"Layers are expected to be in region {scope.region}."
            )
        if account != scope.account:
            raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
        unversioned = arn.rsplit(":", 1)[0]
        if unversioned in seen:
            raise InvalidParameterValueException(
                "Two different versions of the same layer are not allowed to be referenced "
                f"in the same function. {seen[unversioned]} and {arn} are versions of the "
                "same layer."
            )
        seen[unversioned] = arn
        refs.append((name, version))
    return refs


def check_unzipped_total(code_bytes: int, layers: Iterable[FunctionLayer]) -> None:
    """Lambda's 250 MB quota on a function's code and its layers together, unzipped."""
    total = code_bytes + sum(layer.unzipped_size for layer in layers)
    if total > UNZIPPED_MAX_BYTES:
        raise InvalidParameterValueException(
            "Function code combined with layers exceeds the maximum allowed size of "
            f"{UNZIPPED_MAX_BYTES} bytes. The actual size is {total} bytes."
        )


def tree_key(layers: Iterable[FunctionLayer]) -> str:
    """The name of the merged /opt tree of these layers, in this order: the same ordered
    contents give the same tree, whichever functions use it."""
    joined = "\n".join(layer.code_hexdigest for layer in layers)
    return hashlib.sha256(joined.encode()).hexdigest()


def search_path_environment(
    runtime: str, opt_root: str, runtime_dir: str, task_root: str
) -> dict[str, str]:
    """The environment variables that put layer content on each runtime's search paths,
    Lambda's values with `/opt` replaced by `opt_root` (where the function sees its layers)
    and `/var/task` by `task_root` (where it sees its code). CORRAL_OPT_DIR names the opt
    root for runtimes that look there themselves (Python's bootstrap: `python`,
    `python/lib/pythonX.Y/site-packages`; Java: `java/lib`). NODE_PATH is what Lambda's
    Node.js bootstrap sets: the documented layer and runtime directories, then the runtime
    and task roots (so `require('x')` finds /var/task/x.js)."""
    env = {
        "PATH": f"/usr/local/bin:/usr/bin:/bin:{opt_root}/bin",
        # Lambda's /var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:
        # /var/task/lib:/opt/lib without the directories of its own runtime images
        "LD_LIBRARY_PATH": f"/lib64:/usr/lib64:{task_root}:{task_root}/lib:{opt_root}/lib",
        "CORRAL_OPT_DIR": opt_root,
    }
    m = _NODE_MAJOR.fullmatch(runtime)
    if m:
        env["NODE_PATH"] = (
            f"{opt_root}/nodejs/node{m.group(1)}/node_modules:{opt_root}/nodejs/node_modules:"
            f"{runtime_dir}/node_modules:{runtime_dir}:{task_root}"
        )
    return env
