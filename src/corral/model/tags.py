"""Tags: Lambda's limits on them ("Tagging Lambda functions"): 50 per function, keys of
1-128 characters that do not start with "aws:", values of at most 256."""

from __future__ import annotations

from collections.abc import Iterable

from corral.model.errors import InvalidParameterValueException

TAGS_MAX = 50
TAG_KEY_MAX_LEN = 128
TAG_VALUE_MAX_LEN = 256


def validate_tags(tags: dict[str, str], existing: Iterable[str] = ()) -> None:
    """Lambda's tag limits, for TagResource and CreateFunction's Tags.

    `existing` are the keys the function already has. Raises InvalidParameterValueException.
    """
    if len(set(existing) | set(tags)) > TAGS_MAX:
        raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")
    for key, value in tags.items():
        if not 1 <= len(key) <= TAG_KEY_MAX_LEN:
            raise InvalidParameterValueException(
                f"Tag key must be between 1 and {TAG_KEY_MAX_LEN} characters long: {key}"
            )
        if key.lower().startswith("aws:"):
            raise InvalidParameterValueException(
                "aws: prefixed tag key names are not allowed for external use."
            )
        if len(value) > TAG_VALUE_MAX_LEN:
            raise InvalidParameterValueException(
                f"Tag value must be no longer than {TAG_VALUE_MAX_LEN} characters: {key}"
            )
