"""Code uploads: the base64 .zip of CreateFunction, UpdateFunctionCode and
PublishLayerVersion, checked and stored the same way for functions and layers."""

from __future__ import annotations

import asyncio
import base64
import binascii

from corral.model.errors import (
    CodeStorageExceededException,
    InvalidParameterValueException,
    InvalidRequestContentException,
)
from corral.store.blobs import CodeArtifact, CodeStore
from corral.store.db import Database


def refuse_s3(source: dict, member: str, zip_member: str) -> None:
    """Corral has no S3: code given as S3Bucket/S3Key (in `member`: Code, Content) is
    refused with a hint to send the zip itself (as `zip_member`)."""
    if source.get("S3Bucket") or source.get("S3Key") or source.get("S3ObjectVersion"):
        raise InvalidParameterValueException(
            f"Corral does not fetch code from S3 ({member}.S3Bucket/S3Key): "
            f"send the .zip file as {zip_member}."
        )


async def ingest_zip(
    encoded: str | None, what: str, code: CodeStore, db: Database, limit_bytes: int
) -> CodeArtifact:
    """Decode, check against the account's code storage limit, validate and store a
    base64 .zip (off the event loop: unpacking a hostile zip takes time). `what` names
    the code in the error when there is none ("function code", "layer content")."""
    if not encoded:
        raise InvalidParameterValueException(f"Please provide a source for {what}.")
    try:
        zip_bytes = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidRequestContentException(
            "Could not parse request body into json: ZipFile is not valid base64"
        ) from None
    if db.total_code_size() + len(zip_bytes) > limit_bytes:
        raise CodeStorageExceededException("Code storage limit exceeded.")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, code.ingest, zip_bytes)
