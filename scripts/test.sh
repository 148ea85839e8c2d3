#!/usr/bin/env bash
# The whole test suite: set up (idempotent), then pytest. Extra arguments go to pytest,
# e.g. scripts/test.sh tests/unit -q
#
# The tests start Ray (which listens on every interface and looks up a public DNS
# address), gRPC servers, miner emulators and PostgreSQL, so they run only where
# loopback is the sole network interface (tests/conftest.py refuses otherwise). Run as
# root on a machine with other interfaces, this script sets up first (the package
# registries are reachable only there) and then runs pytest in a private network
# namespace of its own; .ci/run calls it from inside one already.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
others=$(.venv/bin/python -c 'import socket; print(sum(n != "lo" for _, n in socket.if_nameindex()))')
if [ "$others" != 0 ] && [ "${POWERPLANE_ALLOW_HOST_NETWORK:-}" != 1 ]; then
    if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
        exec unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest -p no:cacheprovider "$@"' sh "$@"
    fi
    echo "scripts/test.sh: the tests run in a private network namespace: run this as root (it uses unshare -n), or inside one: sudo unshare -n sh -c 'ip link set lo up && ./scripts/test.sh'" >&2
    exit 4
fi
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
