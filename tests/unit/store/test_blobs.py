import base64
import hashlib
import io
import os
import stat
import struct
import tracemalloc
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from corral.model.errors import (
    InvalidParameterValueException,
    RequestTooLargeException,
)
from corral.model.limits import UNZIPPED_MAX_BYTES, ZIP_MAX_BYTES
from corral.store.blobs import INVALID_ZIP_MESSAGE, CodeStore

EMPTY_LAYOUT = ["blobs", "tmp", "unpacked"]
MEMORY_CEILING_BYTES = 16 * 1024 * 1024  # far below the 250 MB a bomb would need


def entry(name: str, mode: int | None = None, compress_type: int = zipfile.ZIP_DEFLATED):
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    info.create_system = 3  # Unix, so external_attr carries st_mode
    if mode is not None:
        info.external_attr = mode << 16
    return info


def symlink(name: str, target: str):
    return (entry(name, stat.S_IFLNK | 0o777), target.encode())


def make_zip(*members) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some need
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name_or_info, data in members:
                archive.writestr(name_or_info, data)
    return buffer.getvalue()


def patch_central_record(zip_bytes: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of the last central-directory record (offsets per APPNOTE 4.3.12)."""
    data = bytearray(zip_bytes)
    struct.pack_into(fmt, data, data.rfind(b"PK\x01\x02") + offset, value)
    return bytes(data)


def with_zip64_end(zip_bytes: bytes) -> bytes:
    """Re-end an archive the zip64 way: end record, locator, then a saturated classic end."""
    _, _, _, count, _, size_cd, offset_cd, _ = struct.unpack("<4s4H2LH", zip_bytes[-22:])
    body = zip_bytes[:-22]
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size_cd, offset_cd
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(body), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + record + locator + end


def layout(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "code"


@pytest.fixture
def store(root: Path) -> CodeStore:
    return CodeStore(root)


@pytest.fixture(scope="module")
def bomb_zip() -> bytes:
    """300 MB of zeros in one deflated member (~300 KB), written in 1 MB steps."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.bin", "w") as member,
    ):
        chunk = bytes(1024 * 1024)
        for _ in range(300):
            member.write(chunk)
    return buffer.getvalue()


def test_round_trip_unpacks_nested_tree_and_reports_code_sha256_and_size(store, root):
    zip_bytes = make_zip(
        ("handler.py", b"def handler(event, context):\n    return 1\n"),
        ("lib/", b""),
        ("lib/pkg/__init__.py", b""),
        ("lib/pkg/data/table.csv", b"a,b\n1,2\n"),
    )

    artifact = store.ingest(zip_bytes)

    digest = hashlib.sha256(zip_bytes).digest()
    assert artifact.sha256 == base64.b64encode(digest).decode()
    assert artifact.hexdigest == digest.hex()
    assert artifact.size_bytes == len(zip_bytes)
    assert store.exists(artifact.hexdigest)
    assert store.blob_path(artifact.hexdigest) == root / "blobs" / f"{digest.hex()}.zip"
    assert store.blob_path(artifact.hexdigest).read_bytes() == zip_bytes
    tree = store.unpacked_path(artifact.hexdigest)
    assert tree == root / "unpacked" / digest.hex()
    assert layout(tree) == [
        "handler.py",
        "lib",
        "lib/pkg",
        "lib/pkg/__init__.py",
        "lib/pkg/data",
        "lib/pkg/data/table.csv",
    ]
    assert (tree / "lib/pkg/data/table.csv").read_bytes() == b"a,b\n1,2\n"
    assert layout(root / "tmp") == []


def test_ingesting_the_same_bytes_again_keeps_the_stored_tree(store, root):
    zip_bytes = make_zip(("handler.py", b"x = 1\n"))
    first = store.ingest(zip_bytes)
    marker = store.unpacked_path(first.hexdigest) / "marker"
    marker.write_bytes(b"")

    second = store.ingest(zip_bytes)

    assert second == first
    assert marker.exists()
    assert layout(root / "tmp") == []


def test_ingest_that_loses_the_race_keeps_the_winners_tree(store, root):
    zip_bytes = make_zip(("handler.py", b"x = 1\n"))
    artifact = store.ingest(zip_bytes)
    marker = store.unpacked_path(artifact.hexdigest) / "marker"
    marker.write_bytes(b"")
    store.blob_path(artifact.hexdigest).unlink()  # so the next ingest unpacks again

    assert store.ingest(zip_bytes) == artifact

    assert marker.exists()
    assert store.exists(artifact.hexdigest)
    assert layout(root / "tmp") == []


def test_concurrent_ingests_of_the_same_bytes_agree(store, root):
    zip_bytes = make_zip(("lib/a.py", b"a"), symlink("b.py", "lib/a.py"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        artifacts = set(pool.map(store.ingest, [zip_bytes] * 8))

    (artifact,) = artifacts
    assert layout(store.unpacked_path(artifact.hexdigest)) == ["b.py", "lib", "lib/a.py"]
    assert layout(root / "tmp") == []


def test_execute_bit_is_kept_and_other_mode_bits_are_dropped(store):
    zip_bytes = make_zip(
        (entry("bootstrap", stat.S_IFREG | 0o755), b"#!/bin/sh\n"),
        (entry("setuid-tool", stat.S_IFREG | 0o4777), b""),
        (entry("world-writable.txt", stat.S_IFREG | 0o666), b""),
        (entry("no-mode.txt"), b""),
        (entry("sticky-dir/", stat.S_IFDIR | 0o1777), b""),
    )

    tree = store.unpacked_path(store.ingest(zip_bytes).hexdigest)

    modes = {path.name: stat.S_IMODE(path.lstat().st_mode) for path in tree.iterdir()}
    assert modes == {
        "bootstrap": 0o755,
        "setuid-tool": 0o755,
        "world-writable.txt": 0o644,
        "no-mode.txt": 0o644,
        "sticky-dir": 0o755,
    }


def test_modes_do_not_depend_on_the_process_umask(store):
    zip_bytes = make_zip(("lib/a.py", b""), (entry("bootstrap", stat.S_IFREG | 0o755), b""))
    previous = os.umask(0o077)
    try:
        tree = store.unpacked_path(store.ingest(zip_bytes).hexdigest)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(tree.stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "lib").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "lib/a.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((tree / "bootstrap").stat().st_mode) == 0o755


def test_zip_without_entries_is_accepted(store):
    artifact = store.ingest(make_zip())

    assert list(store.unpacked_path(artifact.hexdigest).iterdir()) == []


def test_dot_and_empty_path_components_are_normalised(store):
    zip_bytes = make_zip(("./", b""), ("./a.py", b"a"), ("lib//b.py", b"b"))

    tree = store.unpacked_path(store.ingest(zip_bytes).hexdigest)

    assert layout(tree) == ["a.py", "lib", "lib/b.py"]


def test_prepended_stub_and_archive_comment_are_accepted(store):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.py", b"a")
        archive.comment = b"built by a tool that leaves a comment"
    zip_bytes = b"#!/bin/sh\nexit 0\n" + buffer.getvalue()

    tree = store.unpacked_path(store.ingest(zip_bytes).hexdigest)

    assert (tree / "a.py").read_bytes() == b"a"


def test_zip64_end_records_are_understood(store):
    tree = store.unpacked_path(store.ingest(with_zip64_end(make_zip(("a.py", b"a")))).hexdigest)

    assert (tree / "a.py").read_bytes() == b"a"


@pytest.mark.parametrize(
    "end", [pytest.param(bytes, id="zip"), pytest.param(with_zip64_end, id="zip64")]
)
def test_record_signatures_inside_member_data_do_not_count_as_entries(store, end):
    # A stored jar inside the package carries its own central directory.
    nested = b"PK\x01\x02" * 100_001
    zip_bytes = end(make_zip((entry("lib.jar", compress_type=zipfile.ZIP_STORED), nested)))

    tree = store.unpacked_path(store.ingest(zip_bytes).hexdigest)

    assert (tree / "lib.jar").read_bytes() == nested


def test_symlinks_resolving_inside_the_tree_are_created(store):
    zip_bytes = make_zip(
        ("lib/real.py", b"real"),
        symlink("lib/alias.py", "real.py"),
        symlink("bin/tool", "../lib/real.py"),
        symlink("current", "lib"),
        symlink("self", "."),
    )

    tree = store.unpacked_path(store.ingest(zip_bytes).hexdigest)

    assert os.readlink(tree / "bin/tool") == "../lib/real.py"
    assert (tree / "bin/tool").read_bytes() == b"real"
    assert (tree / "lib/alias.py").read_bytes() == b"real"
    assert (tree / "current/real.py").read_bytes() == b"real"
    assert (tree / "self").resolve() == tree.resolve()


def _encrypted_zip() -> bytes:
    zip_bytes = patch_central_record(make_zip(("secret.py", b"x")), 8, "<H", 0x1)
    return zip_bytes[:6] + struct.pack("<H", 0x1) + zip_bytes[8:]  # the local header too


HOSTILE = [
    pytest.param(make_zip(("/etc/cron.d/evil", b"x")), "/etc/cron.d/evil", id="absolute"),
    pytest.param(make_zip(("../evil.py", b"x")), "../evil.py", id="dotdot"),
    pytest.param(make_zip(("a/../../evil.py", b"x")), "a/../../evil.py", id="nested-dotdot"),
    pytest.param(make_zip(("..\\evil.py", b"x")), "..\\evil.py", id="backslash-dotdot"),
    pytest.param(make_zip(("lib\\a.py", b"x")), "lib\\a.py", id="backslash"),
    pytest.param(make_zip((entry("tty", stat.S_IFCHR | 0o666), b"")), "tty", id="char-device"),
    pytest.param(make_zip((entry("sda", stat.S_IFBLK | 0o660), b"")), "sda", id="block-device"),
    pytest.param(make_zip((entry("pipe", stat.S_IFIFO | 0o644), b"")), "pipe", id="fifo"),
    pytest.param(make_zip((entry("sock", stat.S_IFSOCK | 0o644), b"")), "sock", id="socket"),
    pytest.param(make_zip(("a.py", b"1"), ("a.py", b"2")), "a.py", id="duplicate"),
    pytest.param(make_zip(("a.py", b"1"), ("./a.py", b"2")), "./a.py", id="duplicate-dot"),
    pytest.param(make_zip(("a.py", b"1"), ("a.py/", b"")), "a.py/", id="file-then-dir"),
    pytest.param(make_zip(("lib", b"1"), ("lib/a.py", b"2")), "lib/a.py", id="file-as-parent"),
    pytest.param(make_zip(("lib/a.py", b"1"), ("lib", b"2")), "lib", id="parent-as-file"),
    pytest.param(
        make_zip(("real/", b""), symlink("lib", "real"), ("lib/a.py", b"x")),
        "lib/a.py",
        id="write-through-symlink",
    ),
    pytest.param(make_zip(symlink("passwd", "/etc/passwd")), "passwd", id="symlink-absolute"),
    pytest.param(make_zip(symlink("etc", "../../etc")), "etc", id="symlink-dotdot"),
    pytest.param(make_zip(symlink("a/b/up", "../../..")), "a/b/up", id="symlink-nested-dotdot"),
    pytest.param(make_zip(symlink("nothing", "")), "nothing", id="symlink-empty"),
    pytest.param(make_zip(symlink("long", "a/" * 2048)), "long", id="symlink-target-too-long"),
    pytest.param(make_zip((entry("dir/", stat.S_IFLNK | 0o777), b"x")), "dir/", id="symlink-dir"),
    pytest.param(_encrypted_zip(), "secret.py", id="encrypted"),
    pytest.param(
        make_zip((entry("a.py", compress_type=zipfile.ZIP_BZIP2), b"x")), "a.py", id="bzip2"
    ),
    pytest.param(make_zip(("x" * 256, b"")), "x" * 256, id="name-too-long"),
    pytest.param(make_zip(("a/" * 1025 + "f", b"")), "a/" * 1025 + "f", id="path-too-long"),
    pytest.param(make_zip((".", b"x")), ".", id="no-name"),
]


@pytest.mark.parametrize(("zip_bytes", "culprit"), HOSTILE)
def test_hostile_entry_is_rejected_by_name_leaving_nothing(store, root, zip_bytes, culprit):
    with pytest.raises(InvalidParameterValueException) as caught:
        store.ingest(zip_bytes)

    assert repr(culprit)[:100] in caught.value.message  # long names are shortened
    assert layout(root) == EMPTY_LAYOUT


def test_symlink_escaping_through_another_symlink_is_rejected(store, root):
    # Both targets stay inside lexically, but "up" points at the root, so "up/.." is above it.
    zip_bytes = make_zip(symlink("a/b/up", "../.."), symlink("escape", "a/b/up/../x"))

    with pytest.raises(InvalidParameterValueException) as caught:
        store.ingest(zip_bytes)

    assert repr("escape") in caught.value.message
    assert layout(root) == EMPTY_LAYOUT


def _garbled_member() -> bytes:
    zip_bytes = bytearray(make_zip(("a.py", b"print('hello')\n" * 100)))
    zip_bytes[40:50] = b"\xff" * 10  # inside the deflated data, after the 34-byte header
    return bytes(zip_bytes)


CORRUPT = [
    pytest.param(b"this is not a zip file", id="not-a-zip"),
    pytest.param(b"", id="empty-bytes"),
    pytest.param(make_zip(("a.py", b"x" * 1000))[:-30], id="truncated"),
    pytest.param(_garbled_member(), id="garbled-deflate"),
    pytest.param(patch_central_record(make_zip(("a.py", b"x")), 16, "<L", 0), id="bad-crc"),
    pytest.param(patch_central_record(make_zip(("a.py", b"x")), 42, "<L", 10**6), id="bad-offset"),
]


@pytest.mark.parametrize("zip_bytes", CORRUPT)
def test_unreadable_zip_is_invalid_zip_file(store, root, zip_bytes):
    with pytest.raises(InvalidParameterValueException) as caught:
        store.ingest(zip_bytes)

    assert caught.value.message == INVALID_ZIP_MESSAGE
    assert layout(root) == EMPTY_LAYOUT


def test_zip_over_the_upload_limit_is_request_too_large(store, root):
    with pytest.raises(RequestTooLargeException):
        store.ingest(bytes(ZIP_MAX_BYTES + 1))

    assert layout(root) == EMPTY_LAYOUT


def test_zip_at_the_upload_limit_is_judged_on_its_content(store):
    with pytest.raises(InvalidParameterValueException):
        store.ingest(bytes(ZIP_MAX_BYTES))


def test_zip_bomb_is_rejected_by_size_with_bounded_memory(store, root, bomb_zip):
    assert len(bomb_zip) < 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(InvalidParameterValueException) as caught:
            store.ingest(bomb_zip)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert caught.value.message == f"Unzipped size must be smaller than {UNZIPPED_MAX_BYTES} bytes"
    assert peak_bytes < MEMORY_CEILING_BYTES
    assert layout(root) == EMPTY_LAYOUT


def test_zip_bomb_understating_its_size_is_not_inflated(store, root, bomb_zip):
    lying = patch_central_record(bomb_zip, 24, "<L", 1000)  # uncompressed size
    lying = lying[:22] + struct.pack("<L", 1000) + lying[26:]  # and in the local header
    tracemalloc.start()
    try:
        with pytest.raises(InvalidParameterValueException):
            store.ingest(lying)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak_bytes < MEMORY_CEILING_BYTES
    assert layout(root) == EMPTY_LAYOUT


def test_too_many_central_directory_records_are_refused_before_parsing(store, root):
    # 100,001 bare records for the empty name, pointing nowhere: what zipfile would otherwise
    # turn into 100,001 ZipInfo objects. Layout per APPNOTE 4.3.12 and 4.3.16.
    record = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, *[0] * 14)
    directory = record * 100_001
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory), 0, 0)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidParameterValueException) as caught:
            store.ingest(directory + end)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert "more than 100000 entries" in caught.value.message
    assert peak_bytes < MEMORY_CEILING_BYTES
    assert layout(root) == EMPTY_LAYOUT


def test_too_many_implied_directories_are_refused(store, root):
    # 100 entries, each 1,000 directories deep: few records, but over 100,000 inodes.
    zip_bytes = make_zip(*[(f"{i}/" + "d/" * 1000 + "f", b"") for i in range(100)])

    with pytest.raises(InvalidParameterValueException) as caught:
        store.ingest(zip_bytes)

    assert "more than 100000 files and directories" in caught.value.message
    assert layout(root) == EMPTY_LAYOUT


def test_discard_removes_blob_and_tree(store, root):
    artifact = store.ingest(make_zip(("lib/a.py", b"a"), symlink("b.py", "lib/a.py")))

    store.discard(artifact.hexdigest)

    assert not store.exists(artifact.hexdigest)
    assert layout(root) == EMPTY_LAYOUT


def test_discard_of_an_absent_digest_does_nothing(store, root):
    store.discard("0" * 64)

    assert layout(root) == EMPTY_LAYOUT


@pytest.mark.parametrize("hexdigest", ["../../etc", "A" * 64, "0" * 63, ""])
def test_paths_accept_only_a_hex_sha256(store, hexdigest):
    with pytest.raises(ValueError):
        store.blob_path(hexdigest)
    with pytest.raises(ValueError):
        store.unpacked_path(hexdigest)
    with pytest.raises(ValueError):
        store.discard(hexdigest)
