"""Merged /opt trees: the layers of a function, extracted in order into one directory.

Lambda extracts a function's layers into /opt one after another, so a file of a later layer
replaces the same path of an earlier one. Here each ordered list of layer packages gets one
tree, `<root>/<tree_key>/`, built once from the packages' unpacked trees in the code store
(hard links, so it costs directory entries, not a copy of the bytes) and shared by every
function version with the same layers. The sandbox mounts it read-only.

Building never writes through a symlink (a path an earlier layer made a symlink is replaced,
not followed), and the finished tree is refused if any symlink in it resolves outside it:
layers that are each safe may combine into an escape (`a -> b/..` in one, `b -> ..` in
another). A tree is built in `tmp/` and renamed into place, so it is never seen half made.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from corral.model.errors import InvalidParameterValueException
from corral.model.layers import FunctionLayer, tree_key
from corral.store.blobs import CodeStore, install_tree, resolves_inside


class OptTrees:
    """Every method does blocking I/O: call it from a worker thread (`path` and `exists`
    are single stats, fine on the event loop)."""

    def __init__(self, root: Path, code: CodeStore) -> None:
        self.root = root
        self.code = code
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self.empty = root / "empty"  # the /opt of a function without layers
        self.empty.mkdir(exist_ok=True)
        for directory in (root, self.empty):
            os.chmod(directory, 0o755)

    def path(self, layers: Iterable[FunctionLayer]) -> Path:
        layers = tuple(layers)
        return self.root / tree_key(layers) if layers else self.empty

    def exists(self, layers: Iterable[FunctionLayer]) -> bool:
        return self.path(layers).is_dir()

    def build(self, layers: Iterable[FunctionLayer]) -> Path:
        """The merged tree of `layers` (in order), built if it is not there yet.

        Raises InvalidParameterValueException if the layers combine into a symlink that
        leaves the tree, and FileNotFoundError if a layer's package is gone.
        """
        layers = tuple(layers)
        destination = self.path(layers)
        if destination.is_dir():
            return destination
        work = Path(tempfile.mkdtemp(prefix="opt-", dir=self._tmp))
        try:
            for layer in layers:
                _overlay(self.code.unpacked_path(layer.code_hexdigest), work)
            _check_links(work)
            install_tree(work, destination)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return destination

    def prune(self, keep: Iterable[str]) -> int:
        """Remove trees whose key is not in `keep`, and leftovers of interrupted builds;
        how many were removed. Call at start-up, before any build can be running."""
        wanted = set(keep) | {"tmp", "empty"}
        removed = 0
        for path in [*self.root.iterdir(), *self._tmp.iterdir()]:
            if path.parent == self.root and path.name in wanted:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
        return removed


def _remove(path: str) -> None:
    """Whatever is at `path` (a symlink is removed, never followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _overlay(source: Path, destination: Path) -> None:
    """Copy the tree `source` over `destination`: later entries replace earlier ones."""
    stack = [(str(source), str(destination))]
    while stack:
        src_dir, dst_dir = stack.pop()
        with os.scandir(src_dir) as entries:
            for entry in entries:
                target = os.path.join(dst_dir, entry.name)
                if entry.is_symlink():
                    _remove(target)
                    os.symlink(os.readlink(entry.path), target)
                elif entry.is_dir(follow_symlinks=False):
                    try:
                        is_real_dir = stat.S_ISDIR(os.lstat(target).st_mode)
                    except FileNotFoundError:
                        is_real_dir = False
                    if not is_real_dir:
                        _remove(target)
                        os.mkdir(target)
                        os.chmod(target, 0o755)
                    stack.append((entry.path, target))
                elif entry.is_file(follow_symlinks=False):
                    _remove(target)
                    _link_or_copy(entry.path, target)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # another filesystem, or links refused: a copy with the same mode
        shutil.copyfile(source, target, follow_symlinks=False)
        os.chmod(target, stat.S_IMODE(os.lstat(source).st_mode))


def _check_links(root: Path) -> None:
    real_root = os.path.realpath(root)
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    if not resolves_inside(real_root, entry.path):
                        shown = os.path.relpath(entry.path, root)
                        raise InvalidParameterValueException(
                            f"The layers combine into a symlink that leaves /opt: {shown!r} "
                            f"-> {os.readlink(entry.path)!r}."
                        )
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
