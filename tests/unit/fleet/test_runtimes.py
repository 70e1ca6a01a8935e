"""The catalogue's command lines: Lambda's memory flags per family."""

from pathlib import Path

from corral.fleet.runtimes import NODE_BOOTSTRAP, _runtime_major, java_argv, node_argv


def test_runtime_majors():
    assert [_runtime_major(r) for r in ("nodejs22.x", "java8.al2", "java17", "java25")] == [
        22,
        8,
        17,
        25,
    ]


def test_node_heap_follows_memory_size_as_in_lambda():
    argv = node_argv("/usr/bin/node", 1024)
    assert argv[0] == "/usr/bin/node" and argv[-1] == str(NODE_BOOTSTRAP)
    assert "--max-semi-space-size=8" in argv  # new space 1/64 of memory, in two halves
    assert "--max-old-space-size=1008" in argv
    assert "--expose-gc" in argv


def test_node_flags_follow_lambdas_bootstrap():
    assert node_argv("n", 1024, 20)[-2] == "--no-experimental-require-module"
    assert node_argv("n", 1024, 22)[-3:-1] == (
        "--no-experimental-require-module",
        "--no-experimental-detect-module",
    )
    assert not any(a.startswith("--no-") for a in node_argv("n", 1024, 24))
    # a user's NODE_OPTIONS that sizes either space, in either spelling, keeps ours out
    for options in ("--max-old-space-size=99", "--max_semi_space_size=4"):
        assert not any("space-size" in a for a in node_argv("n", 1024, 22, options))
    # and one that re-enables an experimental feature drops its disabling flag
    argv = node_argv("n", 1024, 22, "--experimental-detect-module")
    assert "--no-experimental-detect-module" not in argv
    assert "--no-experimental-require-module" in argv


def test_jvm_heap_metaspace_and_code_cache_follow_memory_size():
    argv = java_argv("/jdk/bin/java", 1000, "/rt.jar", Path("/cds.jsa"))
    assert "-XX:MaxHeapSize=870400k" in argv  # 85%
    assert "-XX:MaxMetaspaceSize=102400k" in argv  # 10%
    assert "-XX:ReservedCodeCacheSize=51200k" in argv  # 5%
    assert "-XX:+UseSerialGC" in argv and "-XX:TieredStopAtLevel=1" in argv
    assert "-XX:SharedArchiveFile=/cds.jsa" in argv
    assert argv[-3:] == ("-cp", "/rt.jar", "corral.runtime.Bootstrap")
    assert not any(a.startswith("-XX:SharedArchiveFile") for a in java_argv("j", 128, "r", None))
