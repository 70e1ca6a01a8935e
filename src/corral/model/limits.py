"""Lambda's documented quotas and defaults, in one place.

Sources: the Lambda developer guide, "Lambda quotas" and "Configuring function options",
and the botocore model (service-2.json) where it states a constraint.
"""

TIMEOUT_DEFAULT_S = 3
TIMEOUT_MIN_S = 1
TIMEOUT_MAX_S = 900

MEMORY_DEFAULT_MB = 128
MEMORY_MIN_MB = 128
MEMORY_MAX_MB = 10240

EPHEMERAL_STORAGE_DEFAULT_MB = 512
EPHEMERAL_STORAGE_MIN_MB = 512
EPHEMERAL_STORAGE_MAX_MB = 10240

FUNCTION_NAME_MAX_LEN = 64
ENVIRONMENT_MAX_BYTES = 4096  # all keys and values together

# Invoke payloads. Lambda measures the request body; the response limit is 100 bytes larger
# and is what its "Response payload size exceeded" message quotes.
SYNC_REQUEST_MAX_BYTES = 6 * 1024 * 1024  # 6,291,456
SYNC_RESPONSE_MAX_BYTES = SYNC_REQUEST_MAX_BYTES + 100  # 6,291,556
ASYNC_REQUEST_MAX_BYTES = 1024 * 1024

# Code packages: a zip uploaded directly is at most 50 MB (the JSON request carrying it as
# base64 may be up to 69,905,067 bytes), and it unpacks to at most 250 MB.
ZIP_MAX_BYTES = 50 * 1024 * 1024
CREATE_REQUEST_MAX_BYTES = 69_905_067
UNZIPPED_MAX_BYTES = 262_144_000

LOG_TAIL_BYTES = 4096

ACCOUNT_CONCURRENCY_DEFAULT = 1000
CODE_STORAGE_DEFAULT_BYTES = 75 * 1024**3  # 80,530,636,800: all versions' packages together
LIST_MAX_ITEMS = 50  # ListFunctions returns at most 50 per page

# Function and layer version numbers are Longs in Lambda's API (and INTEGERs in SQLite):
# a number beyond this names nothing.
VERSION_MAX = 2**63 - 1


def version_marker(marker: str | None) -> int | None:
    """A version number used as a list marker, clamped to VERSION_MAX (every version is
    below it); None unless the marker is ASCII digits (str.isdigit also takes "²")."""
    if not marker or not (marker.isascii() and marker.isdigit()):
        return None
    return min(int(marker), VERSION_MAX)


LAYERS_PER_FUNCTION_MAX = 5  # Lambda quotas: "Lambda layers: five per function"
