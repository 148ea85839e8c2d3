#!/usr/bin/env bash
# Set up everything the demo and the tests need, idempotently:
#   .venv/ with Python >= 3.11 and powerplane installed editable with its dev extras,
#   and a helm 3 binary in .tools/ (for the chart tests; skipped with POWERPLANE_SKIP_HELM=1).
# Re-runs are no-ops until pyproject.toml changes. PYTHON=/path/to/python3.11 to choose.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pick_python() {
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "error: Python >= 3.11 not found; set PYTHON=/path/to/python3.11" >&2
    return 1
}

if [[ ! -x .venv/bin/python ]]; then
    python=$(pick_python)
    echo "creating .venv with $($python --version)"
    "$python" -m venv .venv
fi

stamp=.venv/.powerplane-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    echo "installing powerplane and its pinned dependencies into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[dev]"
    echo "$want" > "$stamp"
fi

# The chart tests need helm; the demo does not (scripts/demo.sh sets POWERPLANE_SKIP_HELM=1).
if [[ -z "${POWERPLANE_HELM:-}" && -z "${POWERPLANE_SKIP_HELM:-}" ]]; then
    bash scripts/install_helm.sh >/dev/null || {
        command -v helm >/dev/null 2>&1 || { echo "error: no helm: install helm 3 or set POWERPLANE_HELM" >&2; exit 1; }
        echo "using helm from PATH: $(command -v helm)"
    }
fi
