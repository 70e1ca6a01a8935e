"""Which sandbox backend a server uses: `--sandbox process|namespace|auto`."""

from __future__ import annotations

import logging
from pathlib import Path

from corral.fleet.runtimes import RUNTIMES_DIR, RuntimeCatalogue
from corral.fleet.sandbox import Sandbox
from corral.fleet.sandbox.process import ProcessSandbox

log = logging.getLogger("corral.fleet")

BACKENDS = ("auto", "process", "namespace")


def build_sandbox(name: str, run_dir: Path, runtimes: RuntimeCatalogue) -> Sandbox:
    """The backend called `name`. `auto` is `namespace` when this machine can run it
    (bwrap works, cgroups are usable, the server is root), else `process` with one
    warning. Raises SystemExit for an unknown name or an explicit `namespace` that
    cannot work here."""
    if name not in BACKENDS:
        raise SystemExit(f"unknown sandbox backend {name!r}: use {', '.join(BACKENDS)}")
    if name == "process":
        return ProcessSandbox(run_dir)
    from corral.fleet.sandbox.namespace import NamespaceSandbox, unsupported_reason

    reason = unsupported_reason()
    if reason is None:
        sandbox = NamespaceSandbox(run_dir, [*runtimes.prefixes(), RUNTIMES_DIR])
        reason = sandbox.cgroups.problem
        if reason is None:
            return sandbox
    if name == "namespace":
        raise SystemExit(f"corral: --sandbox namespace is not available here: {reason}")
    log.warning(
        "sandbox: namespace is not available (%s); using process, which does not isolate "
        "functions from each other or from this host",
        reason,
    )
    return ProcessSandbox(run_dir)
