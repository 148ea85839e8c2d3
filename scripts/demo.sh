#!/usr/bin/env bash
# The demo: set up (idempotent), then run Powerplane end to end on this machine.
# Extra arguments go to `powerplane demo` (see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
POWERPLANE_SKIP_HELM=1 bash scripts/setup.sh
exec .venv/bin/powerplane demo "$@"
