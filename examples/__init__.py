"""Example workloads for Powerplane (importable from the repository root)."""
