"""The catalogue of Lambda API errors.

Each class is named after its wire type (`x-amzn-ErrorType`) and carries its HTTP status.
One renderer in `corral.http` turns them into responses; nothing else builds error bodies.
Status codes follow the error shapes in botocore's lambda/2015-03-31/service-2.json.
"""

from __future__ import annotations


class LambdaError(Exception):
    """Base of every error the Lambda API reports to a caller.

    `error_type` is the wire type, `status` the HTTP status, `fields` extra members of the
    JSON body (TooManyRequestsException's `Reason`), `headers` extra response headers.
    """

    error_type = "ServiceException"
    status = 500
    kind = "Service"  # the body's "Type": "User" for caller mistakes, "Service" for ours

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.headers: list[tuple[bytes, bytes]] = []


class _UserError(LambdaError):
    kind = "User"


class ServiceException(LambdaError):
    error_type = "ServiceException"
    status = 500


class ResourceNotFoundException(_UserError):
    error_type = "ResourceNotFoundException"
    status = 404


class ResourceConflictException(_UserError):
    error_type = "ResourceConflictException"
    status = 409


class ResourceInUseException(_UserError):
    error_type = "ResourceInUseException"
    status = 400


class ValidationException(_UserError):
    error_type = "ValidationException"
    status = 400


class ProvisionedConcurrencyConfigNotFoundException(_UserError):
    error_type = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404


class InvalidParameterValueException(_UserError):
    error_type = "InvalidParameterValueException"
    status = 400


class InvalidRequestContentException(_UserError):
    error_type = "InvalidRequestContentException"
    status = 400


class RequestTooLargeException(_UserError):
    error_type = "RequestTooLargeException"
    status = 413


class RequestEntityTooLargeException(_UserError):
    """A request body over the API's own limit (outside Invoke, which has its own type)."""

    error_type = "RequestEntityTooLargeException"
    status = 413


class UnsupportedMediaTypeException(_UserError):
    error_type = "UnsupportedMediaTypeException"
    status = 415


class PreconditionFailedException(_UserError):
    error_type = "PreconditionFailedException"
    status = 412


class CodeStorageExceededException(_UserError):
    error_type = "CodeStorageExceededException"
    status = 400


class InvalidZipFileException(LambdaError):
    """At invoke time, a package that cannot be unpacked. CreateFunction and
    UpdateFunctionCode report unreadable zips as InvalidParameterValueException, as
    Lambda does."""

    error_type = "InvalidZipFileException"
    status = 502


class ResourceNotReadyException(LambdaError):
    error_type = "ResourceNotReadyException"
    status = 502


class UnknownOperationException(_UserError):
    """No operation matches the method and path (botocore surfaces the type as given)."""

    error_type = "UnknownOperationException"
    status = 404


class TooManyRequestsException(_UserError):
    """Throttled. `reason` is Lambda's ThrottleReason; Retry-After is in seconds."""

    error_type = "TooManyRequestsException"
    status = 429

    def __init__(self, message: str, reason: str, retry_after_s: int = 1) -> None:
        super().__init__(message, Reason=reason)
        self.headers.append((b"retry-after", str(retry_after_s).encode()))


class ThrottleReason:
    """Lambda's ThrottleReason values (service-2.json, shape ThrottleReason)."""

    ACCOUNT = "ConcurrentInvocationLimitExceeded"
    RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"
