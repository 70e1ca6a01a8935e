"""Which host program runs each Lambda runtime, and the command line that starts it.

Python runtimes run Corral's own bootstrap (`corral/runtimes/python/_corral_bootstrap.py`) on a
host interpreter of the same minor version, called directly (never through a pyenv shim,
which costs ~80 ms) and with `-S` (no site-packages: a function sees only its own code,
and a polluted site costs ~25 ms per start). Custom runtimes (`provided*`) run the
function's own executable `bootstrap`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import py_compile
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from corral.model.function import CUSTOM_RUNTIMES, PYTHON_RUNTIMES

RUNTIMES_DIR = Path(__file__).resolve().parent.parent / "runtimes"  # LAMBDA_RUNTIME_DIR
PYTHON_BOOTSTRAP_DIR = RUNTIMES_DIR / "python"
PYTHON_BOOTSTRAP_MODULE = "_corral_bootstrap"


def python_argv(interpreter: str) -> tuple[str, ...]:
    """The command line of Corral's Python runtime on `interpreter`.

    The bootstrap is imported as a module rather than run as a script: a script is compiled
    from source at every start (~9 ms for the bootstrap), a module loads from its cached
    .pyc. `-S` keeps site-packages out; `-u` keeps output unbuffered, as in Lambda.
    """
    code = (
        f"import sys; sys.path[0] = {str(PYTHON_BOOTSTRAP_DIR)!r}; "
        f"import {PYTHON_BOOTSTRAP_MODULE} as b; b.main()"
    )
    return (interpreter, "-S", "-u", "-c", code)


@dataclass(frozen=True, slots=True)
class RuntimeLaunch:
    argv: tuple[str, ...]
    address_space_limited: bool


def _is_real_executable(path: str) -> bool:
    """An executable that is not a shell-script shim."""
    try:
        with open(path, "rb") as f:
            return f.read(2) != b"#!" and os.access(path, os.X_OK)
    except OSError:
        return False


def find_python(version: str) -> str | None:
    """A host interpreter for `version` ("3.12"), preferring the one running Corral."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidates = [os.path.join(sys.base_prefix, "bin", f"python{version}")]
    else:
        candidates = []
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(
        glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")),
        reverse=True,
    )
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    return next((c for c in candidates if _is_real_executable(c)), None)


def _cache_tag(interpreter: str) -> str:
    """`cpython-312` for .../python3.12: the interpreter's name gives its version."""
    return "cpython-" + Path(interpreter).name.removeprefix("python").replace(".", "")


class RuntimeCatalogue:
    """The runtimes this host can run, found once at start-up."""

    def __init__(self) -> None:
        self.interpreters: dict[str, str] = {}
        for runtime in PYTHON_RUNTIMES:
            found = find_python(runtime.removeprefix("python"))
            if found:
                self.interpreters[runtime] = found
        self._precompile_bootstrap()

    def _precompile_bootstrap(self) -> None:
        """Write the bootstrap's .pyc for every interpreter now: a sandboxed runtime sees
        the runtimes directory read-only and as another uid, so it could not write its
        own, and would compile the bootstrap (~9 ms) at every start."""
        source = PYTHON_BOOTSTRAP_DIR / f"{PYTHON_BOOTSTRAP_MODULE}.py"
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            py_compile.compile(str(source), doraise=True)
        stale = []
        for interpreter in set(self.interpreters.values()):
            tag = _cache_tag(interpreter)
            cached = PYTHON_BOOTSTRAP_DIR / "__pycache__" / f"{PYTHON_BOOTSTRAP_MODULE}.{tag}.pyc"
            with contextlib.suppress(OSError):
                if cached.stat().st_mtime >= source.stat().st_mtime:
                    continue
            stale.append(
                subprocess.Popen(
                    [interpreter, "-S", "-m", "py_compile", str(source)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for proc in stale:
            proc.wait(30)

    def prefixes(self) -> list[Path]:
        """The installation directories of the interpreters (what a sandbox must expose)."""
        return sorted({Path(i).resolve().parent.parent for i in self.interpreters.values()})

    def available(self, runtime: str) -> bool:
        return runtime in self.interpreters or runtime in CUSTOM_RUNTIMES

    def describe(self) -> dict[str, str]:
        """runtime -> what runs it on this host."""
        described = dict(self.interpreters)
        for runtime in CUSTOM_RUNTIMES:
            described[runtime] = "the function's executable 'bootstrap'"
        return described

    def launch(self, runtime: str, code_dir: Path) -> RuntimeLaunch:
        if runtime in CUSTOM_RUNTIMES:
            return RuntimeLaunch((str(code_dir / "bootstrap"),), address_space_limited=False)
        interpreter = self.interpreters[runtime]
        return RuntimeLaunch(python_argv(interpreter), address_space_limited=True)
