"""Execution environments: sandboxes running runtimes, pooled per function revision."""
