"""Choosing a sandbox backend, and the limits the namespace backend derives from config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.fleet.sandbox.cgroups import MIB, CgroupLimits
from corral.fleet.sandbox.namespace import _reachable_from
from corral.fleet.sandbox.process import ProcessSandbox
from corral.fleet.sandbox.select import build_sandbox


class NoRuntimes:
    def prefixes(self) -> list[Path]:
        return []


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown sandbox backend 'vm'"):
        build_sandbox("vm", tmp_path, NoRuntimes())


def test_process_is_chosen_when_asked(tmp_path):
    assert isinstance(build_sandbox("process", tmp_path, NoRuntimes()), ProcessSandbox)


def test_one_vcpu_per_1769_mb_and_tmp_brings_its_own_memory():
    limits = CgroupLimits.for_memory(1769, extra_memory_mb=512)
    assert limits.cpu_quota_us == 100_000
    assert limits.memory_bytes == (1769 + 512) * MIB
    assert CgroupLimits.for_memory(128).cpu_quota_us == 7235  # 7 % of a CPU
    assert CgroupLimits.for_memory(10240).cpu_quota_us == 578_858  # almost 6 CPUs


def test_views_start_below_the_deepest_closed_directory(tmp_path):
    closed = tmp_path / "closed"
    deep = closed / "open" / "code"
    deep.mkdir(parents=True)
    for d in (tmp_path, closed.parent):
        os.chmod(d, 0o755)
    os.chmod(closed, 0o700)
    os.chmod(closed / "open", 0o755)
    os.chmod(deep, 0o755)
    assert _reachable_from(deep) == closed / "open"
    assert _reachable_from(Path("/usr/bin")) is None
