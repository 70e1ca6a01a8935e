import os
import stat

import pytest

from corral.model.errors import InvalidParameterValueException
from corral.model.layers import FunctionLayer
from corral.store.blobs import CodeStore
from corral.store.opt_trees import OptTrees
from tests.unit.store.test_blobs import make_zip, symlink


@pytest.fixture
def stores(tmp_path):
    code = CodeStore(tmp_path / "code")
    return code, OptTrees(tmp_path / "layers", code)


def layer(code: CodeStore, *members) -> FunctionLayer:
    artifact = code.ingest(make_zip(*members))
    return FunctionLayer("arn", artifact.size_bytes, artifact.hexdigest)


def test_later_layers_replace_earlier_paths(stores):
    code, trees = stores
    first = layer(code, ("python/shared.py", b"first"), ("python/a.py", b"a"), ("tool/", b""))
    second = layer(code, ("python/shared.py", b"second"), ("tool", b"now a file"))

    tree = trees.build([first, second])

    assert (tree / "python" / "shared.py").read_bytes() == b"second"
    assert (tree / "python" / "a.py").read_bytes() == b"a"
    assert (tree / "tool").read_bytes() == b"now a file"  # a file replaces a directory
    assert trees.build([first, second]) == tree  # cached
    assert (trees.build([second, first]) / "python" / "shared.py").read_bytes() == b"first"
    assert stat.S_IMODE(tree.stat().st_mode) == 0o755


def test_a_path_made_a_symlink_is_replaced_never_written_through(stores):
    code, trees = stores
    first = layer(code, ("python/", b""), symlink("lib", "python"))
    second = layer(code, ("lib/x.so", b"x"))

    tree = trees.build([first, second])

    assert not (tree / "lib").is_symlink()
    assert (tree / "lib" / "x.so").read_bytes() == b"x"
    assert os.listdir(tree / "python") == []


def test_layers_that_combine_into_an_escape_are_refused(stores):
    code, trees = stores
    # Each is safe alone: a/b points at its own root; c names a/b/.. which is "a" lexically.
    first = layer(code, ("a/", b""), symlink("a/b", ".."))
    second = layer(code, symlink("c", "a/b/.."))

    with pytest.raises(InvalidParameterValueException, match="leaves /opt"):
        trees.build([first, second])
    assert list((trees.root / "tmp").iterdir()) == []  # nothing half built is left


def test_prune_keeps_only_trees_in_use(stores):
    code, trees = stores
    one = layer(code, ("python/one.py", b"1"))
    two = layer(code, ("python/two.py", b"2"))
    kept, dropped = trees.build([one]), trees.build([two])

    assert trees.prune({kept.name}) == 1
    assert kept.is_dir() and not dropped.exists() and trees.empty.is_dir()
