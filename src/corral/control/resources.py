"""Function resources beside the configuration: tags, resource-based policies, reserved
concurrency, and the account settings computed from them.

Lambda's rules and messages live here; storage is `corral.store.resources`, wire shapes
`corral.http.resource_api`. Policies are stored and returned as Lambda renders them but
not enforced (that comes with authentication). Reserved concurrency is cached for the
invoke path: `reserved_concurrency` and `unreserved_limit` never touch the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from corral.model import limits
from corral.model.arn import LATEST, Scope
from corral.model.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from corral.model.function import FunctionConfig, new_revision_id
from corral.model.tags import validate_tags
from corral.store.resources import ResourceStore, StoredPolicy

# Unreserved concurrency never goes below this, or below the account limit if smaller
# (accounts with a limit of 50 see "[50]" in the message, so no reservation fits at all).
UNRESERVED_MIN = 100

POLICY_VERSION = "2012-10-17"
POLICY_ID = "default"

# TaggableResource (service-2.json) split into its parts; the validator has already
# checked the whole pattern.
_TAGGABLE = re.compile(
    r"arn:(?:aws[a-zA-Z-]*):lambda:(?P<region>[^:]+):(?P<account>\d{12}):"
    r"(?P<kind>[a-z-]+):(?P<id>[^:]+)(?::(?P<qualifier>.+))?"
)
_ACCOUNT_ID = re.compile(r"\d{12}")
_IAM_ARN = re.compile(r"arn:aws[a-zA-Z-]*:iam::\d{12}:\S+")

_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


class Functions(Protocol):
    """What this service needs of `corral.control.functions.FunctionService`."""

    def get(self, name: str) -> FunctionConfig: ...


class Qualifiers(Protocol):
    """What this service needs of `corral.control.aliases.AliasService`."""

    def primary(self, name: str, qualifier: str | None) -> FunctionConfig: ...


@dataclass(frozen=True, slots=True)
class Permission:
    """AddPermission's statement members (service-2.json, AddPermissionRequest)."""

    statement_id: str
    action: str
    principal: str
    source_arn: str | None = None
    source_account: str | None = None
    principal_org_id: str | None = None
    event_source_token: str | None = None
    function_url_auth_type: str | None = None
    invoked_via_function_url: bool | None = None


@dataclass(frozen=True, slots=True)
class AccountSettings:
    total_code_size_limit_bytes: int
    code_size_unzipped_bytes: int
    code_size_zipped_bytes: int
    concurrent_executions: int
    unreserved_concurrent_executions: int
    total_code_size_bytes: int
    function_count: int


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy document (as GetPolicy returns it) and its RevisionId."""

    document: dict
    revision_id: str


class ResourceService:
    """Tags, policies, reserved concurrency and account settings of this server's functions.

    Every method is synchronous (single-row SQLite work, like FunctionService's reads).
    API methods raise the LambdaError subclasses named in their docstrings or, for an
    unknown function or qualifier, ResourceNotFoundException.
    """

    def __init__(
        self,
        store: ResourceStore,
        functions: Functions,
        qualifiers: Qualifiers,
        scope: Scope,
        concurrency_limit: int,
        code_storage_limit_bytes: int = limits.CODE_STORAGE_DEFAULT_BYTES,
    ) -> None:
        self.store = store
        self.code_storage_limit_bytes = code_storage_limit_bytes
        self.functions = functions
        self.qualifiers = qualifiers
        self.scope = scope
        self.concurrency_limit = concurrency_limit
        self._reserved: dict[str, int] = {}
        self._unreserved = concurrency_limit
        self._reload_reserved()

    # ---- tags (TagResource, UntagResource, ListTags) --------------------------------

    def list_tags(self, resource_arn: str) -> dict[str, str]:
        return self.store.get_tags(self._tagged_function(resource_arn))

    def tag(self, resource_arn: str, tags: dict[str, str]) -> None:
        name = self._tagged_function(resource_arn)
        current = self.store.get_tags(name)
        validate_tags(tags, current)
        self.store.set_tags(name, {**current, **tags})

    def untag(self, resource_arn: str, keys: Iterable[str]) -> None:
        name = self._tagged_function(resource_arn)
        current = self.store.get_tags(name)
        dropped = set(keys)
        remaining = {k: v for k, v in current.items() if k not in dropped}
        if remaining != current:
            self.store.set_tags(name, remaining)

    def _tagged_function(self, resource_arn: str) -> str:
        """The function a TaggableResource ARN names; raises the errors Lambda gives."""
        m = _TAGGABLE.fullmatch(resource_arn)
        if m is None or m.group("kind") != "function":
            # Event source mappings, code signing configs, capacity providers: none exist yet.
            raise ResourceNotFoundException("The resource you requested does not exist.")
        if m.group("qualifier"):
            raise InvalidParameterValueException(
                "Tags on function aliases and versions are not supported. "
                "Please specify a function ARN."
            )
        if (m.group("region"), m.group("account")) != (self.scope.region, self.scope.account):
            raise ResourceNotFoundException(f"Function not found: {resource_arn}")
        name = m.group("id")
        self.functions.get(name)
        return name

    # ---- resource-based policy (AddPermission, GetPolicy, RemovePermission) ----------

    def add_permission(
        self,
        name: str,
        qualifier: str | None,
        permission: Permission,
        revision_id: str | None = None,
    ) -> dict:
        """Add a statement to the policy of the function, version or alias; returns it.

        Raises ResourceNotFoundException (no such function or qualifier),
        PreconditionFailedException (`revision_id` is not the policy's, or, before the
        first statement, the function's), ResourceConflictException (the statement id is
        taken), InvalidParameterValueException (a principal Lambda would not accept).
        """
        config = self.qualifiers.primary(name, qualifier)
        key = qualifier or LATEST
        policy = self.store.get_policy(name, key)
        expected = policy.revision_id if policy else config.revision_id
        if revision_id is not None and revision_id != expected:
            raise PreconditionFailedException(_REVISION_MISMATCH)
        statements = policy.statements if policy else []
        if any(s["Sid"] == permission.statement_id for s in statements):
            raise ResourceConflictException(
                f"The statement id ({permission.statement_id}) provided already exists. "
                "Please provide a new statement id, or remove the existing statement."
            )
        statement = self._statement(permission, self.scope.function_arn(name, qualifier))
        self.store.put_policy(name, key, StoredPolicy(new_revision_id(), [*statements, statement]))
        return statement

    def get_policy(self, name: str, qualifier: str | None) -> Policy:
        self.qualifiers.primary(name, qualifier)
        policy = self.store.get_policy(name, qualifier or LATEST)
        if policy is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        document = {"Version": POLICY_VERSION, "Id": POLICY_ID, "Statement": policy.statements}
        return Policy(document, policy.revision_id)

    def remove_permission(
        self, name: str, qualifier: str | None, statement_id: str, revision_id: str | None = None
    ) -> None:
        try:
            self.functions.get(name)
        except ResourceNotFoundException:
            raise ResourceNotFoundException(
                f"No policy found for: {self.scope.function_arn(name)}"
            ) from None
        self.qualifiers.primary(name, qualifier)
        key = qualifier or LATEST
        policy = self.store.get_policy(name, key)
        if policy is None:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        remaining = [s for s in policy.statements if s["Sid"] != statement_id]
        if len(remaining) == len(policy.statements):
            raise ResourceNotFoundException(
                f"Statement {statement_id} is not found in resource policy."
            )
        if revision_id is not None and revision_id != policy.revision_id:
            raise PreconditionFailedException(_REVISION_MISMATCH)
        self.store.put_policy(name, key, StoredPolicy(new_revision_id(), remaining))

    @staticmethod
    def _statement(permission: Permission, resource: str) -> dict:
        """One statement, keys in the order Lambda writes them (AWS CLI examples,
        `aws lambda add-permission`)."""
        statement: dict = {
            "Sid": permission.statement_id,
            "Effect": "Allow",
            "Principal": _principal(permission.principal),
            "Action": permission.action,
            "Resource": resource,
        }
        equals = {
            "lambda:FunctionUrlAuthType": permission.function_url_auth_type,
            "aws:PrincipalOrgID": permission.principal_org_id,
            "AWS:SourceAccount": permission.source_account,
            "lambda:EventSourceToken": permission.event_source_token,
        }
        condition: dict = {}
        if any(v is not None for v in equals.values()):
            condition["StringEquals"] = {k: v for k, v in equals.items() if v is not None}
        if permission.source_arn is not None:
            condition["ArnLike"] = {"AWS:SourceArn": permission.source_arn}
        if permission.invoked_via_function_url is not None:
            flag = "true" if permission.invoked_via_function_url else "false"
            condition["Bool"] = {"lambda:InvokedViaFunctionUrl": flag}
        if condition:
            statement["Condition"] = condition
        return statement

    # ---- reserved concurrency ------------------------------------------------------

    def reserved_concurrency(self, function_name: str) -> int | None:
        """The function's reserved concurrency, or None. Cached: never waits, no I/O."""
        return self._reserved.get(function_name)

    def unreserved_limit(self) -> int:
        """The account limit minus every reservation: what functions without a reservation
        share. Cached: never waits, no I/O."""
        return self._unreserved

    def put_reserved_concurrency(self, name: str, qualifier: str | None, reserved: int) -> int:
        """PutFunctionConcurrency. Raises ResourceNotFoundException and
        InvalidParameterValueException (a qualifier, or too little left unreserved)."""
        self._refuse_qualifier(qualifier)
        self.functions.get(name)
        others = sum(v for k, v in self.store.reserved().items() if k != name)
        floor = min(UNRESERVED_MIN, self.concurrency_limit)
        if self.concurrency_limit - others - reserved < floor:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{floor}]."
            )
        self.store.set_reserved(name, reserved)
        self._reload_reserved()
        return reserved

    def get_reserved_concurrency(self, name: str, qualifier: str | None) -> int | None:
        self._refuse_qualifier(qualifier)
        self.functions.get(name)
        return self.store.reserved().get(name)

    def delete_reserved_concurrency(self, name: str, qualifier: str | None) -> None:
        self._refuse_qualifier(qualifier)
        self.functions.get(name)
        self.store.delete_reserved(name)
        self._reload_reserved()

    @staticmethod
    def _refuse_qualifier(qualifier: str | None) -> None:
        if qualifier is not None:
            raise InvalidParameterValueException(
                "This operation is permitted on Lambda functions only. Aliases and versions "
                "do not support this operation. Please specify either a function name or an "
                "unqualified function ARN."
            )

    def _reload_reserved(self) -> None:
        self._reserved = self.store.reserved()
        self._unreserved = self.concurrency_limit - sum(self._reserved.values())

    # ---- account and clean-up ------------------------------------------------------

    def account_settings(self) -> AccountSettings:
        function_count, code_size = self.store.usage()
        reserved = sum(self.store.reserved().values())
        return AccountSettings(
            total_code_size_limit_bytes=self.code_storage_limit_bytes,
            code_size_unzipped_bytes=limits.UNZIPPED_MAX_BYTES,
            code_size_zipped_bytes=limits.ZIP_MAX_BYTES,
            concurrent_executions=self.concurrency_limit,
            unreserved_concurrent_executions=self.concurrency_limit - reserved,
            total_code_size_bytes=code_size,
            function_count=function_count,
        )

    def forget(self, function_name: str, qualifier: str | None = None) -> None:
        """Drop what a deleted function (or, with `qualifier`, a deleted version or alias)
        had here: its policies and reserved concurrency. Call after the delete; never
        waits beyond a small database write."""
        self.store.forget(function_name, qualifier)
        if qualifier is None:
            self._reload_reserved()


def _principal(principal: str) -> str | dict:
    """Principal as Lambda writes it: an account id becomes its root ARN."""
    if principal == "*":
        return principal
    if _ACCOUNT_ID.fullmatch(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if _IAM_ARN.fullmatch(principal):
        return {"AWS": principal}
    if "." in principal and ":" not in principal:  # sns.amazonaws.com, alexa-appkit.amazon.com
        return {"Service": principal}
    raise InvalidParameterValueException(
        "The provided principal was invalid. Please check the principal and try again."
    )
