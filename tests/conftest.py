"""Refuses to run the suite outside a private network namespace.

Ray listens on every interface and probes a public DNS address, and the tests start
gRPC servers, emulated miners and PostgreSQL: the suite runs only where loopback is
the sole interface (`unshare -n sh -c 'ip link set lo up; ...'`, as .ci/run does).
POWERPLANE_ALLOW_HOST_NETWORK=1 overrides this for a machine that is itself isolated.
"""

from __future__ import annotations

import os
import socket

import pytest


def interfaces_besides_loopback() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex() if name != "lo")


def pytest_configure(config: pytest.Config) -> None:
    others = interfaces_besides_loopback()
    if others and os.environ.get("POWERPLANE_ALLOW_HOST_NETWORK") != "1":
        pytest.exit(
            f"refusing to run the tests with network interfaces besides loopback ({', '.join(others)}): "
            "run them in a private network namespace, e.g. unshare -n sh -c 'ip link set lo up; .venv/bin/python -m pytest ...'",
            returncode=4,
        )
