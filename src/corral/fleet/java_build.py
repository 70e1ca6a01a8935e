"""Corral's Java runtime, built from its source in the repository when stale.

The sources (`corral/runtimes/java/src`: the `com.amazonaws.services.lambda.runtime`
interfaces of aws-lambda-java-core, which Maven Central would give us were it reachable,
and `corral.runtime.Bootstrap`) are compiled by the oldest host JDK's javac for its own
release, so every newer JDK runs them, into `build/<digest>/corral-runtime.jar`: the digest
covers the sources and the javac version, so a change rebuilds and concurrent servers
never see a half-written jar (each builds in a private directory, then renames it into
place). For each JDK a class data sharing archive of the runtime's classes is written
beside it (`cds-<major>.jsa`, from a warm-up run): it takes ~40% off the JVM's start.
A sandboxed runtime reads all of this as another uid: files are world-readable.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.fleet.runtimes import HostProgram

log = logging.getLogger("corral.fleet")

MAIN_CLASS = "corral.runtime.Bootstrap"
JAR_NAME = "corral-runtime.jar"
BUILD_TIMEOUT_S = 120


def _javac(jdk: HostProgram) -> Path:
    return Path(jdk.program).with_name("javac")


class JavaRuntimeBuild:
    def __init__(self, java_dir: Path, jdks: dict[int, HostProgram]) -> None:
        self.source_dir = java_dir / "src"
        self.jdks = jdks
        self.jar: Path | None = None
        self.archiving: threading.Thread | None = None
        # bytecode for the oldest release, compiled by the oldest JDK that has a javac
        self._release = min(jdks)
        compilers = [m for m in sorted(jdks) if _javac(jdks[m]).exists()]
        self.out_dir = java_dir / "build"
        if not compilers:
            log.warning("java: no javac here to build Corral's Java runtime")
            return
        self._compiler = jdks[compilers[0]]
        sources = sorted(self.source_dir.rglob("*.java"))
        digest = hashlib.sha256(f"{self._compiler.version}\n{self._release}\n".encode())
        for source in sources:
            digest.update(str(source.relative_to(self.source_dir)).encode() + b"\0")
            digest.update(source.read_bytes())
        self.out_dir = java_dir / "build" / digest.hexdigest()[:16]
        try:
            self._build(sources)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("java: Corral's Java runtime did not build: %s", exc)
            return
        self.jar = self.out_dir / JAR_NAME
        missing = {m: j for m, j in jdks.items() if not self._archive_path(m).exists()}
        # archives only speed starts up: made in the background, used once they exist
        self.archiving = threading.Thread(
            target=self._make_archives, args=(missing,), name="corral-cds", daemon=True
        )
        self.archiving.start()

    def _archive_path(self, major: int) -> Path:
        return self.out_dir / f"cds-{major}.jsa"

    def archive(self, major: int) -> Path | None:
        path = self._archive_path(major)
        return path if path.exists() else None

    def _make_archives(self, jdks: dict[int, HostProgram]) -> None:
        for major, jdk in jdks.items():
            self._make_archive(jdk, self._archive_path(major))

    def _build(self, sources: list[Path]) -> None:
        if (self.out_dir / JAR_NAME).exists():
            return
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.out_dir.parent, 0o755)
        private = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.out_dir.parent))
        try:
            classes = private / "classes"
            javac = _javac(self._compiler)
            subprocess.run(
                [str(javac), "--release", str(self._release), "-nowarn", "-d", str(classes)]
                + [str(s) for s in sources],
                check=True,
                capture_output=True,
                timeout=BUILD_TIMEOUT_S,
            )
            jar = private / JAR_NAME
            with zipfile.ZipFile(jar, "w", zipfile.ZIP_STORED) as zf:
                zf.writestr(
                    "META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\nMain-Class: {MAIN_CLASS}\n"
                )
                for path in sorted(classes.rglob("*.class")):
                    zf.write(path, str(path.relative_to(classes)))
            shutil.rmtree(classes)
            os.chmod(jar, 0o644)
            os.chmod(private, 0o755)
            try:
                private.rename(self.out_dir)
            except OSError:
                if not (self.out_dir / JAR_NAME).exists():  # not another server's build
                    raise
        finally:
            shutil.rmtree(private, ignore_errors=True)
        for old in self.out_dir.parent.iterdir():  # builds of older sources
            if old != self.out_dir and not old.name.startswith(".tmp-"):
                shutil.rmtree(old, ignore_errors=True)

    def _make_archive(self, jdk: HostProgram, archive: Path) -> bool:
        """A dynamic CDS archive (JDK 13+) of the classes a warm-up run loads."""
        partial = archive.with_name(f".{archive.name}.{os.getpid()}")
        try:
            subprocess.run(
                [
                    jdk.program,
                    f"-XX:ArchiveClassesAtExit={partial}",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-Xshare:auto",
                    "-cp",
                    str(self.out_dir / JAR_NAME),
                    MAIN_CLASS,
                    "--warm-up",
                ],
                check=True,
                capture_output=True,
                timeout=BUILD_TIMEOUT_S,
            )
            os.chmod(partial, 0o644)
            partial.rename(archive)
            return True
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("java: no class data sharing archive for %s: %s", jdk.version, exc)
            with contextlib.suppress(OSError):
                partial.unlink()
            return False
