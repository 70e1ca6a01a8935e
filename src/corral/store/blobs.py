"""Content-addressed storage of function code packages, treating every upload as hostile.

Owns the layout under `<data-dir>/code`: `blobs/<hex>.zip` (the package as uploaded, served
as GetFunction's Code.Location), `unpacked/<hex>/` (the code a sandbox mounts, shared by every
version with the same CodeSha256) and `tmp/` (work in progress, renamed into place). It keeps
no reference counts: callers decide when a digest is unreferenced and may be discarded.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import errno
import hashlib
import io
import os
import posixpath
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corral.model.errors import (
    InvalidParameterValueException,
    RequestTooLargeException,
)
from corral.model.limits import UNZIPPED_MAX_BYTES, ZIP_MAX_BYTES

INVALID_ZIP_MESSAGE = (
    "Could not unzip uploaded file. Please check your file, then try to upload again."
)
UNZIPPED_TOO_LARGE_MESSAGE = f"Unzipped size must be smaller than {UNZIPPED_MAX_BYTES} bytes"
ZIP_TOO_LARGE_MESSAGE = f"Zipped size must be smaller than {ZIP_MAX_BYTES} bytes"

# Lambda documents no entry cap; its 250 MB unzipped quota is the real bound. A jar is a valid
# code package, and shaded Java jars reach tens of thousands of classes, so allow about twice
# that. The cap matters because zipfile builds one ZipInfo per central-directory record before
# we see any of them: measured ~370 bytes each, so a 47 MB upload of one-byte names (1M
# records) cost 367 MB. The same cap bounds the inodes (files plus directories) one upload
# may create.
_MAX_ENTRIES = 100_000
_CHUNK_BYTES = 64 * 1024
_NAME_MAX_BYTES = 255  # Linux NAME_MAX
# Half of PATH_MAX: the other half is left for the data dir prefix on the host.
_PATH_MAX_BYTES = 2048
_LINK_TARGET_MAX_BYTES = 4095  # PATH_MAX less its NUL
_NAME_SHOWN_MAX_CHARS = 200
_FLAG_ENCRYPTED = 0x1
# bzip2 and LZMA members are inflated by zipfile without an output bound (one 4 KiB read of
# bzip2 can expand to gigabytes), so only the two methods it streams safely are accepted.
_COMPRESSION_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# What zipfile raises for bytes that are not a readable zip (or a member that fails its CRC).
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    ValueError,
    struct.error,
    OverflowError,
)
_HEXDIGEST = re.compile(r"[0-9a-f]{64}")

# Zip records used to find the central directory the way zipfile does (APPNOTE 4.3.12-16).
_CENTRAL_RECORD = b"PK\x01\x02"
_END_RECORD = b"PK\x05\x06"
_END_RECORD_BYTES = 22
_ZIP64_END_RECORD = b"PK\x06\x06"
_ZIP64_END_RECORD_BYTES = 56
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_BYTES = 20


@dataclass(frozen=True, slots=True)
class CodeArtifact:
    """A stored code package. `sha256` and `size_bytes` are Lambda's CodeSha256 and CodeSize."""

    sha256: str  # base64 of the SHA-256 digest of the zip bytes
    hexdigest: str  # hex of the same digest: the storage key
    size_bytes: int


class _Kind(enum.Enum):
    DIR = "directory"
    FILE = "file"
    LINK = "symlink"


@dataclass(frozen=True, slots=True)
class _Entry:
    info: zipfile.ZipInfo
    path: str  # relative, "/"-separated, normalised, no trailing slash
    kind: _Kind
    mode: int = 0o644  # permissions given to a file
    target: bytes = b""  # what a symlink points at


@dataclass(frozen=True, slots=True)
class _Plan:
    directories: list[str]  # listed or implied, parents before children
    files: list[_Entry]
    links: list[_Entry]


class CodeStore:
    """Code packages on local disk, keyed by the hex SHA-256 of the zip.

    Every method is synchronous and does blocking I/O: call it from a worker thread. Methods
    taking a `hexdigest` raise ValueError unless it is 64 lowercase hex digits, so a key can
    never name a path outside the store.
    """

    def __init__(self, root: Path) -> None:
        self._blobs = root / "blobs"
        self._unpacked = root / "unpacked"
        self._tmp = root / "tmp"
        for directory in (self._blobs, self._unpacked, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)

    def sweep_temporary(self) -> int:
        """Remove work directories that a killed server left in `tmp`; how many there were.

        Call at start-up only, before any ingest can be running.
        """
        leftovers = list(self._tmp.iterdir())
        for path in leftovers:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return len(leftovers)

    def ingest(self, zip_bytes: bytes) -> CodeArtifact:
        """Validate a code package, store it and unpack it; return its CodeSha256 and CodeSize.

        Idempotent: bytes already stored are not unpacked again. Raises
        RequestTooLargeException (zip over ZIP_MAX_BYTES) or InvalidParameterValueException
        (unpacks to more than UNZIPPED_MAX_BYTES, unreadable, or an entry that is unsafe to
        unpack: Lambda reports all of these as invalid parameters at CreateFunction). A
        rejected package leaves nothing on disk, and temporary files never outlive the call.
        """
        if len(zip_bytes) > ZIP_MAX_BYTES:
            raise RequestTooLargeException(ZIP_TOO_LARGE_MESSAGE)
        digest = hashlib.sha256(zip_bytes).digest()
        artifact = CodeArtifact(
            sha256=base64.b64encode(digest).decode("ascii"),
            hexdigest=digest.hex(),
            size_bytes=len(zip_bytes),
        )
        if self.exists(artifact.hexdigest):
            return artifact
        if _central_records_bound(zip_bytes) > _MAX_ENTRIES:
            raise InvalidParameterValueException(
                f"Could not unzip uploaded file: it has more than {_MAX_ENTRIES} entries."
            )
        with _unreadable_is_invalid():
            archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
        with archive:
            plan = _plan(archive)
            work = Path(tempfile.mkdtemp(prefix="unpack-", dir=self._tmp))
            try:
                _unpack(archive, plan, work)
                self._write_blob(artifact.hexdigest, zip_bytes)
                install_tree(work, self.unpacked_path(artifact.hexdigest))
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        return artifact

    def unpacked_path(self, hexdigest: str) -> Path:
        """The directory holding the unpacked code of a stored package."""
        return self._unpacked / _checked(hexdigest)

    def unpacked_size(self, hexdigest: str) -> int:
        """Bytes of the package's files once unpacked (what Lambda's 250 MB quota counts)."""
        return tree_size(self.unpacked_path(hexdigest))

    def blob_path(self, hexdigest: str) -> Path:
        """The stored zip, byte for byte as uploaded."""
        return self._blobs / f"{_checked(hexdigest)}.zip"

    def exists(self, hexdigest: str) -> bool:
        """Whether both the zip and its unpacked tree are stored."""
        return self.blob_path(hexdigest).is_file() and self.unpacked_path(hexdigest).is_dir()

    def discard(self, hexdigest: str) -> None:
        """Remove a package and its unpacked tree; a no-op when absent.

        The tree is first renamed away, so it is never seen half deleted under its name.
        """
        self.blob_path(hexdigest).unlink(missing_ok=True)
        grave = Path(tempfile.mkdtemp(prefix="discard-", dir=self._tmp))
        try:
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.unpacked_path(hexdigest), grave / "tree")
        finally:
            shutil.rmtree(grave)

    def _write_blob(self, hexdigest: str, zip_bytes: bytes) -> None:
        blob = self.blob_path(hexdigest)
        if blob.is_file():
            return
        fd, temporary = tempfile.mkstemp(prefix="blob-", dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(zip_bytes)
                out.flush()
                # The blob is the source of truth the database will point at; the unpacked
                # tree can always be rebuilt from it.
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, blob)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


def resolves_inside(root: str, path: str) -> bool:
    """Whether `path`, with every symlink on it followed, stays within `root` (a real
    path, as `os.path.realpath` gives)."""
    resolved = os.path.realpath(path)
    return resolved == root or resolved.startswith(root + os.sep)


def tree_size(root: Path) -> int:
    """Bytes of the regular files under `root` (symlinks are not followed)."""
    total = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def _checked(hexdigest: str) -> str:
    if not _HEXDIGEST.fullmatch(hexdigest):
        raise ValueError(f"not a lowercase hex SHA-256 digest: {hexdigest!r}")
    return hexdigest


@contextlib.contextmanager
def _unreadable_is_invalid() -> Iterator[None]:
    try:
        yield
    except _UNREADABLE as exc:
        raise InvalidParameterValueException(INVALID_ZIP_MESSAGE) from exc


def _hostile(name: str, reason: str) -> InvalidParameterValueException:
    if len(name) > _NAME_SHOWN_MAX_CHARS:  # a name may be 64 KiB long; show its ends
        name = f"{name[: _NAME_SHOWN_MAX_CHARS // 2]}...{name[-_NAME_SHOWN_MAX_CHARS // 4 :]}"
    return InvalidParameterValueException(
        f"Could not unzip uploaded file: entry {name!r} {reason}."
    )


def _central_records_bound(data: bytes) -> int:
    """An upper bound on the central-directory records zipfile would parse from `data`.

    Finds the end record as zipfile does (`_EndRecData`: at the very end, else the last
    signature within the 64 KiB comment window), takes the directory as the `size_cd` bytes
    just before it (or before the zip64 end record) as `_RealGetContents` does, and counts
    record signatures there. Returns 0 if there is no end record: ZipFile rejects those bytes.
    """
    end = len(data) - _END_RECORD_BYTES
    if end < 0 or not (data.startswith(_END_RECORD, end) and data.endswith(b"\0\0")):
        end = data.rfind(_END_RECORD, max(len(data) - (1 << 16) - _END_RECORD_BYTES, 0))
        if end < 0 or end + _END_RECORD_BYTES > len(data):
            return 0
    (size_cd,) = struct.unpack_from("<L", data, end + 12)
    locator = end - _ZIP64_LOCATOR_BYTES
    zip64_end = locator - _ZIP64_END_RECORD_BYTES
    if (
        zip64_end >= 0
        and data.startswith(_ZIP64_LOCATOR, locator)
        and data.startswith(_ZIP64_END_RECORD, zip64_end)
    ):
        (size_cd,) = struct.unpack_from("<Q", data, zip64_end + 40)
        end = zip64_end
    return data.count(_CENTRAL_RECORD, max(end - size_cd, 0), end)


def _plan(archive: zipfile.ZipFile) -> _Plan:
    """Validate every entry without touching the disk; say what to create."""
    infos = archive.infolist()
    # Rejecting on the declared sizes spares inflating an honest bomb at all. It is never a
    # reason to accept: the real bytes are counted while unpacking.
    if sum(info.file_size for info in infos) > UNZIPPED_MAX_BYTES:
        raise InvalidParameterValueException(UNZIPPED_TOO_LARGE_MESSAGE)
    kinds: dict[str, _Kind] = {}
    files: list[_Entry] = []
    links: list[_Entry] = []
    for info in infos:
        entry = _entry(archive, info)
        if entry is None:
            continue
        _claim(kinds, entry)
        if entry.kind is _Kind.FILE:
            files.append(entry)
        elif entry.kind is _Kind.LINK:
            links.append(entry)
    directories = sorted(path for path, kind in kinds.items() if kind is _Kind.DIR)
    return _Plan(directories, files, links)


def _entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Entry | None:
    name = info.filename
    if info.flag_bits & _FLAG_ENCRYPTED:
        raise _hostile(name, "is encrypted")
    if info.compress_type not in _COMPRESSION_METHODS:
        raise _hostile(
            name,
            f"uses compression method {info.compress_type}; only stored and deflate are supported",
        )
    unix_mode = info.external_attr >> 16
    kind = _kind(name, unix_mode)
    parts = _path_parts(name)
    if not parts:
        if kind is _Kind.DIR:
            return None  # "./": the root itself
        raise _hostile(name, "has no file name")
    path = "/".join(parts)
    if kind is _Kind.LINK:
        target = _link_target(archive, info)
        _check_link_target(name, path, target)
        return _Entry(info, path, kind, target=target)
    # Only the execute bits carry over (a custom runtime's bootstrap must stay executable);
    # never setuid, setgid, sticky or group/world write.
    mode = 0o755 if unix_mode & 0o111 else 0o644
    return _Entry(info, path, kind, mode)


def _kind(name: str, unix_mode: int) -> _Kind:
    file_type = stat.S_IFMT(unix_mode)
    if file_type == stat.S_IFLNK:
        if name.endswith("/"):
            raise _hostile(name, "is a symlink with a directory name")
        return _Kind.LINK
    if file_type == stat.S_IFDIR or (file_type in (0, stat.S_IFREG) and name.endswith("/")):
        return _Kind.DIR
    if file_type in (0, stat.S_IFREG):
        return _Kind.FILE
    raise _hostile(name, "is a device, fifo or socket, not a file, directory or symlink")


def _path_parts(name: str) -> list[str]:
    if "\\" in name:
        raise _hostile(name, "contains a backslash; zip paths must separate with '/'")
    if name.startswith("/"):
        raise _hostile(name, "is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _hostile(name, "has a '..' path component")
    if any(len(part.encode()) > _NAME_MAX_BYTES for part in parts):
        raise _hostile(name, f"has a path component longer than {_NAME_MAX_BYTES} bytes")
    if len("/".join(parts).encode()) > _PATH_MAX_BYTES:
        raise _hostile(name, f"has a path longer than {_PATH_MAX_BYTES} bytes")
    return parts


def _claim(kinds: dict[str, _Kind], entry: _Entry) -> None:
    """Record `entry` and its implied parent directories, refusing any collision."""
    name = entry.info.filename
    parent = entry.path.rpartition("/")[0]
    while parent:
        prior = kinds.get(parent)
        if prior is _Kind.DIR:
            break  # its own parents were claimed with it
        if prior is not None:
            raise _hostile(name, f"is inside {parent!r}, which is a {prior.value}")
        kinds[parent] = _Kind.DIR
        parent = parent.rpartition("/")[0]
    prior = kinds.get(entry.path)
    if prior is not None and not (prior is _Kind.DIR and entry.kind is _Kind.DIR):
        raise _hostile(name, f"collides with another entry at {entry.path!r}")
    kinds[entry.path] = entry.kind
    if len(kinds) > _MAX_ENTRIES:
        raise InvalidParameterValueException(
            "Could not unzip uploaded file: it unpacks to more than "
            f"{_MAX_ENTRIES} files and directories."
        )


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A member's real bytes, 64 KiB at a time, whatever its header claims."""
    with _unreadable_is_invalid(), archive.open(info) as member:
        while chunk := member.read(_CHUNK_BYTES):
            yield chunk


def _link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    target = bytearray()
    for chunk in _chunks(archive, info):
        target += chunk
        if len(target) > _LINK_TARGET_MAX_BYTES:
            raise _hostile(
                info.filename, f"is a symlink with a target over {_LINK_TARGET_MAX_BYTES} bytes"
            )
    return bytes(target)


def _check_link_target(name: str, path: str, target: bytes) -> None:
    """Lexical check; `_check_links_resolve_inside` catches escapes through other links."""
    if not target or b"\0" in target:
        raise _hostile(name, "is a symlink with an empty or NUL-containing target")
    text = os.fsdecode(target)
    if text.startswith("/"):
        raise _hostile(name, f"is a symlink to an absolute path ({text!r})")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), text))
    if resolved == ".." or resolved.startswith("../"):
        raise _hostile(name, f"is a symlink pointing outside the package ({text!r})")


def _unpack(archive: zipfile.ZipFile, plan: _Plan, work: Path) -> None:
    """Create the planned tree in `work`. Symlinks come last, so no write goes through one."""
    base = str(work)
    for directory in plan.directories:
        path = os.path.join(base, directory)
        os.mkdir(path)
        os.chmod(path, 0o755)  # explicitly: mkdir's mode is filtered by the umask
    unzipped_bytes = 0
    for entry in plan.files:
        unzipped_bytes = _write_file(archive, entry, os.path.join(base, entry.path), unzipped_bytes)
    for entry in plan.links:
        os.symlink(entry.target, os.path.join(base, entry.path))
    _check_links_resolve_inside(base, plan.links)


def _write_file(archive: zipfile.ZipFile, entry: _Entry, path: str, unzipped_bytes: int) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
        for chunk in _chunks(archive, entry.info):
            unzipped_bytes += len(chunk)
            if unzipped_bytes > UNZIPPED_MAX_BYTES:
                raise InvalidParameterValueException(UNZIPPED_TOO_LARGE_MESSAGE)
            out.write(chunk)
        os.fchmod(out.fileno(), entry.mode)
    return unzipped_bytes


def _check_links_resolve_inside(base: str, links: list[_Entry]) -> None:
    # Each target passed the lexical check, but `..` after another symlink climbs from where
    # that link points, not from where it sits; only the real tree can answer.
    root = os.path.realpath(base)
    for entry in links:
        if not resolves_inside(root, os.path.join(base, entry.path)):
            raise _hostile(
                entry.info.filename,
                f"is a symlink resolving outside the package ({os.fsdecode(entry.target)!r})",
            )


def install_tree(work: Path, destination: Path) -> None:
    """Move a finished tree into place (readable by the sandbox's uid). A tree built
    concurrently from the same content got there first: it is identical, keep it."""
    os.chmod(work, 0o755)
    try:
        os.rename(work, destination)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        shutil.rmtree(work)
