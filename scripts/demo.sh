#!/usr/bin/env bash
# The demo: set up (idempotent), then run Powerplane end to end on this machine.
# Extra arguments go to `powerplane demo` (see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
POWERPLANE_SKIP_HELM=1 POWERPLANE_SKIP_APT=1 bash scripts/setup.sh  # the demo needs neither helm nor the test servers
exec .venv/bin/powerplane demo "$@"
